// Package client is the Go client of a theus supervisor: it runs
// processes (Exec), reads the Context (Get) and the supervisor's state
// (Status) over the client socket. A Client is safe for concurrent use and
// pipelines: any number of requests may be in flight on its one
// connection, and replies are matched to requests by id.
//
// It never decodes anything but protocol frames and never retries on its
// own: a request that may have run is the caller's to repeat, with the
// same op id so that it cannot apply twice.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// ErrClosed is returned for requests on a closed Client.
var ErrClosed = errors.New("client: closed")

// Client is a connection to a supervisor.
type Client struct {
	conn *ipc.Conn
	done chan struct{} // closed when the reader stops

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan protocol.Message
	err     error // why the connection ended
}

// Dial connects to the supervisor at path (ipc.DefaultPath() if empty).
func Dial(path string) (*Client, error) {
	if path == "" {
		path = ipc.DefaultPath()
	}
	conn, err := ipc.Dial(path, ipc.Options{Blocking: true})
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, done: make(chan struct{}), waiting: map[uint64]chan protocol.Message{}}
	go c.read()
	return c, nil
}

// Close closes the connection; requests in flight fail with ErrClosed.
func (c *Client) Close() error {
	c.conn.Close()
	<-c.done
	return nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		m, err := c.conn.Recv()
		if err != nil {
			c.fail(err)
			return
		}
		id, ok := replyID(m)
		if !ok {
			c.fail(fmt.Errorf("client: unexpected %s from the supervisor", m.Kind()))
			return
		}
		c.mu.Lock()
		ch := c.waiting[id]
		delete(c.waiting, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
			runtime.Gosched() // run the caller on this thread before blocking in read(2) again
		}
	}
}

func replyID(m protocol.Message) (uint64, bool) {
	switch m := m.(type) {
	case *protocol.Reply:
		return m.ID, true
	case *protocol.GetReply:
		return m.ID, true
	case *protocol.StatusReply:
		return m.ID, true
	}
	return 0, false
}

func (c *Client) fail(err error) {
	c.conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	for id, ch := range c.waiting {
		close(ch)
		delete(c.waiting, id)
	}
}

// roundTrip sends the request that build makes for a fresh id and waits
// for its reply.
func (c *Client) roundTrip(ctx context.Context, build func(id uint64) protocol.Message) (protocol.Message, error) {
	ch := make(chan protocol.Message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.next++
	id := c.next
	c.waiting[id] = ch
	c.mu.Unlock()
	if err := c.conn.Send(build(id)); err != nil {
		if errors.Is(err, protocol.ErrFrameTooLarge) { // nothing was sent; the connection is fine
			c.mu.Lock()
			delete(c.waiting, id)
			c.mu.Unlock()
			return nil, fmt.Errorf("client: %w", err)
		}
		c.fail(err)
		return nil, c.closedErr()
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, c.closedErr()
		}
		return m, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Request is one Exec with its options.
type Request struct {
	Process string
	Args    any           // JSON encoded; a json.RawMessage or []byte is sent as is
	OpID    string        // makes the request idempotent: a repeat returns the first outcome
	Timeout time.Duration // default: ctx's deadline, else the supervisor's default
}

// Result is a committed execution.
type Result struct {
	Version   uint64          `json:"version"`
	Attempts  int             `json:"attempts"`
	Conflicts int             `json:"conflicts"`
	VIP       bool            `json:"vip"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
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
	if dl, ok := ctx.Deadline(); ok && timeout == 0 {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message {
		return &protocol.Execute{ID: id, Process: r.Process, Args: args, OpID: r.OpID, TimeoutMS: max(timeout.Milliseconds(), 0)}
	})
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
	return &Result{Version: rep.Version, Attempts: int(rep.Attempts), Conflicts: int(rep.Conflicts), VIP: rep.VIP, Duplicate: rep.Duplicate, Result: rep.Result}, nil
}

// Status returns the supervisor's state.
func (c *Client) Status(ctx context.Context) (*protocol.StatusReply, error) {
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message { return &protocol.Status{ID: id} })
	if err != nil {
		return nil, err
	}
	rep, ok := m.(*protocol.StatusReply)
	if !ok {
		return nil, fmt.Errorf("client: got %s for a status", m.Kind())
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	return rep, nil
}
