package protocol

//go:generate go tool msgp -file messages.go -o messages_gen.go -tests=false -io=false

// The array limit also bounds bin and str lengths: it is the largest frame
// (a value is bounded by its frame; Check has verified every length fits
// the bytes left before any decode). Arrays of structs have their own.
//msgp:limit arrays:1073741824 maps:1024
//msgp:tuple Hello ProcessInfo Welcome Dispatch Entry Result Write Error Cancel Ping Execute Reply Get GetReply Status StatusReply WorkerStatus Refuse Alloc Grant Mapped HeavyStatus Backup BackupReply Call CallReply Subscribe Event Unsubscribe Emit

// Hello is a worker's first frame: who it is and what it can run.
type Hello struct {
	Magic     string        // must be Magic
	Protocol  uint16        // must be Version
	Build     string        // the worker's build version, for logs only
	PID       int64         // the worker's process id
	Processes []ProcessInfo `msg:",limit=4096"`
	// Ring: the worker mapped the ring pair the supervisor passed it
	// (THEUS_RING_FD); its Dispatches and Results may then travel in the
	// rings (docs/PROTOCOL.md#rings). False: the socket carries everything.
	Ring bool
}

// ProcessInfo is one process a worker can run and its contract.
type ProcessInfo struct {
	Name     string
	Inputs   []string `msg:",limit=1024"`
	Outputs  []string `msg:",limit=1024"`
	Semantic string   // "pure" or "effect"
}

// Welcome is the supervisor's answer to an accepted Hello.
type Welcome struct {
	Protocol    uint16
	Slot        int64 // the worker slot, for logs
	HeartbeatMS int64 // the worker should expect a Ping at least this often
	// Slab is the worker's own HEAVY slab (0: the zone is off, or has no
	// room for one). Its read-write descriptor, and a read-only one for
	// every other slab, arrive on the packet socket before this frame;
	// the worker maps them and answers Mapped before any Dispatch.
	Slab uint32
	// InlineMax is the size up to which a tensor travels inline, in the
	// DATA zone, instead of in the arena.
	InlineMax int64
}

// Mapped tells the supervisor that the worker has mapped its slab
// read-write: the supervisor then seals it against every other writable
// mapping.
type Mapped struct {
	Slab uint32
}

// Alloc asks the supervisor for a block of the worker's slab, for an
// output of the dispatch Dispatch (still in flight).
type Alloc struct {
	ID       uint64 // the request id, unique per worker
	Dispatch uint64
	Size     int64
}

// Grant answers an Alloc: a block of the worker's slab, or an error
// (arena_full, bad_request).
type Grant struct {
	ID   uint64
	Slab uint32
	Off  int64
	Len  int64
	Gen  uint64
	Err  *Error
}

// Refuse is the supervisor's answer to a Hello it does not accept; the
// worker exits after reading it.
type Refuse struct {
	Err Error
}

// Dispatch asks a worker to run a process once on a snapshot.
type Dispatch struct {
	ID       uint64 // unique per worker connection
	Attempt  uint32
	Process  string
	Version  uint64  // the snapshot's version
	Inputs   []Entry `msg:",limit=1048576"` // the declared inputs present in the snapshot
	Args     []byte  // JSON
	Deadline int64   // Unix nanoseconds; 0 for none
}

// Entry is a path and its value (JSON) at a version.
type Entry struct {
	Path    string
	Value   []byte
	Version uint64
}

// Result is a worker's answer to a Dispatch: a delta and a result for the
// caller, or an error.
type Result struct {
	ID     uint64
	Writes []Write `msg:",limit=1048576"`
	Result []byte  // JSON; nil for none
	Err    *Error  // nil on success
	// Reads, when ReadsKnown, lists the paths the process read (each
	// covering its subtree): the commit is validated against these
	// instead of every declared input. A worker that does not track its
	// reads, or read more than MaxReads paths, leaves ReadsKnown false.
	Reads      []string `msg:",limit=65536"` // MaxReads
	ReadsKnown bool
	// Emits are the outbox messages of the attempt: committed with its
	// writes, or dropped with it.
	Emits []Emit `msg:",limit=65536"` // MaxEmits
}

// MaxEmits is the most outbox messages one Result carries.
const MaxEmits = 65536

// Emit is one outbox message: a topic (one path segment) and a JSON
// payload.
type Emit struct {
	Topic   string
	Payload []byte
}

// MaxReads is the most paths a Result lists in Reads (its decode limit).
const MaxReads = 65536

// Write is one change of a delta. Op values are those of contract.Op.
type Write struct {
	Path  string
	Op    uint8
	Value []byte
}

// Cancel tells a worker that the caller no longer waits for a Dispatch.
type Cancel struct {
	ID uint64
	// Ring is the Dispatch's number in the request ring (1 for the first
	// record the supervisor wrote there), or 0 when it came over the
	// socket. A worker that has not read that many records yet keeps the
	// Cancel until it does (docs/PROTOCOL.md#rings).
	Ring uint64
}

// Ping is a heartbeat; the receiver answers with a Pong of the same Seq.
type Ping struct {
	Seq uint64
}

// Execute is a client's request to run a process until it commits.
type Execute struct {
	ID        uint64 // the request id, unique per client connection
	Process   string
	Args      []byte // JSON; nil for none
	OpID      string // optional idempotency key
	TimeoutMS int64  // 0 for the supervisor's default
}

// Reply answers an Execute.
type Reply struct {
	ID        uint64
	Version   uint64
	Attempts  uint32
	Conflicts uint32
	VIP       bool
	Duplicate bool
	Result    []byte // JSON; nil for none
	Err       *Error // nil on success
	Mode      string // the supervisor's commit mode: smart, strict or training
}

// Get asks for the value at a path, or its subtree.
type Get struct {
	ID   uint64
	Path string
}

// GetReply answers a Get: every entry at or under the path.
type GetReply struct {
	ID      uint64
	Version uint64
	Entries []Entry `msg:",limit=1048576"`
	Err     *Error
}

// Status asks for the supervisor's state.
type Status struct {
	ID uint64
}

// StatusReply answers a Status.
type StatusReply struct {
	ID        uint64
	Version   uint64
	Commits   uint64
	Conflicts uint64
	Retries   uint64
	VIP       uint64
	Failures  uint64
	Mode      string
	Workers   []WorkerStatus `msg:",limit=4096"`
	Processes []string       `msg:",limit=4096"`
	Heavy     HeavyStatus
	// Durability is "sync", "async" or "none"; Durable the newest version
	// on disk, written in Batches transactions holding Persisted commits;
	// LostTensors the HEAVY paths removed at the last start.
	Durability  string
	Durable     uint64
	Batches     uint64
	Persisted   uint64
	LostTensors int64
	Err         *Error
}

// Backup asks the supervisor to write a consistent copy of the DATA zone
// (every path with its version, the LOG numbering, the op id window) to
// Path, an absolute path on the supervisor's machine, while commits go on.
// The file is a state file, what --restore starts from.
type Backup struct {
	ID   uint64
	Path string
}

// BackupReply answers a Backup: the version the copy holds (every commit
// up to it, nothing after), its paths, op ids and size in bytes.
type BackupReply struct {
	ID      uint64
	Version uint64
	Paths   int64
	OpIDs   int64
	Bytes   int64
	Err     *Error
}

// HeavyStatus describes the HEAVY zone (all zero when it is off).
type HeavyStatus struct {
	Size        int64 // the budget, --heavy-size
	SlabSize    int64
	Slabs       int64 // live slabs (one per worker)
	Retired     int64 // slabs of dead workers still holding committed tensors
	Held        int64 // bytes of every slab, live and retired
	InUse       int64 // bytes in blocks
	Blocks      int64
	LargestFree int64 // the largest block one worker could allocate now
	HugeKiB     int64 // how much of the supervisor's mappings huge pages back
	InlineMax   int64
}

// WorkerStatus is one worker slot.
type WorkerStatus struct {
	Slot      int64
	PID       int64
	State     string
	InFlight  int64
	Processed uint64
	Restarts  uint64
}

// Error is an error that crosses a process boundary: a stable code, a
// message for people and, for contract violations, the path. Errors with
// the same code match under errors.Is, so a caller can test
// errors.Is(err, protocol.ErrTimeout) on either side of the wire.
type Error struct {
	Code    string
	Message string
	Path    string // the offending path, when there is one
}

// Call asks the supervisor to run a method beyond the core frames (flux,
// fsm, signal, outbox: the Method* constants). Body holds the method's
// arguments as a JSON object; nil is {}.
type Call struct {
	ID     uint64 // the request id, unique per client connection (shared with Execute, Get, ...)
	Method string
	Body   []byte
}

// CallReply answers a Call: the method's result as JSON, or an error.
type CallReply struct {
	ID   uint64
	Body []byte
	Err  *Error
}

// Subscribe opens a stream (a Stream* method): the supervisor answers with
// Events carrying the same ID until one has End set, or until the client
// sends an Unsubscribe with that ID.
type Subscribe struct {
	ID     uint64
	Method string
	Body   []byte
}

// Event is one item of a stream, as JSON. The last Event of a stream has
// End set, and Err when the stream failed (a bad request, the supervisor
// shutting down); a stream the client ended with Unsubscribe ends with an
// Event that has End and no Err.
type Event struct {
	ID   uint64
	Body []byte
	End  bool
	Err  *Error
}

// Unsubscribe ends the stream opened by the Subscribe with this ID.
type Unsubscribe struct {
	ID uint64
}
