package contract

import "strings"

// Layer is the first axis of the context model, named by a path's first
// segment.
type Layer uint8

// Layers. LayerOther is a root segment that names no layer (heavy.x, for
// instance); it is allowed.
const (
	LayerOther  Layer = iota
	LayerGlobal       // configuration, read-mostly
	LayerDomain       // business state
	LayerLocal        // scratch, dropped after the process
)

func (l Layer) String() string {
	switch l {
	case LayerGlobal:
		return "global"
	case LayerDomain:
		return "domain"
	case LayerLocal:
		return "local"
	}
	return "other"
}

// Layer returns the layer named by p's first segment.
func (p Path) Layer() Layer {
	first, _, _ := strings.Cut(string(p), ".")
	switch first {
	case "global":
		return LayerGlobal
	case "domain":
		return LayerDomain
	case "local":
		return LayerLocal
	}
	return LayerOther
}

// Zone is the storage and access class of a path, named by segment prefixes.
type Zone uint8

// Zones, in no particular order.
const (
	ZoneData    Zone = iota // default: ACID, durable
	ZoneHeavy               // heavy, heavy_*: tensor descriptors
	ZoneSignal              // sig_*, cmd_*: transient events
	ZoneMeta                // meta_*: observability
	ZoneLog                 // log_*: append-only
	ZoneConst               // const_*: never written by a process
	ZonePrivate             // internal_*: the supervisor's own; never read or written by a process
)

var zoneNames = [...]string{"DATA", "HEAVY", "SIGNAL", "META", "LOG", "CONST", "PRIVATE"}

func (z Zone) String() string {
	if int(z) < len(zoneNames) {
		return zoneNames[z]
	}
	return "UNKNOWN"
}

// segmentZone returns the zone a single segment names, or ZoneData.
func segmentZone(seg string) Zone {
	switch {
	case seg == "heavy", strings.HasPrefix(seg, "heavy_"):
		return ZoneHeavy
	case strings.HasPrefix(seg, "sig_"), strings.HasPrefix(seg, "cmd_"):
		return ZoneSignal
	case strings.HasPrefix(seg, "meta_"):
		return ZoneMeta
	case strings.HasPrefix(seg, "log_"):
		return ZoneLog
	case strings.HasPrefix(seg, "const_"):
		return ZoneConst
	case strings.HasPrefix(seg, "internal_"):
		return ZonePrivate
	}
	return ZoneData
}

// Zone returns the zone of the outermost segment that names one, or
// ZoneData. Rules that must hold for a whole subtree use InZone instead.
func (p Path) Zone() Zone {
	s := string(p)
	for s != "" {
		seg, rest, _ := strings.Cut(s, ".")
		if z := segmentZone(seg); z != ZoneData {
			return z
		}
		s = rest
	}
	return ZoneData
}

// InZone reports whether any segment of p names zone z: p lies inside a
// subtree of that zone.
func (p Path) InZone(z Zone) bool {
	_, ok := p.zoneRoot(z)
	return ok
}

// zoneRoot returns the prefix of p ending at its outermost segment of zone z.
func (p Path) zoneRoot(z Zone) (Path, bool) {
	s := string(p)
	end := 0
	for {
		i := strings.IndexByte(s[end:], '.')
		segEnd := len(s)
		if i >= 0 {
			segEnd = end + i
		}
		if segmentZone(s[end:segEnd]) == z {
			return p[:segEnd], true
		}
		if i < 0 {
			return "", false
		}
		end = segEnd + 1
	}
}

// LogRoot returns the path of the log p belongs to (the prefix ending at its
// outermost log_* segment), and false when p is not in the LOG zone.
func (p Path) LogRoot() (Path, bool) { return p.zoneRoot(ZoneLog) }

// PrivateRoot returns the path of the PRIVATE subtree p belongs to (the
// prefix ending at its outermost internal_* segment), and false when p is
// not in the PRIVATE zone.
func (p Path) PrivateRoot() (Path, bool) { return p.zoneRoot(ZonePrivate) }
