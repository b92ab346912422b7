package importgraph

import (
	"fmt"
	"sort"
	"strings"
)

// Module is this module's path.
const Module = "github.com/theus-run/theus"

// Allowed maps each package of the module (relative to its root; a pattern
// ending in "/*" matches every package below) to the module packages it may
// import. A package missing from the map fails the test until it is placed
// in the graph.
var Allowed = map[string][]string{
	// The supervisor command also re-executes itself as the default worker
	// (worker, demo), runs the --demo workload through a client (client,
	// demo), names the socket's default path and commit modes (ipc, cas),
	// and parses --plugin into the pool's plugin policy (pool).
	// (flux: a file that does not load exits with status 2; schema: the
	// --schema file is compiled here, a bad one exits with status 4.)
	// (observe: the --http listener, which reads the supervisor.)
	"cmd/theus-supervisor": {"supervisor", "cas", "durable", "ipc", "worker", "demo", "client", "pool", "flux", "schema", "observe", "internal/gcfloor"},
	"cmd/theusctl":         {"client", "protocol"},
	// The load generator starts its own supervisor (re-executing itself as
	// its worker, and as the go-plugin peer) or drives one through clients.
	"cmd/theus-bench":     {"supervisor", "pool", "client", "demo", "worker", "durable", "protocol", "internal/gcfloor", "internal/golabel"},
	"cmd/theus-worker":    {"worker", "demo"},
	"cmd/theus-lint":      {"lint"},
	"demo":                {"worker", "client", "protocol", "shm"}, // demo processes (SDK) and workload (client)
	"examples/contention": {"cas", "vip", "contract"},              // the engine alone, in one process
	"examples/*":          {"worker"},
	"supervisor":          {"pool", "heavy", "durable", "cas", "vip", "shm", "ipc", "protocol", "contract", "flux", "signal", "schema", "audit", "internal/gopool", "internal/deadline", "etcdstore", "observe", "internal/golabel"},
	// Metrics, the status page and the HTTP listener: it reads the
	// supervisor's counters through an interface, never the supervisor.
	"observe": {"protocol"},
	// The Flux language and its run engine: it reads snapshots and runs
	// steps through the Host the supervisor gives it.
	"flux":                         {"cas", "contract", "signal", "internal/golabel"},
	"client":                       {"ipc", "protocol"},
	"worker":                       {"ipc", "protocol", "shm", "contract", "internal/gopool", "internal/deadline", "ring"},
	"worker/dense":                 {"worker", "shm"},
	"worker/workertest":            {"worker", "ipc", "protocol", "shm", "contract"},
	"pool":                         {"ipc", "protocol", "shm", "heavy", "ring", "internal/cpulimit", "internal/golabel"},
	"heavy":                        {"shm", "ipc", "protocol"},
	"cas":                          {"contract", "vip"},
	"durable":                      {"cas", "contract", "internal/golabel"},
	"signal":                       {"cas", "contract"},
	"schema":                       {"contract"}, // the schema gate: patterns and compiled JSON Schemas
	"ipc":                          {"protocol"},
	"shm":                          {},
	"ring":                         {"shm", "protocol"}, // the supervisor <-> worker ring pair in a shm memfd
	"vip":                          {},
	"audit":                        {"contract"}, // audit recipes and their counters; never the store
	"protocol":                     {},
	"contract":                     {},
	"lint":                         {"contract"},         // the POP analyzers read Go source, not the runtime
	"internal/gopool":              {"internal/golabel"}, // goroutines kept for the next request (supervisor, worker)
	"internal/deadline":            {},                   // the executes' and the dispatches' timeouts (supervisor, worker)
	"internal/gcfloor":             {},                   // the GC floor of the supervisor binary and theus-bench (never a library)
	"internal/cpulimit":            {},                   // the cgroup's CPU quota, for the pool's poll gate
	"internal/golabel":             {},                   // the pprof labels of the long-lived goroutines (supervisor, pool, durable; read by theus-bench)
	"internal/golabel/golabeltest": {"internal/golabel"}, // reads the labels back from a goroutine profile, for tests
	"internal/race":                {},                   // whether a test binary runs under -race, for the programs it builds and starts (test files only)
	"internal/testcache":           {},                   // tests that build or run the module through another program read its sources (test files only)
	"internal/outbuf":              {},                   // a process's or a log's output that a test reads while it is written (test files only)
	"internal/importgraph":         {},
	"internal/doclinks":            {},
	// Runs Python programs written from docs/PROTOCOL.md alone against a
	// supervisor it builds; it imports nothing of the module.
	"conformance": {},
	// Runs the Python SDK's pytest suite (python/tests); no Go code of its own.
	"python": {},
	// The Context in etcd, a cas.Engine; its size limits are bad_request
	// errors (protocol).
	"etcdstore": {"cas", "contract", "protocol", "vip"}, // vip: ticket events, for the same counters as the local arbiter's
	// The porcupine model the linearizability tests of cas and etcdstore
	// share.
	"internal/regmodel": {},
	// A real etcd cluster in the calling process (tests, scripts).
	"internal/etcdtest": {},
	// The headless Chromium of the browser tests (test files only).
	"internal/browsertest": {},
	// Tests of several supervisors on one etcd cluster; no code of its own.
	"internal/clustertest": {},
	// The processes of the supervisor's tests, and the worker that serves
	// them (test files only).
	"internal/testprocs":            {"worker", "demo", "shm"},
	"internal/testprocs/testworker": {"internal/testprocs"},
	// A small etcd cluster on loopback for scripts/cluster.sh.
	"cmd/theus-etcd": {"internal/etcdtest"},
	// theus in a WebAssembly page: the engine packages the supervisor
	// uses (no fork), JavaScript processes in place of workers.
	"wasm":           {"cas", "contract", "vip", "flux", "signal", "protocol", "internal/gopool"},
	"cmd/theus-wasm": {"wasm"},
}

func match(pattern, pkg string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(pkg, prefix+"/")
	}
	return pattern == pkg
}

// rule returns the allowed imports of pkg and whether pkg is in the graph.
func rule(pkg string) ([]string, bool) {
	if allowed, ok := Allowed[pkg]; ok {
		return allowed, true
	}
	for pattern, allowed := range Allowed {
		if match(pattern, pkg) {
			return allowed, true
		}
	}
	return nil, false
}

// Check returns one message per forbidden edge in imports (package ->
// module packages it imports, both relative to the module root).
func Check(imports map[string][]string) []string {
	var bad []string
	for pkg, deps := range imports {
		allowed, ok := rule(pkg)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s is not in the import graph (add it to importgraph.Allowed and docs/ARCHITECTURE.md)", pkg))
			continue
		}
		for _, dep := range deps {
			okDep := false
			for _, a := range allowed {
				if match(a, dep) {
					okDep = true
					break
				}
			}
			if !okDep {
				bad = append(bad, fmt.Sprintf("%s must not import %s", pkg, dep))
			}
		}
	}
	sort.Strings(bad)
	return bad
}
