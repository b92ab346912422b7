package contract

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "simple", in: "domain.accounts.alice", ok: true},
		{name: "one segment", in: "heavy", ok: true},
		{name: "dash and underscore", in: "domain.a-b.c_d.X9", ok: true},
		{name: "empty", in: ""},
		{name: "leading dot", in: ".domain"},
		{name: "trailing dot", in: "domain."},
		{name: "double dot", in: "domain..x"},
		{name: "space", in: "domain.a b"},
		{name: "slash", in: "domain/a"},
		{name: "unicode", in: "domain.é"},
		{name: "max length", in: "d." + strings.Repeat("a", MaxPathLen-2), ok: true},
		{name: "too long", in: "d." + strings.Repeat("a", MaxPathLen-1)},
		{name: "max depth", in: strings.TrimSuffix(strings.Repeat("a.", MaxPathDepth), "."), ok: true},
		{name: "too deep", in: strings.TrimSuffix(strings.Repeat("a.", MaxPathDepth+1), ".")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in)
			if tt.ok {
				if err != nil || string(p) != tt.in {
					t.Fatalf("Parse(%q) = %q, %v; want ok", tt.in, p, err)
				}
				return
			}
			var pe *PathError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("Parse(%q) error = %v; want *PathError", tt.in, err)
			}
			if len(tt.in) < 40 && !strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error %q does not name the path %q", err, tt.in)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		root, q string
		want    bool
	}{
		{"domain.accounts", "domain.accounts", true},
		{"domain.accounts", "domain.accounts.alice", true},
		{"domain.accounts", "domain.accountsX", false},
		{"domain.accounts", "domain", false},
		{"domain.accounts.alice", "domain.accounts", false},
		{"a", "b.a", false},
	}
	for _, tt := range tests {
		if got := MustParse(tt.root).Covers(MustParse(tt.q)); got != tt.want {
			t.Errorf("%s covers %s = %v, want %v", tt.root, tt.q, got, tt.want)
		}
	}
	if !MustParse("a.b").Overlaps("a") || MustParse("a.b").Overlaps("a.c") {
		t.Error("Overlaps is wrong")
	}
}

func TestLayerAndZone(t *testing.T) {
	tests := []struct {
		path  string
		layer Layer
		zone  Zone
	}{
		{"domain.counter", LayerDomain, ZoneData},
		{"global.cfg", LayerGlobal, ZoneData},
		{"local.tmp", LayerLocal, ZoneData},
		{"heavy.weights", LayerOther, ZoneHeavy},
		{"domain.heavy_img", LayerDomain, ZoneHeavy},
		{"domain.heavyweight", LayerDomain, ZoneData},
		{"domain.sig_ready", LayerDomain, ZoneSignal},
		{"domain.cmd_stop", LayerDomain, ZoneSignal},
		{"domain.meta_stats", LayerDomain, ZoneMeta},
		{"domain.log_events.00001", LayerDomain, ZoneLog},
		{"global.const_rate", LayerGlobal, ZoneConst},
		{"domain.internal_key", LayerDomain, ZonePrivate},
		{"domain.const_cfg.internal_x", LayerDomain, ZoneConst}, // outermost wins for Zone
	}
	for _, tt := range tests {
		p := MustParse(tt.path)
		if p.Layer() != tt.layer || p.Zone() != tt.zone {
			t.Errorf("%s: layer %v zone %v; want %v %v", tt.path, p.Layer(), p.Zone(), tt.layer, tt.zone)
		}
	}
	p := MustParse("domain.const_cfg.internal_x")
	if !p.InZone(ZonePrivate) || !p.InZone(ZoneConst) || p.InZone(ZoneLog) {
		t.Error("InZone must see every segment")
	}
	if r, ok := MustParse("domain.log_ev.0001").LogRoot(); !ok || r != "domain.log_ev" {
		t.Errorf("LogRoot = %q %v", r, ok)
	}
}

// FuzzParse checks that Parse never panics, accepts exactly the grammar,
// and that what it accepts round-trips through Segments.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"domain.a", "", ".", "a..b", "heavy_x.log_y.1", strings.Repeat("a.", 40), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error %v is not ErrInvalidPath", err)
			}
			if grammarOK(s) {
				t.Fatalf("rejected valid path %q: %v", s, err)
			}
			return
		}
		if !grammarOK(s) {
			t.Fatalf("accepted invalid path %q", s)
		}
		if strings.Join(p.Segments(), ".") != s {
			t.Fatalf("segments of %q do not round-trip", s)
		}
		_ = p.Zone()
		_ = p.Layer()
		if par, ok := p.Parent(); ok && !par.Covers(p) {
			t.Fatalf("parent %q does not cover %q", par, p)
		}
	})
}

// grammarOK is an independent statement of the path grammar.
func grammarOK(s string) bool {
	if s == "" || len(s) > MaxPathLen {
		return false
	}
	segs := strings.Split(s, ".")
	if len(segs) > MaxPathDepth {
		return false
	}
	for _, seg := range segs {
		if seg == "" {
			return false
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Every byte, as a segment's second byte: Parse takes exactly
// [A-Za-z0-9_-] and names the offending byte otherwise.
func TestParseEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		s := "domain.a" + string([]byte{byte(b)})
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
		_, err := Parse(s)
		if b == '.' {
			ok = false // an empty last segment
		}
		if (err == nil) != ok {
			t.Errorf("byte %#x: Parse(%q) = %v, want ok %v", b, s, err, ok)
		}
		if err != nil && b != '.' && !strings.Contains(err.Error(), "byte 8 is") {
			t.Errorf("byte %#x: %v does not name byte 8", b, err)
		}
	}
}

// A PathError shows at most MaxPathLen+16 bytes of the input.
func TestPathErrorTruncates(t *testing.T) {
	for _, n := range []int{MaxPathLen + 16, MaxPathLen + 17, 4 * MaxPathLen} {
		in := strings.Repeat("a", n)
		_, err := Parse(in)
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		want := in
		if n > MaxPathLen+16 {
			want = in[:MaxPathLen+16] + "..."
		}
		if pe.Path != want || pe.Reason != "longer than 256 bytes" {
			t.Errorf("%d bytes: PathError shows %d bytes (%q)", n, len(pe.Path), pe.Reason)
		}
	}
}

func TestMustParseAndparseAll(t *testing.T) {
	if p := MustParse("domain.a"); p != "domain.a" {
		t.Fatalf("MustParse = %q", p)
	}
	ps, err := parseAll("domain.a", "global")
	if err != nil || len(ps) != 2 || ps[1] != "global" {
		t.Fatalf("ParseAll = %v, %v", ps, err)
	}
	if ps, err := parseAll("domain.a", "domain..b", "global"); ps != nil || !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), "domain..b") {
		t.Fatalf("ParseAll with an invalid path = %v, %v", ps, err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("MustParse of an invalid path did not panic")
		}
	}()
	MustParse("domain..a")
}

func TestParentAndChild(t *testing.T) {
	if p, ok := MustParse("domain.a.b").Parent(); !ok || p != "domain.a" {
		t.Errorf("Parent(domain.a.b) = %q, %v", p, ok)
	}
	if p, ok := MustParse("domain").Parent(); ok || p != "" {
		t.Errorf("Parent(domain) = %q, %v", p, ok)
	}
	if c, err := MustParse("domain.a").Child("b"); err != nil || c != "domain.a.b" {
		t.Errorf("Child = %q, %v", c, err)
	}
	if _, err := MustParse("domain.a").Child("b.c."); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Child with a bad segment: %v", err)
	}
}

func TestStrings(t *testing.T) {
	for z, want := range map[Zone]string{ZoneData: "DATA", ZoneHeavy: "HEAVY", ZoneSignal: "SIGNAL", ZoneMeta: "META", ZoneLog: "LOG", ZoneConst: "CONST", ZonePrivate: "PRIVATE", ZonePrivate + 1: "UNKNOWN", 255: "UNKNOWN"} {
		if z.String() != want {
			t.Errorf("Zone(%d) = %q, want %q", z, z.String(), want)
		}
	}
	for l, want := range map[Layer]string{LayerOther: "other", LayerGlobal: "global", LayerDomain: "domain", LayerLocal: "local", 9: "other"} {
		if l.String() != want {
			t.Errorf("Layer(%d) = %q, want %q", l, l.String(), want)
		}
	}
	for o, want := range map[Op]string{OpSet: "set", OpDelete: "delete", OpAppend: "append", 0: "op(0)", 9: "op(9)"} {
		if o.String() != want {
			t.Errorf("Op(%d) = %q, want %q", o, o.String(), want)
		}
	}
	if Pure.String() != "PURE" || Effect.String() != "EFFECT" {
		t.Errorf("semantics: %s %s", Pure, Effect)
	}
	v := &Violation{Path: "domain.x", Rule: ErrConstWrite}
	if v.Error() != "contract: write of a CONST path: domain.x" {
		t.Errorf("violation without a process: %q", v.Error())
	}
	v.Process = "p"
	if v.Error() != "contract: write of a CONST path: domain.x (process p)" || !errors.Is(v, ErrConstWrite) {
		t.Errorf("violation of p: %q", v.Error())
	}
}

// parseAll parses every string in ss, stopping at the first invalid one.
func parseAll(ss ...string) ([]Path, error) {
	out := make([]Path, 0, len(ss))
	for _, s := range ss {
		p, err := Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
