package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The go-plugin peer: what a Go engineer would build instead of theus, a
// hashicorp/go-plugin plugin (this binary, re-executed) that holds the
// state in its own memory behind a mutex and exposes the same operations
// over net/rpc or gRPC. It has no snapshot isolation, no durability and
// no crash isolation of state: if the plugin dies, the state goes with it.

var handshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "THEUS_BENCH_PLUGIN", MagicCookieValue: "peer"}

func pluginLaunched() bool { return os.Getenv(handshake.MagicCookieKey) == handshake.MagicCookieValue }

// peerCall is one operation, as JSON on both transports.
type peerCall struct {
	Op      string `json:"op"` // noop, add, open, transfer, read
	Key     string `json:"key,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Amount  int64  `json:"amount,omitempty"`
	Account string `json:"account,omitempty"`
	Balance int64  `json:"balance,omitempty"`
}

type peerReply struct {
	Err      string           `json:"err,omitempty"`
	Counters map[string]int64 `json:"counters,omitempty"`
	Balances map[string]int64 `json:"balances,omitempty"`
}

// peerState is the plugin's state.
type peerState struct {
	mu       sync.Mutex
	counters map[string]int64
	balances map[string]int64
}

func (s *peerState) do(c peerCall) peerReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c.Op {
	case "noop":
	case "add":
		s.counters[c.Key]++
	case "open":
		s.balances[c.Account] = c.Balance
	case "transfer":
		from, ok1 := s.balances[c.From]
		_, ok2 := s.balances[c.To]
		switch {
		case !ok1 || !ok2:
			return peerReply{Err: "no_account"}
		case from < c.Amount:
			return peerReply{Err: "insufficient_funds"}
		}
		s.balances[c.From] -= c.Amount
		s.balances[c.To] += c.Amount
	case "read":
		r := peerReply{Counters: map[string]int64{}, Balances: map[string]int64{}}
		for k, v := range s.counters {
			r.Counters[k] = v
		}
		for k, v := range s.balances {
			r.Balances[k] = v
		}
		return r
	default:
		return peerReply{Err: "unknown op " + c.Op}
	}
	return peerReply{}
}

// net/rpc

type rpcServer struct{ s *peerState }

func (r *rpcServer) Do(in []byte, out *[]byte) error {
	var c peerCall
	if err := json.Unmarshal(in, &c); err != nil {
		return err
	}
	b, err := json.Marshal(r.s.do(c))
	*out = b
	return err
}

type rpcPlugin struct{ s *peerState }

func (p *rpcPlugin) Server(*plugin.MuxBroker) (any, error) { return &rpcServer{p.s}, nil }
func (p *rpcPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) {
	return peerCaller(func(in []byte) ([]byte, error) {
		var out []byte
		err := c.Call("Plugin.Do", in, &out)
		return out, err
	}), nil
}

// gRPC, with a hand-written service (no protoc): Do(BytesValue) BytesValue.

type grpcDoer interface {
	Do(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

type grpcServer struct{ s *peerState }

func (g *grpcServer) Do(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	var c peerCall
	if err := json.Unmarshal(in.Value, &c); err != nil {
		return nil, err
	}
	b, err := json.Marshal(g.s.do(c))
	return wrapperspb.Bytes(b), err
}

var grpcService = grpc.ServiceDesc{
	ServiceName: "theusbench.Peer",
	HandlerType: (*grpcDoer)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Do", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.BytesValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		return srv.(grpcDoer).Do(ctx, in)
	}}},
	Metadata: "peer.proto",
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	s *peerState
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&grpcService, &grpcServer{p.s})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return peerCaller(func(in []byte) ([]byte, error) {
		out := new(wrapperspb.BytesValue)
		err := c.Invoke(context.Background(), "/theusbench.Peer/Do", wrapperspb.Bytes(in), out)
		return out.Value, err
	}), nil
}

// peerCaller sends one encoded peerCall and returns the encoded reply.
type peerCaller func([]byte) ([]byte, error)

// envProto tells the re-executed plugin which transport to serve: a
// go-plugin server with a gRPC server serves gRPC only.
const envProto = "THEUS_BENCH_PLUGIN_PROTO"

func servePlugin() {
	s := &peerState{counters: map[string]int64{}, balances: map[string]int64{}}
	cfg := &plugin.ServeConfig{HandshakeConfig: handshake, Logger: hclog.NewNullLogger()}
	// go-plugin picks the transport from the set's first plugin: one
	// plugin per set.
	if os.Getenv(envProto) == "grpc" {
		cfg.GRPCServer = plugin.DefaultGRPCServer
		cfg.VersionedPlugins = map[int]plugin.PluginSet{1: {"grpc": &grpcPlugin{s: s}}}
	} else {
		cfg.VersionedPlugins = map[int]plugin.PluginSet{1: {"rpc": &rpcPlugin{s}}}
	}
	plugin.Serve(cfg)
}

// pluginTarget drives the go-plugin peer over one connection, which
// net/rpc and gRPC both multiplex.
type pluginTarget struct {
	c    *plugin.Client
	call peerCaller
}

func startPlugin(useGRPC bool, _ int) (*pluginTarget, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	proto, name := plugin.ProtocolNetRPC, "rpc"
	if useGRPC {
		proto, name = plugin.ProtocolGRPC, "grpc"
	}
	set := plugin.PluginSet{"rpc": &rpcPlugin{}}
	if useGRPC {
		set = plugin.PluginSet{"grpc": &grpcPlugin{}}
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envProto+"="+name)
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: map[int]plugin.PluginSet{1: set},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{proto},
		Logger:           hclog.NewNullLogger(),
	})
	rc, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("go-plugin: %w", err)
	}
	raw, err := rc.Dispense(name)
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("go-plugin: %w", err)
	}
	return &pluginTarget{c: c, call: raw.(peerCaller)}, nil
}

func (p *pluginTarget) supports(w string) bool {
	return w == "noop" || w == "counter" || w == "counter-spread" || w == "bank"
}

func (p *pluginTarget) version(context.Context) string {
	return "hashicorp/go-plugin " + moduleVersion("github.com/hashicorp/go-plugin")
}

func (p *pluginTarget) send(c peerCall) (peerReply, error) {
	in, err := json.Marshal(c)
	if err != nil {
		return peerReply{}, err
	}
	out, err := p.call(in)
	if err != nil {
		return peerReply{}, err
	}
	var r peerReply
	if err := json.Unmarshal(out, &r); err != nil {
		return r, err
	}
	if r.Err == "insufficient_funds" {
		return r, errInsufficient
	}
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	return r, nil
}

func (p *pluginTarget) setup(_ context.Context, w *workload) error {
	if w.usesAccounts() {
		for i := range w.accounts {
			if _, err := p.send(peerCall{Op: "open", Account: w.account(i), Balance: w.balance}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *pluginTarget) do(_ context.Context, _ int, r request) (outcome, error) {
	c := peerCall{Op: r.op, Key: r.key, From: r.from, To: r.to, Amount: r.amount}
	_, err := p.send(c)
	return outcome{}, err
}

func (p *pluginTarget) read(context.Context, *workload) (state, error) {
	r, err := p.send(peerCall{Op: "read"})
	return state{counters: r.Counters, balances: r.Balances}, err
}

func (p *pluginTarget) close() error {
	p.c.Kill()
	return nil
}
