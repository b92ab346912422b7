// Package client is the Go client of a theus supervisor: it runs
// processes (Exec), reads the Context (Get) and the supervisor's state
// (Status) over the client socket. A Client is safe for concurrent use and
// pipelines: any number of requests may be in flight on its one
// connection, and replies are matched to requests by id.
//
// It never decodes anything but protocol frames. It retries a request on
// its own only when the request has an op id (Request.OpID, NewOpID) and
// the supervisor went away (connection lost, refused, draining, or unable
// to write to disk), for at most Request.RetryFor (default 60 s): with an
// op id a repeat cannot apply twice, and it returns the first outcome. Without one, a request that may have run is
// the caller's to repeat.
package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// ErrClosed is returned for requests on a closed Client, or on a
// connection that ended (wrapped with why).
var ErrClosed = errors.New("client: closed")

// errClientClosed is ErrClosed after Close: never retried.
var errClientClosed = fmt.Errorf("%w by Close", ErrClosed)

// Client is a connection to a supervisor. When the connection is lost,
// the next request dials again; a request with an op id that was in
// flight is sent again on the new connection (it applies at most once).
type Client struct {
	path string
	opts Options

	mu     sync.Mutex
	s      *session // the current connection
	closed bool
	// retired are earlier connections whose reader still waits for a
	// drain's last replies (session.broken): Close ends them too.
	retired []*session
}

// session is one connection and the requests waiting on it.
type session struct {
	conn *ipc.Conn
	done chan struct{} // closed when the reader stops

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan protocol.Message
	streams map[uint64]*Stream
	err     error // why the connection ended
	// quit is closed (stop) when the session is given up: the reader no
	// longer waits for a stream's reader to take an item.
	quit     chan struct{}
	quitOnce sync.Once
	failed   atomic.Bool // err is set: the next request dials again
	// retired is set when a send failed (broken): the next request dials
	// again, while the reader goes on for the replies still coming.
	retired atomic.Bool
	// ending starts, once, the end that broken waits for; why is the
	// failed send's error, which the reader reports instead of its own
	// shut reading side once endGrace passed (guarded by mu).
	ending sync.Once
	why    error
}

// endGrace is how long a request whose send failed waits for the
// supervisor to close the connection (broken): over the supervisor's
// own grace for a drain's last replies and Refuse (1 s).
const endGrace = 2 * time.Second

// stop gives the session up: a reader waiting on a full stream goes on
// (dropping that item; the stream then ends with the connection's
// error), so that Close and a failed request need not wait for the
// stream's reader.
func (s *session) stop() { s.quitOnce.Do(func() { close(s.quit) }) }

// Options tune a Client; the zero value gives the defaults.
type Options struct {
	// MaxFrame is the largest frame the client sends or accepts. The
	// supervisor does not announce its own (--max-frame): set the same
	// value. Default protocol.DefaultMaxFrame (16 MiB).
	MaxFrame int
}

// Dial connects to the supervisor at path (ipc.DefaultPath() if empty)
// with the default Options.
func Dial(path string) (*Client, error) { return DialOptions(path, Options{}) }

// DialOptions connects to the supervisor at path (ipc.DefaultPath() if
// empty) with o.
func DialOptions(path string, o Options) (*Client, error) {
	if path == "" {
		path = ipc.DefaultPath()
	}
	if o.MaxFrame < 0 {
		return nil, fmt.Errorf("client: MaxFrame %d: want 0 (the default) or more", o.MaxFrame)
	}
	c := &Client{path: path, opts: o}
	s, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.s = s
	return c, nil
}

func (c *Client) dial() (*session, error) {
	conn, err := ipc.Dial(c.path, ipc.Options{MaxFrame: c.opts.MaxFrame, PeerDrains: true})
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, done: make(chan struct{}), quit: make(chan struct{}), waiting: map[uint64]chan protocol.Message{}, streams: map[uint64]*Stream{}}
	go s.read()
	return s, nil
}

// Close closes the connection; requests in flight fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	all := append(c.retired, c.s)
	c.retired = nil
	c.mu.Unlock()
	for _, s := range all {
		s.stop()
		s.conn.Close()
		<-s.done
	}
	return nil
}

// session returns the current connection, dialing again if it ended.
// (A request that sees its connection end does not dial: the next one
// does, so that a failing supervisor is dialed once per request sent.)
func (c *Client) session() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClientClosed
	}
	if c.s.alive() {
		return c.s, nil
	}
	s, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.retired = slices.DeleteFunc(c.retired, (*session).ended)
	if !c.s.ended() {
		c.retired = append(c.retired, c.s)
	}
	c.s = s
	return s, nil
}

// ended reports whether the session's reader has stopped.
func (s *session) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) alive() bool { return !s.failed.Load() && !s.retired.Load() }

// broken is told that a send on the connection failed with err. The
// supervisor may have stopped reading only (a drain): it still answers
// the requests it read, then sends a Refuse that says why and closes. So
// the session takes no new request (the next one dials again), and the
// reader goes on for those replies. The first broken starts the end: a
// goroutine, the session's, that waits for the reader to stop, at most
// endGrace, and then shuts the reading side, which stops it (a peer that
// stopped reading and does not close). broken waits for the reader to
// stop, or for ctx to end.
func (s *session) broken(ctx context.Context, err error) {
	s.retire(err)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// retire is broken without the wait.
func (s *session) retire(err error) {
	s.retired.Store(true)
	s.ending.Do(func() { go s.end(err) })
}

// end is the end that broken starts: see broken. It returns once the
// reader has stopped.
func (s *session) end(err error) {
	t := time.NewTimer(endGrace)
	defer t.Stop()
	select {
	case <-s.done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	s.why = err
	s.mu.Unlock()
	s.stop() // a reader waiting on a full stream goes on
	s.conn.CloseRead()
	<-s.done
}

// read reads what the supervisor sends until the connection ends. Its
// frames are handled inside the wait for them (ipc.Conn.Serve): one
// receive per wake.
func (s *session) read() {
	defer close(s.done)
	var end error
	err := s.conn.Serve(func(m protocol.Message) bool {
		end = s.handle(m)
		return end == nil
	}, func() {})
	if end == nil {
		end = err
	}
	s.mu.Lock()
	if s.why != nil && errors.Is(end, ipc.ErrClosed) {
		end = s.why // the reading side end shut: the failed send says why
	}
	s.mu.Unlock()
	s.fail(end)
}

// handle handles m, a frame from the supervisor, on the reader. An error
// ends the connection.
func (s *session) handle(m protocol.Message) error {
	if r, ok := m.(*protocol.Refuse); ok { // the supervisor's last word: why it closes the connection
		return &r.Err
	}
	if ev, ok := m.(*protocol.Event); ok {
		s.deliver(ev)
		return nil
	}
	id, ok := replyID(m)
	if !ok {
		return fmt.Errorf("client: unexpected %s from the supervisor", m.Kind())
	}
	s.mu.Lock()
	ch := s.waiting[id]
	delete(s.waiting, id)
	s.mu.Unlock()
	if ch != nil {
		ch <- m // no yield: the next replies of a batch are delivered first
	}
	return nil
}

func replyID(m protocol.Message) (uint64, bool) {
	switch m := m.(type) {
	case *protocol.Reply:
		return m.ID, true
	case *protocol.GetReply:
		return m.ID, true
	case *protocol.StatusReply:
		return m.ID, true
	case *protocol.BackupReply:
		return m.ID, true
	case *protocol.CallReply:
		return m.ID, true
	}
	return 0, false
}

func (s *session) fail(err error) {
	s.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = fmt.Errorf("%w: %w", ErrClosed, err)
		s.failed.Store(true)
	}
	for id, ch := range s.waiting {
		close(ch)
		delete(s.waiting, id)
	}
	for id, st := range s.streams {
		st.finish(s.err)
		delete(s.streams, id)
	}
}

// roundTrip sends the request that build makes for a fresh id and waits
// for its reply, on the current connection (dialing again if it ended).
func (c *Client) roundTrip(ctx context.Context, build func(id uint64) protocol.Message) (protocol.Message, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	return s.roundTrip(ctx, build) // if the connection ended, the next request dials again
}

// replyChans keeps the channels that replies come on. One goes back only
// after its reply was received: the reader deleted it from waiting before
// it sent, so nothing else refers to it. A channel given up (ctx ended)
// or closed (the connection failed) is left to the garbage collector.
var replyChans = sync.Pool{New: func() any { return make(chan protocol.Message, 1) }}

func (s *session) roundTrip(ctx context.Context, build func(id uint64) protocol.Message) (protocol.Message, error) {
	ch := replyChans.Get().(chan protocol.Message)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.next++
	id := s.next
	s.waiting[id] = ch
	others := len(s.waiting) > 1 // their callers send again as their replies come
	s.mu.Unlock()
	send := s.conn.Send
	if others {
		send = s.conn.Coalesce
	}
	if err := send(build(id)); err != nil {
		if errors.Is(err, protocol.ErrFrameTooLarge) { // nothing was sent; the connection is fine
			s.mu.Lock()
			delete(s.waiting, id)
			s.mu.Unlock()
			return nil, fmt.Errorf("client: %w", err)
		}
		// Let the reader finish first: the replies of requests in flight
		// may still come, and a Refuse the supervisor sent before it
		// closed says why, better than the broken pipe.
		s.broken(ctx, err)
		if !s.ended() { // ctx ended first
			s.mu.Lock()
			delete(s.waiting, id)
			s.mu.Unlock()
			return nil, ctx.Err()
		}
		// A reply read before the end is the request's outcome: the
		// supervisor ran it, whatever the write says (its Refuse and
		// close can follow the reply while the write is returning).
		select {
		case m, ok := <-ch:
			if ok {
				return m, nil
			}
		default:
		}
		return nil, s.closedErr()
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, s.closedErr()
		}
		replyChans.Put(ch)
		return m, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (s *session) closedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Request is one Exec with its options.
type Request struct {
	Process string
	Args    any    // JSON encoded; a json.RawMessage or []byte is sent as is
	OpID    string // makes the request idempotent: a repeat returns the first outcome
	// Timeout defaults to ctx's deadline, else the supervisor's default;
	// it is rounded up to a millisecond and capped at protocol.MaxTimeout,
	// and a negative one is an error.
	Timeout time.Duration
	// RetryFor bounds how long a request with an op id is sent again while
	// the supervisor is away (see the package doc), counted from the
	// first send and ending sooner with ctx; default DefaultRetryFor, and
	// a negative value sends once.
	RetryFor time.Duration
}

// DefaultRetryFor is how long Do sends a request with an op id again
// while the supervisor is away, when Request.RetryFor is zero.
const DefaultRetryFor = 60 * time.Second

// Result is a committed execution.
type Result struct {
	Version   uint64          `json:"version"`
	Attempts  int             `json:"attempts"`
	Conflicts int             `json:"conflicts"`
	VIP       bool            `json:"vip"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Mode      string          `json:"mode"` // the supervisor's commit mode: smart, strict or training
}

// Exec runs process with args (nil for none) until it commits.
func (c *Client) Exec(ctx context.Context, process string, args any) (*Result, error) {
	return c.Do(ctx, Request{Process: process, Args: args})
}

// Do runs a Request. A failure of the process or the runtime is a
// *protocol.Error: test it with errors.Is against the protocol sentinels
// (protocol.ErrTimeout, ...) or &protocol.Error{Code: "your_code"}.
func (c *Client) Do(ctx context.Context, r Request) (*Result, error) {
	var args []byte
	switch a := r.Args.(type) {
	case nil:
	case json.RawMessage:
		args = a
	case []byte:
		args = a
	default:
		var err error
		if args, err = json.Marshal(a); err != nil {
			return nil, fmt.Errorf("client: args: %w", err)
		}
	}
	timeout := r.Timeout
	if timeout < 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "timeout %s: want 0 (the default) or more", timeout)
	}
	if dl, ok := ctx.Deadline(); ok && timeout == 0 {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval, retry.MaxInterval = 20*time.Millisecond, time.Second
	budget := r.RetryFor
	if budget == 0 {
		budget = DefaultRetryFor
	}
	var giveUp time.Time
	if r.OpID != "" { // only a request with an op id is sent again: no clock read for the others
		giveUp = time.Now().Add(budget)
	}
	for {
		rep, err := c.execute(ctx, r, args, timeout)
		if r.OpID == "" || !retryable(err) {
			return rep, err
		}
		// The supervisor went away (the connection, or a drain): with an
		// op id, sending again cannot apply the request twice.
		wait := retry.NextBackOff()
		if time.Now().Add(wait).After(giveUp) {
			return nil, fmt.Errorf("client: op %s: gave up after retrying for %s: %w", r.OpID, max(budget, 0), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (retrying op %s after: %v)", ctx.Err(), r.OpID, err)
		}
	}
}

// retryable reports whether an error says the supervisor went away
// rather than that the request failed.
func retryable(err error) bool {
	if errors.Is(err, ErrClosed) && !errors.Is(err, errClientClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, protocol.ErrShuttingDown) || errors.Is(err, protocol.ErrNotDurable)
}

// executes keeps Execute messages for the next request: a message is
// encoded by the send (ipc.Conn copies it into its buffer before it
// returns), so it goes back as soon as the round trip is over, whatever
// its outcome.
var executes = sync.Pool{New: func() any { return new(protocol.Execute) }}

func (c *Client) execute(ctx context.Context, r Request, args []byte, timeout time.Duration) (*Result, error) {
	x := executes.Get().(*protocol.Execute)
	*x = protocol.Execute{Process: r.Process, Args: args, OpID: r.OpID, TimeoutMS: timeoutMS(timeout)}
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message {
		x.ID = id
		return x
	})
	*x = protocol.Execute{} // no hold on the args
	executes.Put(x)
	if err != nil {
		return nil, err
	}
	rep, ok := m.(*protocol.Reply)
	if !ok {
		return nil, fmt.Errorf("client: got %s for an execute", m.Kind())
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	return &Result{Version: rep.Version, Attempts: int(rep.Attempts), Conflicts: int(rep.Conflicts), VIP: rep.VIP, Duplicate: rep.Duplicate, Result: rep.Result, Mode: rep.Mode}, nil
}

// timeoutMS is d in whole milliseconds, rounded up: a timeout under a
// millisecond is not 0, which would mean the supervisor's default.
func timeoutMS(d time.Duration) int64 {
	d = min(d, protocol.MaxTimeout)
	ms := d.Milliseconds()
	if d%time.Millisecond > 0 {
		ms++
	}
	return ms
}

// NewOpID returns a fresh random op id (128 bits, hex).
func NewOpID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
