package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Handshake constants. Version is the wire protocol's version, separate
// from the build version: it changes only when the bytes do.
const (
	Magic   = "theus/1"
	Version = 4
)

// MaxTimeout is the longest an Execute runs: a longer TimeoutMS means
// MaxTimeout (in nanoseconds it would overflow, and its deadline would not
// fit a Dispatch's).
const MaxTimeout = 365 * 24 * time.Hour

// DefaultMaxFrame is the default bound on a frame's length: 16 MiB.
const DefaultMaxFrame = 16 << 20

// HeaderLen is the length of a frame header: a 4-byte big-endian length
// (of the kind byte plus the body) and the kind byte.
const HeaderLen = 5

// Kind says which message a frame holds.
type Kind uint8

// The kinds of message.
const (
	KindHello Kind = iota + 1
	KindWelcome
	KindRefuse
	KindDispatch
	KindResult
	KindCancel
	KindPing
	KindPong
	KindExecute
	KindReply
	KindGet
	KindGetReply
	KindStatus
	KindStatusReply
	KindAlloc
	KindGrant
	KindMapped
	KindBackup
	KindBackupReply
	KindCall
	KindCallReply
	KindSubscribe
	KindEvent
	KindUnsubscribe
	kindEnd
)

var kindNames = [...]string{"", "hello", "welcome", "refuse", "dispatch", "result", "cancel", "ping", "pong", "execute", "reply", "get", "get-reply", "status", "status-reply", "alloc", "grant", "mapped", "backup", "backup-reply", "call", "call-reply", "subscribe", "event", "unsubscribe"}

func (k Kind) String() string {
	if k == 0 || k >= kindEnd {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Message is any message of this package.
type Message interface {
	msgp.Marshaler
	msgp.Unmarshaler
	Kind() Kind
}

func (*Hello) Kind() Kind       { return KindHello }
func (*Welcome) Kind() Kind     { return KindWelcome }
func (*Refuse) Kind() Kind      { return KindRefuse }
func (*Dispatch) Kind() Kind    { return KindDispatch }
func (*Result) Kind() Kind      { return KindResult }
func (*Cancel) Kind() Kind      { return KindCancel }
func (*Ping) Kind() Kind        { return KindPing }
func (*Pong) Kind() Kind        { return KindPong }
func (*Execute) Kind() Kind     { return KindExecute }
func (*Reply) Kind() Kind       { return KindReply }
func (*Get) Kind() Kind         { return KindGet }
func (*GetReply) Kind() Kind    { return KindGetReply }
func (*Status) Kind() Kind      { return KindStatus }
func (*StatusReply) Kind() Kind { return KindStatusReply }
func (*Alloc) Kind() Kind       { return KindAlloc }
func (*Grant) Kind() Kind       { return KindGrant }
func (*Mapped) Kind() Kind      { return KindMapped }
func (*Backup) Kind() Kind      { return KindBackup }
func (*BackupReply) Kind() Kind { return KindBackupReply }
func (*Call) Kind() Kind        { return KindCall }
func (*CallReply) Kind() Kind   { return KindCallReply }
func (*Subscribe) Kind() Kind   { return KindSubscribe }
func (*Event) Kind() Kind       { return KindEvent }
func (*Unsubscribe) Kind() Kind { return KindUnsubscribe }

// Pong answers a Ping.
type Pong Ping

// MarshalMsg implements msgp.Marshaler.
func (z *Pong) MarshalMsg(b []byte) ([]byte, error) { return (*Ping)(z).MarshalMsg(b) }

// UnmarshalMsg implements msgp.Unmarshaler.
func (z *Pong) UnmarshalMsg(b []byte) ([]byte, error) { return (*Ping)(z).UnmarshalMsg(b) }

// New returns an empty message of kind k, or nil for an unknown kind.
func New(k Kind) Message {
	switch k {
	case KindHello:
		return new(Hello)
	case KindWelcome:
		return new(Welcome)
	case KindRefuse:
		return new(Refuse)
	case KindDispatch:
		return new(Dispatch)
	case KindResult:
		return new(Result)
	case KindCancel:
		return new(Cancel)
	case KindPing:
		return new(Ping)
	case KindPong:
		return new(Pong)
	case KindExecute:
		return new(Execute)
	case KindReply:
		return new(Reply)
	case KindGet:
		return new(Get)
	case KindGetReply:
		return new(GetReply)
	case KindStatus:
		return new(Status)
	case KindStatusReply:
		return new(StatusReply)
	case KindAlloc:
		return new(Alloc)
	case KindGrant:
		return new(Grant)
	case KindMapped:
		return new(Mapped)
	case KindBackup:
		return new(Backup)
	case KindBackupReply:
		return new(BackupReply)
	case KindCall:
		return new(Call)
	case KindCallReply:
		return new(CallReply)
	case KindSubscribe:
		return new(Subscribe)
	case KindEvent:
		return new(Event)
	case KindUnsubscribe:
		return new(Unsubscribe)
	}
	return nil
}

// AppendFrame appends m as one frame to dst.
func AppendFrame(dst []byte, m Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(m.Kind()))
	dst, err := m.MarshalMsg(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("protocol: encode %s: %w", m.Kind(), err)
	}
	n := len(dst) - start - 4
	if uint64(n) > uint64(^uint32(0)) {
		return dst[:start], fmt.Errorf("%w: encode %s: %d bytes is too long for a frame", ErrFrameTooLarge, m.Kind(), n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// Decode decodes the body of a frame of kind k. It checks the body's
// structure (see Check) before the generated decoder allocates, and
// rejects trailing bytes. Every error wraps ErrBadFrame.
func Decode(k Kind, body []byte) (Message, error) {
	m := New(k)
	if m == nil {
		return nil, &Error{Code: CodeBadFrame, Message: fmt.Sprintf("unknown message kind %d", uint8(k))}
	}
	if err := Check(body); err != nil {
		return nil, &Error{Code: CodeBadFrame, Message: fmt.Sprintf("%s: %v", k, err)}
	}
	if _, err := m.UnmarshalMsg(body); err != nil {
		return nil, &Error{Code: CodeBadFrame, Message: fmt.Sprintf("%s: %v", k, err)}
	}
	return m, nil
}

// ErrFrameTooLarge is wrapped by Reader.Next for a frame over the limit.
var ErrFrameTooLarge = errors.New("protocol: frame too large")

// Reader reads frames from a byte stream. The limit is checked on the
// header, before any buffer for the body exists.
type Reader struct {
	r   *bufio.Reader
	max int
	hdr [HeaderLen]byte
	buf []byte
}

// NewReader returns a Reader of r that refuses frames longer than max
// bytes (DefaultMaxFrame if max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &Reader{r: bufio.NewReaderSize(r, readBuffer), max: max}
}

// readBuffer is the Reader's buffer: a burst of small frames costs one
// read system call, not two a frame.
const readBuffer = 64 << 10

// Next reads one frame and returns its kind and body. The body is valid
// until the next call. At a clean end of stream it returns io.EOF; a
// stream cut inside a frame gives io.ErrUnexpectedEOF.
func (fr *Reader) Next() (Kind, []byte, error) {
	k, n, err := fr.Header()
	if err != nil {
		return 0, nil, err
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if err := fr.Body(fr.buf); err != nil {
		return 0, nil, err
	}
	return k, fr.buf, nil
}

// Header reads the next frame's header and returns its kind and the
// length of its body, checked against the limit; the caller reads the
// body with Body before the next Header, into a buffer of its choosing
// (Next uses one it keeps). At a clean end of stream it returns io.EOF.
func (fr *Reader) Header() (Kind, int, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, 0, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:4])
	if n == 0 {
		return 0, 0, &Error{Code: CodeBadFrame, Message: "zero-length frame"}
	}
	if uint64(n) > uint64(fr.max) {
		return 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, fr.max)
	}
	return Kind(fr.hdr[4]), int(n) - 1, nil
}

// Body fills p, whose length is the one Header returned, with the body of
// the frame. A stream cut inside it gives io.ErrUnexpectedEOF.
func (fr *Reader) Body(p []byte) error {
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// Buffered returns how many bytes the Reader has read from the stream
// and not yet returned: a body no longer than that is read without a
// system call.
func (fr *Reader) Buffered() int { return fr.r.Buffered() }

// FrameBuffered reports whether a whole frame of at most max bytes
// (its header and body) is buffered: the next Header and Body then make
// no system call. It reads nothing.
func (fr *Reader) FrameBuffered(max int) bool {
	if fr.r.Buffered() < HeaderLen {
		return false
	}
	h, err := fr.r.Peek(HeaderLen) // from the buffer: no read
	if err != nil {
		return false
	}
	n := int(binary.BigEndian.Uint32(h[:4]))
	return n <= max && fr.r.Buffered() >= HeaderLen-1+n
}

// ReadMessage reads and decodes one frame.
func (fr *Reader) ReadMessage() (Message, error) {
	k, body, err := fr.Next()
	if err != nil {
		return nil, err
	}
	return Decode(k, body)
}
