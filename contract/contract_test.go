package contract

import (
	"errors"
	"strings"
	"testing"
)

func paths(ss ...string) []Path {
	ps, err := parseAll(ss...)
	if err != nil {
		panic(err)
	}
	return ps
}

func TestNewRefusesImpossibleContracts(t *testing.T) {
	tests := []struct {
		name     string
		in, out  []Path
		sem      Semantic
		wantRule error
	}{
		{name: "private input", in: paths("domain.internal_key"), wantRule: ErrPrivateRead},
		{name: "const output", out: paths("global.const_rate"), wantRule: ErrConstWrite},
		{name: "private output", out: paths("global.internal_flux"), wantRule: ErrPrivateWrite},
		{name: "pure reads signal", in: paths("domain.sig_go"), sem: Pure, wantRule: ErrSignalInPure},
		{name: "invalid path", in: []Path{"a..b"}, wantRule: ErrInvalidPath},
		{name: "invalid output", out: []Path{"domain.x", "b."}, wantRule: ErrInvalidPath},
		{name: "const output under a data one", out: paths("domain.x", "domain.x.const_y"), wantRule: ErrConstWrite},
		{name: "bad semantic", sem: Semantic(9), wantRule: ErrInvalidContract},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New("p", tt.in, tt.out, tt.sem)
			if !errors.Is(err, tt.wantRule) {
				t.Fatalf("New error = %v; want %v", err, tt.wantRule)
			}
		})
	}
	if _, err := New("p", paths("domain.sig_go"), nil, Effect); err != nil {
		t.Fatalf("an EFFECT process may read signals: %v", err)
	}
}

func TestChecks(t *testing.T) {
	c, err := New("bank.transfer",
		paths("domain.accounts", "domain.log_audit", "global"),
		paths("domain.accounts", "domain.log_audit", "domain"),
		Pure)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		read     bool
		op       Op
		wantRule error
	}{
		{name: "read declared subtree", path: "domain.accounts.alice", read: true},
		{name: "read undeclared", path: "domain.orders", read: true, wantRule: ErrUndeclaredRead},
		{name: "read private under declared", path: "domain.accounts.internal_pin", read: true, wantRule: ErrPrivateRead},
		{name: "pure read signal under declared", path: "global.sig_tick", read: true, wantRule: ErrSignalInPure},
		{name: "write declared", path: "domain.accounts.bob", op: OpSet},
		{name: "delete declared", path: "domain.accounts.bob", op: OpDelete},
		{name: "write undeclared", path: "global.rate", op: OpSet, wantRule: ErrUndeclaredWrite},
		{name: "write const under declared", path: "domain.const_fee", op: OpSet, wantRule: ErrConstWrite},
		{name: "write private under declared", path: "domain.accounts.internal_pin", op: OpSet, wantRule: ErrPrivateWrite},
		{name: "delete private under declared", path: "domain.accounts.internal_pin", op: OpDelete, wantRule: ErrPrivateWrite},
		{name: "append log root", path: "domain.log_audit", op: OpAppend},
		{name: "set log root", path: "domain.log_audit", op: OpSet, wantRule: ErrLogNotAppend},
		{name: "overwrite log entry", path: "domain.log_audit.00000000000000000001", op: OpSet, wantRule: ErrLogNotAppend},
		{name: "delete log entry", path: "domain.log_audit.00000000000000000001", op: OpDelete, wantRule: ErrLogNotAppend},
		{name: "append outside log", path: "domain.accounts", op: OpAppend, wantRule: ErrAppendNotLog},
		{name: "append inside log entry", path: "domain.log_audit.x", op: OpAppend, wantRule: ErrAppendNotLog},
		{name: "unknown op", path: "domain.x", op: Op(77), wantRule: ErrInvalidContract},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MustParse(tt.path)
			var err error
			if tt.read {
				err = c.CheckRead(p)
			} else {
				err = c.CheckWrite(p, tt.op)
			}
			if tt.wantRule == nil {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantRule) {
				t.Fatalf("error = %v; want %v", err, tt.wantRule)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %q does not name %s", err, tt.path)
			}
			var v *Violation
			if errors.As(err, &v) && v.Path != p {
				t.Fatalf("violation path %q; want %q", v.Path, p)
			}
		})
	}
}

func TestCheckRefusesUnvalidatedPath(t *testing.T) {
	c, _ := New("p", paths("domain"), paths("domain"), Pure)
	if err := c.CheckWrite(Path("domain..x"), OpSet); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("got %v", err)
	}
	if err := c.CheckRead(Path("")); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("got %v", err)
	}
}

func TestKeysMinimal(t *testing.T) {
	c, err := New("p", paths("domain.a", "domain.b.x", "domain.a.y"), paths("domain.b", "domain.a", "domain.c"), Pure)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Keys()
	want := paths("domain.a", "domain.b", "domain.c")
	if len(got) != len(want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Keys = %v, want %v", got, want)
		}
	}
}

// Keys with more outputs than inputs, duplicates and nesting: the
// outermost paths, each once, in declaration order.
func TestKeysMoreOutputs(t *testing.T) {
	c, err := New("p", paths("domain.z.q"), paths("domain.y", "domain.z", "domain.y", "domain.y.w"), Effect)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Keys()
	if want := paths("domain.y", "domain.z"); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	if k := (Contract{}).Keys(); len(k) != 0 {
		t.Fatalf("Keys of the empty contract: %v", k)
	}
}
