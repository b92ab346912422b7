package cas_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// TestAppendEntryLimits: an append is accepted iff its entry path, the
// root plus a dot and 20 digits, is a valid path: at most MaxPathLen
// bytes and MaxPathDepth segments.
func TestAppendEntryLimits(t *testing.T) {
	longest := "d." + strings.Repeat("a", contract.MaxPathLen-1-20-2) // entry path exactly MaxPathLen
	deepest := strings.TrimSuffix(strings.Repeat("a.", contract.MaxPathDepth-1), ".")
	for _, c := range []struct {
		name, root string
		ok         bool
	}{
		{"longest root", longest, true},
		{"root one byte longer", longest + "a", false},
		{"deepest root", deepest, true},
		{"root one segment deeper", deepest + ".a", false},
	} {
		s := cas.New(cas.Config{})
		var d cas.Delta
		d.Append(P(c.root), []byte("1"))
		_, err := s.Commit(bg, 0, nil, d, cas.Options{})
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, cas.ErrInvalidDelta) {
			t.Errorf("%s (%d bytes): %v, want ok %v", c.name, len(c.root), err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		sn := s.Snapshot()
		es := sn.Subtree(P(c.root))
		sn.Release()
		if len(es) != 1 || len(es[0].Path) > contract.MaxPathLen {
			t.Errorf("%s: entries %v", c.name, es)
		} else if _, err := contract.Parse(string(es[0].Path)); err != nil {
			t.Errorf("%s: entry path %v", c.name, err)
		}
	}
}

// TestMaxValueLen: a value or a signal of MaxValueLen bytes commits, one
// byte more is an invalid delta and commits nothing.
func TestMaxValueLen(t *testing.T) {
	s := cas.New(cas.Config{})
	big := make([]byte, cas.MaxValueLen+1)
	for _, op := range []contract.Op{contract.OpSet, contract.OpAppend} {
		d := cas.Delta{{Path: "domain.v", Op: op, Value: big}}
		if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); !errors.Is(err, cas.ErrInvalidDelta) || s.Version() != 0 {
			t.Fatalf("%v of %d bytes: %v at version %d", op, len(big), err, s.Version())
		}
	}
	sig := []cas.Write{{Path: "domain.sig_x", Op: contract.OpSet, Value: big}}
	if _, err := s.Commit(bg, s.Version(), nil, nil, cas.Options{Signals: sig}); !errors.Is(err, cas.ErrInvalidDelta) || s.Version() != 0 {
		t.Fatalf("a signal of %d bytes: %v at version %d", len(big), err, s.Version())
	}
	d := cas.Delta{{Path: "domain.v", Op: contract.OpSet, Value: big[:cas.MaxValueLen]}}
	if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); err != nil {
		t.Fatalf("a value of MaxValueLen bytes: %v", err)
	}
	sig[0].Value = big[:cas.MaxValueLen]
	if _, err := s.Commit(bg, s.Version(), nil, nil, cas.Options{Signals: sig}); err != nil {
		t.Fatalf("a signal of MaxValueLen bytes: %v", err)
	}
}

// TestInvalidReadSet: a read set with an invalid path is an invalid
// delta and commits nothing, whether or not its other reads are paths the
// delta writes (those are parsed once, with the delta).
func TestInvalidReadSet(t *testing.T) {
	s := cas.New(cas.Config{})
	d := cas.Delta{{Path: "domain.a", Op: contract.OpSet, Value: []byte{1}}}
	long := make([]cas.Write, 20) // past the delta's short scan
	for i := range long {
		long[i] = cas.Write{Path: contract.Path("domain.w" + strconv.Itoa(i)), Op: contract.OpSet, Value: []byte{1}}
	}
	for _, c := range []struct {
		reads []contract.Path
		delta cas.Delta
	}{
		{[]contract.Path{"domain..a"}, d},
		{[]contract.Path{"domain.a", "domain..a"}, d},
		{[]contract.Path{"domain..a", "domain.a"}, d},
		{[]contract.Path{"domain.w3", "domain.a b"}, long},
	} {
		if _, err := s.Commit(bg, s.Version(), c.reads, c.delta, cas.Options{}); !errors.Is(err, cas.ErrInvalidDelta) || !errors.Is(err, contract.ErrInvalidPath) || s.Version() != 0 {
			t.Fatalf("reads %q: %v at version %d, want an invalid path and nothing committed", c.reads, err, s.Version())
		}
	}
	if _, err := s.Commit(bg, s.Version(), []contract.Path{"domain.a", "domain.b"}, d, cas.Options{}); err != nil {
		t.Fatalf("a valid read set: %v", err)
	}
}

// TestCommitWithDoneContext: a caller that has given up commits nothing,
// VIP ticket or not.
func TestCommitWithDoneContext(t *testing.T) {
	s := cas.New(cas.Config{})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := s.Commit(ctx, 0, nil, cas.Delta{{Path: "domain.x", Op: contract.OpSet}}, cas.Options{})
	if !errors.Is(err, context.Canceled) || s.Version() != 0 {
		t.Fatalf("Commit with a canceled context: %v at version %d", err, s.Version())
	}
}

func TestModeString(t *testing.T) {
	if cas.Smart.String() != "smart" || cas.Strict.String() != "strict" {
		t.Fatalf("%q %q", cas.Smart, cas.Strict)
	}
}

func TestConflictErrorText(t *testing.T) {
	for _, c := range []struct {
		err  cas.ConflictError
		want string
	}{
		{cas.ConflictError{Snapshot: 1, Current: 3, Reason: "strict"}, "cas: conflict: snapshot 1, store at 3 (strict)"},
		{cas.ConflictError{Snapshot: 1, Current: 3, Paths: Ps("domain.a")}, "cas: conflict: snapshot 1, store at 3: changed domain.a"},
		{cas.ConflictError{Snapshot: 2, Current: 4, Paths: Ps("domain.a", "domain.b")}, "cas: conflict: snapshot 2, store at 4: changed domain.a, domain.b"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestRestoreRefuses: Restore checks what it is given and refuses an
// inconsistent state whole.
func TestRestoreRefuses(t *testing.T) {
	good := func() cas.State {
		return cas.State{
			Version: 5,
			Entries: []cas.Entry{{Path: "domain.a", Value: []byte("1"), Version: 3}},
			Seqs:    map[contract.Path]uint64{"domain.log": 2},
			OpIDs:   []cas.OpRecord{{ID: "op-1", Version: 3}},
		}
	}
	if _, err := cas.Restore(cas.Config{}, good()); err != nil {
		t.Fatalf("a good state: %v", err)
	}
	for name, bend := range map[string]func(*cas.State){
		"invalid entry path":    func(st *cas.State) { st.Entries[0].Path = "domain..a" },
		"entry at version 0":    func(st *cas.State) { st.Entries[0].Version = 0 },
		"entry after the store": func(st *cas.State) { st.Entries[0].Version = 6 },
		"a path twice":          func(st *cas.State) { st.Entries = append(st.Entries, cas.Entry{Path: "domain.a", Version: 4}) },
		"invalid LOG root":      func(st *cas.State) { st.Seqs["domain..log"] = 1 },
		"op id at version 0":    func(st *cas.State) { st.OpIDs[0].Version = 0 },
		"op id after the store": func(st *cas.State) { st.OpIDs[0].Version = 6 },
		"op id too long":        func(st *cas.State) { st.OpIDs[0].ID = strings.Repeat("x", cas.MaxOpIDLen+1) },
		"empty op id":           func(st *cas.State) { st.OpIDs[0].ID = "" },
	} {
		st := good()
		bend(&st)
		if s, err := cas.Restore(cas.Config{}, st); err == nil {
			t.Errorf("%s: restored (%d paths)", name, s.Len())
		}
	}
}

// TestLongDeltaWrittenTwice: a delta past the short scan finds a path set
// twice (or set and deleted) with a map; appends to one root, which a
// delta may repeat, are not duplicates there either.
func TestLongDeltaWrittenTwice(t *testing.T) {
	long := func() cas.Delta {
		d := make(cas.Delta, 20)
		for i := range d {
			d[i] = cas.Write{Path: contract.Path("domain.w" + strconv.Itoa(i)), Op: contract.OpSet, Value: []byte{1}}
		}
		return d
	}
	s := cas.New(cas.Config{})
	// 16 writes are scanned write by write, 17 and 20 checked with a map.
	for _, n := range []int{16, 17, 20} {
		dup := long()[:n]
		dup[n-2] = cas.Write{Path: "domain.w3", Op: contract.OpDelete}
		if _, err := s.Commit(bg, 0, nil, dup, cas.Options{}); !errors.Is(err, cas.ErrInvalidDelta) || !strings.Contains(err.Error(), "domain.w3 is written twice") || s.Version() != 0 {
			t.Fatalf("a delta of %d writes writing domain.w3 twice: %v at version %d", n, err, s.Version())
		}
	}
	logs := long()
	logs[5] = cas.Write{Path: "domain.log", Op: contract.OpAppend, Value: []byte{1}}
	logs[15] = cas.Write{Path: "domain.log", Op: contract.OpAppend, Value: []byte{2}}
	if _, err := s.Commit(bg, 0, nil, logs, cas.Options{}); err != nil {
		t.Fatalf("a long delta appending twice to one log: %v", err)
	}
}
