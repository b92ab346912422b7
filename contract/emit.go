package contract

import (
	"errors"
	"fmt"
	"strings"
)

// Outbox rules. A process emits a message under a topic, one DATA-zone
// path segment; the supervisor commits it with the process's delta.
var (
	ErrInvalidTopic = errors.New("contract: invalid outbox topic")
	ErrEmitInPure   = errors.New("contract: PURE process emits an outbox message")
)

// MaxTopicLen bounds a topic, so that every message's path (its topic
// under the outbox root, then its entry number) stays a valid path.
const MaxTopicLen = 128

// CheckTopic returns nil if topic may name an outbox topic: one path
// segment ([A-Za-z0-9_-], no dots) of at most MaxTopicLen bytes, in the
// DATA zone (not heavy_*, sig_*, cmd_*, meta_*, log_*, const_* or
// internal_*). Its error wraps ErrInvalidTopic.
func CheckTopic(topic string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidTopic, topic, why)
	}
	if len(topic) > MaxTopicLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxTopicLen))
	}
	if strings.Contains(topic, ".") {
		return bad("a topic is one path segment, without dots")
	}
	var pe *PathError
	if err := validate(topic); errors.As(err, &pe) {
		return bad(pe.Reason)
	}
	if z := segmentZone(topic); z != ZoneData {
		return bad(fmt.Sprintf("names the %s zone; a topic is a DATA-zone segment", z))
	}
	return nil
}

// CheckEmit returns nil if the process may emit a message under topic:
// a valid topic (CheckTopic) from an EFFECT process. An emit is a side
// effect, so a PURE process emitting is a *Violation (ErrEmitInPure).
func (c Contract) CheckEmit(topic string) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if c.Semantic == Pure {
		return c.violation(Path(topic), ErrEmitInPure)
	}
	return nil
}
