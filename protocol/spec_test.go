package protocol

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// The wire spec, docs/PROTOCOL.md, shows one frame of every message
// kind as the real encoder writes it, between marker comments
// (<!-- example:NAME --> ... <!-- /example -->). TestSpecExamples fails
// when a block differs from what the encoder writes now, so the
// document cannot drift from the code; -update rewrites the blocks.

var update = flag.Bool("update", false, "rewrite the example blocks of docs/PROTOCOL.md from the encoder")

const specPath = "../docs/PROTOCOL.md"

const regenerate = "go test ./protocol -run TestSpecExamples -update"

// specExample is one message of the spec, under the marker name.
type specExample struct {
	name string
	m    Message
}

// specExamples holds at least one example of every kind, with small,
// realistic values (the demo's counter.add and bank processes).
func specExamples() []specExample {
	noErr := (*Error)(nil)
	return []specExample{
		{"Hello", &Hello{Magic: Magic, Protocol: Version, Build: "v0.4.0", PID: 4242, Processes: []ProcessInfo{
			{Name: "counter.add", Inputs: []string{"domain.counter"}, Outputs: []string{"domain.counter"}, Semantic: "pure"},
			{Name: "bank.open", Inputs: []string{"domain.accounts.{account}"}, Outputs: []string{"domain.accounts.{account}"}, Semantic: "effect"},
		}}},
		{"Welcome", &Welcome{Protocol: Version, Slot: 0, HeartbeatMS: 1000, Slab: 1, InlineMax: 2048}},
		{"Refuse", &Refuse{Err: Error{Code: CodeProtocol, Message: "worker speaks \"theus/1\" version 1; this supervisor speaks \"theus/1\" version 2"}}},
		{"Mapped", &Mapped{Slab: 1}},
		{"Dispatch", &Dispatch{ID: 1, Attempt: 1, Process: "counter.add", Version: 41,
			Inputs: []Entry{{Path: "domain.counter", Value: []byte("4"), Version: 40}}, Args: []byte(`{"by":1}`), Deadline: 1767225600000000000}},
		{"Result", &Result{ID: 1, Writes: []Write{{Path: "domain.counter", Op: 1, Value: []byte("5")}}, Result: []byte("5"), Err: noErr,
			Reads: []string{"domain.counter"}, ReadsKnown: true}},
		{"Result-error", &Result{ID: 2, Err: &Error{Code: "insufficient_funds", Message: "alice has 30, needs 50"}}},
		{"Alloc", &Alloc{ID: 1, Dispatch: 3, Size: 4096}},
		{"Grant", &Grant{ID: 1, Slab: 1, Off: 64, Len: 4096, Gen: 1}},
		{"Grant-error", &Grant{ID: 2, Err: &Error{Code: CodeArenaFull, Message: "heavy: no free block of 67108864 bytes"}}},
		{"Cancel", &Cancel{ID: 1}},
		{"Ping", &Ping{Seq: 7}},
		{"Pong", &Pong{Seq: 7}},
		{"Execute", &Execute{ID: 1, Process: "counter.add", Args: []byte(`{"by":1}`), OpID: "op-7", TimeoutMS: 5000}},
		{"Execute-no-args", &Execute{ID: 2, Process: "noop"}},
		{"Reply", &Reply{ID: 1, Version: 42, Attempts: 1, Result: []byte("5"), Mode: "smart"}},
		{"Reply-error", &Reply{ID: 3, Err: &Error{Code: CodeUnknownProcess, Message: `no process "count"`}, Mode: "smart"}},
		{"Get", &Get{ID: 4, Path: "domain.counter"}},
		{"GetReply", &GetReply{ID: 4, Version: 42, Entries: []Entry{{Path: "domain.counter", Value: []byte("5"), Version: 42}}}},
		{"GetReply-not_found", &GetReply{ID: 5, Version: 42, Err: &Error{Code: CodeNotFound, Message: "nothing at or under this path", Path: "domain.missing"}}},
		{"Status", &Status{ID: 6}},
		{"StatusReply", &StatusReply{ID: 6, Version: 42, Commits: 42, Conflicts: 3, Retries: 3, VIP: 0, Failures: 1, Mode: "smart",
			Workers:    []WorkerStatus{{Slot: 0, PID: 4242, State: "ready", InFlight: 0, Processed: 46, Restarts: 0}},
			Processes:  []string{"bank.open", "counter.add"},
			Heavy:      HeavyStatus{Size: 1 << 30, SlabSize: 1 << 30, Slabs: 1, Held: 1 << 30, InUse: 4160, Blocks: 1, LargestFree: 1<<30 - 4160, InlineMax: 2048},
			Durability: "sync", Durable: 42, Batches: 40, Persisted: 42}},
		{"Backup", &Backup{ID: 7, Path: "/var/backups/theus.db"}},
		{"BackupReply", &BackupReply{ID: 7, Version: 42, Paths: 3, OpIDs: 1, Bytes: 32768}},
		{"Call", &Call{ID: 8, Method: MethodSignalPublish, Body: []byte(`{"path":"domain.cmd_go"}`)}},
		{"CallReply", &CallReply{ID: 8, Body: []byte(`{"version":43}`)}},
		{"Subscribe", &Subscribe{ID: 9, Method: StreamSignals, Body: []byte(`{"prefix":"domain"}`)}},
		{"Event", &Event{ID: 9, Body: []byte(`{"version":43,"path":"domain.cmd_go","value":null}`)}},
		{"Unsubscribe", &Unsubscribe{ID: 9}},
	}
}

// specSlabPacket is the spec's example slab packet: a worker's own
// slab of 32 MiB, to map read-write.
var specSlabPacket = SlabPacket{Op: SlabMapRW, Slab: 1, Size: 32 << 20}

// specBlocks returns the text each example block must hold, by name.
func specBlocks(t *testing.T) map[string]string {
	t.Helper()
	blocks := map[string]string{}
	for _, ex := range specExamples() {
		frame, err := AppendFrame(nil, ex.m)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		body := frame[HeaderLen:]
		// The example must decode to itself: it is a valid message.
		back, err := Decode(Kind(frame[4]), body)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		if again, _ := AppendFrame(nil, back); !bytes.Equal(again, frame) {
			t.Fatalf("%s: does not survive a round trip", ex.name)
		}
		value, rest, err := diag(body)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: %v (%d bytes left)", ex.name, err, len(rest))
		}
		blocks[ex.name] = fmt.Sprintf("```text\n%s\n%s\n%s\n```\n",
			column("value", wrap(value)), column("header", hexBytes(frame[:HeaderLen])), column("body", hexBytes(body)))
	}
	p := specSlabPacket.Append(nil)
	if _, err := ParseSlabPacket(p, 1); err != nil {
		t.Fatal(err)
	}
	op := map[byte]string{SlabMapRW: "map read-write", SlabMapRO: "map read-only", SlabUnmap: "unmap"}[specSlabPacket.Op]
	blocks["SlabPacket"] = fmt.Sprintf("```text\n%s\n%s\n```\n",
		column("value", fmt.Sprintf("op %d (%s), slab %d, size %d", specSlabPacket.Op, op, specSlabPacket.Slab, specSlabPacket.Size)),
		column("packet", hexBytes(p)))
	return blocks
}

var exampleRE = regexp.MustCompile(`(?s)<!-- example:([A-Za-z_-]+) -->\n(.*?)<!-- /example -->`)

// TestSpecExamples: every example block of the spec is exactly what the
// encoder writes, every example has a block and every block an example.
func TestSpecExamples(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	want := specBlocks(t)
	seen := map[string]bool{}
	var stale []string
	out := exampleRE.ReplaceAllFunc(doc, func(m []byte) []byte {
		sub := exampleRE.FindSubmatch(m)
		name := string(sub[1])
		if seen[name] {
			t.Errorf("%s: example %s appears twice", specPath, name)
		}
		seen[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: example %s is not one of the test's examples (protocol/spec_test.go)", specPath, name)
			return m
		}
		if string(sub[2]) != w {
			stale = append(stale, name)
		}
		return []byte("<!-- example:" + name + " -->\n" + w + "<!-- /example -->")
	})
	for name := range want {
		if !seen[name] {
			t.Errorf("%s has no block <!-- example:%s --> ... <!-- /example -->", specPath, name)
		}
	}
	for k := Kind(1); k < kindEnd; k++ {
		if !hasExample(k) {
			t.Errorf("message kind %d (%s) has no example in protocol/spec_test.go", k, k)
		}
	}
	if len(stale) == 0 {
		return
	}
	if *update {
		if err := os.WriteFile(specPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the examples %v of %s", stale, specPath)
		return
	}
	t.Errorf("%s: the examples %v are not what the encoder writes; regenerate them with: %s", specPath, stale, regenerate)
}

func hasExample(k Kind) bool {
	for _, ex := range specExamples() {
		if ex.m.Kind() == k {
			return true
		}
	}
	return false
}

// hexBytes writes b as hex, 16 bytes a line.
func hexBytes(b []byte) string {
	var lines []string
	for len(b) > 0 {
		n := min(16, len(b))
		h := hex.EncodeToString(b[:n])
		var s []string
		for i := 0; i < len(h); i += 2 {
			s = append(s, h[i:i+2])
		}
		lines = append(lines, strings.Join(s, " "))
		b = b[n:]
	}
	return strings.Join(lines, "\n")
}

// column puts label before the first line of text and indents the rest
// to match.
func column(label, text string) string {
	pad := strings.Repeat(" ", 7)
	lines := strings.Split(text, "\n")
	for i := range lines {
		if i == 0 {
			lines[i] = label + pad[len(label):] + lines[i]
		} else {
			lines[i] = pad + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

// sep separates the elements of an array in diag's output: a comma, and
// a NUL byte where wrap may break the line (never inside a quoted str,
// which escapes NUL, nor a bin, shown in hex when it holds one).
const sep = ",\x00"

// wrap turns diag's output into lines of about 64 columns at most,
// broken only between array elements.
func wrap(s string) string {
	var lines []string
	line := ""
	for part := range strings.SplitSeq(s, "\x00") {
		if line != "" && len(line)+1+len(part) > 64 {
			lines = append(lines, line)
			line = part
			continue
		}
		if line != "" {
			line += " "
		}
		line += part
	}
	return strings.Join(append(lines, line), "\n")
}

// diag writes one msgpack value in a readable notation: [a, b] for an
// array, "..." for a str, bin '...' for a bin (bin 0x... if not
// printable), nil, true, false and integers as they are.
func diag(b []byte) (string, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.ArrayType:
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return "", nil, err
		}
		items := make([]string, n)
		for i := range items {
			if items[i], rest, err = diag(rest); err != nil {
				return "", nil, err
			}
		}
		return "[" + strings.Join(items, sep) + "]", rest, nil
	case msgp.StrType:
		s, rest, err := msgp.ReadStringBytes(b)
		return strconv.Quote(s), rest, err
	case msgp.BinType:
		v, rest, err := msgp.ReadBytesZC(b)
		if utf8.Valid(v) && !bytes.ContainsAny(v, "'\n\t\x00") {
			return "bin '" + string(v) + "'", rest, err
		}
		return "bin 0x" + hex.EncodeToString(v), rest, err
	case msgp.NilType:
		rest, err := msgp.ReadNilBytes(b)
		return "nil", rest, err
	case msgp.BoolType:
		v, rest, err := msgp.ReadBoolBytes(b)
		return strconv.FormatBool(v), rest, err
	case msgp.UintType:
		v, rest, err := msgp.ReadUint64Bytes(b)
		return strconv.FormatUint(v, 10), rest, err
	case msgp.IntType:
		v, rest, err := msgp.ReadInt64Bytes(b)
		return strconv.FormatInt(v, 10), rest, err
	}
	return "", nil, fmt.Errorf("msgpack type %s is not used by the protocol", msgp.NextType(b))
}
