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
