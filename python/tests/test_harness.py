"""theus.testing and the process machinery, in-process: no supervisor."""

import importlib.util
import threading

import numpy as np
import pytest

import theus
import theus.testing as tt
from theus import wire
from theus.processes import Process

from conftest import GREETER, REPO, TENSOR


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


greeter = load(GREETER, "py_greeter")
tensor_example = load(TENSOR, "py_tensor")


def test_greeter():
    out = tt.run(greeter.greet, {"domain.greetings.ada": 2, "domain.other": 7}, {"name": "ada"})
    assert out.result == {"greeting": "hello, ada", "count": 3}
    assert out.delta() == {"domain.greetings.ada": 3}
    assert out.reads == ["domain.greetings.ada"]
    with pytest.raises(theus.BadArgs):
        tt.run(greeter.greet, {}, {})
    with pytest.raises(theus.BadArgs, match="unexpected keyword argument 'nom'"):
        tt.run(greeter.greet, {}, {"name": "x", "nom": "y"})
    with pytest.raises(theus.BadArgs, match="want an object"):
        tt.run(greeter.greet, {}, [1, 2])


def test_a_type_error_of_the_process_is_not_bad_args():
    import functools

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            return fn(*a, **k)
        return wrapper

    @deco
    def length(ctx, x):
        return len(x)
    p = Process("length", length)
    assert tt.run(p, {}, {"x": "ab"}).result == 2
    with pytest.raises(theus.BadArgs, match="missing a required argument: 'x'"):
        tt.run(p, {}, {"y": 1})  # through the wrapper: the signature says so
    with pytest.raises(theus.ProcessFailed, match="TypeError"):
        tt.run(p, {}, {"x": 5})  # len(5) in the process: its own failure
    q = Process("plain", lambda ctx, x: len(x))
    with pytest.raises(theus.BadArgs):
        tt.run(q, {}, {"x": 1, "z": 2})
    with pytest.raises(theus.ProcessFailed):
        tt.run(q, {}, {"x": 1})


def test_only_declared_inputs_reach_the_process():
    seen = {}

    def peek(ctx):
        seen.update(ctx._inputs)
        return sorted(ctx.children("domain.a"))

    p = Process("peek", peek, inputs=["domain.a"])
    out = tt.run(p, {"domain.a.x": 1, "domain.a.y.z": 2, "domain.ab": 3, "domain.b": 4})
    assert sorted(seen) == ["domain.a.x", "domain.a.y.z"]
    assert out.result == ["x"]


def violation(fn, *, inputs=(), outputs=(), semantic="pure", state=None, args=None):
    p = Process("v", fn, inputs=inputs, outputs=outputs, semantic=semantic)
    with pytest.raises(theus.Error) as e:
        tt.run(p, state or {}, args)
    return e.value


@pytest.mark.parametrize("fn,rule,path", [
    (lambda ctx: ctx.get("domain.secret"), "read of an undeclared path", "domain.secret"),
    (lambda ctx: ctx.set("domain.other", 1), "write of an undeclared path", "domain.other"),
    (lambda ctx: ctx.set("log_x", 1), "LOG paths only accept appends", "log_x"),
    (lambda ctx: ctx.set("log_x.sub", 1), "LOG paths only accept appends", "log_x.sub"),
    (lambda ctx: ctx.append("domain.a", 1), "append outside the root of a LOG", "domain.a"),
    (lambda ctx: ctx.append("log_x.sub", 1), "append outside the root of a LOG", "log_x.sub"),
    (lambda ctx: ctx.get("domain.sig_go"), "PURE process reads a SIGNAL path", "domain.sig_go"),
    (lambda ctx: ctx.set("domain.const_x", 1), "write of a CONST path", "domain.const_x"),
    (lambda ctx: ctx.get("internal_runs"), "read of a PRIVATE path", "internal_runs"),
    (lambda ctx: ctx.emit("orders", 1), "PURE process emits an outbox message", "orders"),
])
def test_contract_violations(fn, rule, path):
    e = violation(fn, inputs=["domain.a"], outputs=["domain.a", "log_x"])
    assert isinstance(e, theus.ContractViolation) and e.code == "contract_violation"
    assert rule in e.message and e.path == path


def test_a_caught_violation_still_fails_the_call():
    def f(ctx):
        try:
            ctx.set("domain.b", 1)
        except theus.ContractViolation:
            pass
        ctx.set("domain.a", 1)
        return "fine"
    e = violation(f, outputs=["domain.a"])
    assert e.code == "contract_violation" and e.path == "domain.b"


def test_process_failures_map_to_codes():
    assert violation(lambda ctx: 1 // 0).code == "process_failed"
    assert "ZeroDivisionError" in violation(lambda ctx: 1 // 0).message
    assert violation(lambda ctx: {1, 2}).code == "process_failed"  # not JSON
    assert violation(lambda ctx: float("nan")).code == "process_failed"  # not JSON either
    assert violation(lambda ctx: ctx.set("domain..a", 1), outputs=["domain"]).code == "process_failed"
    assert violation(lambda ctx: ctx.set("domain.a", object()), outputs=["domain"]).code == "process_failed"

    def own(ctx):
        raise theus.Fail("insufficient_funds", "alice has 30", "domain.alice")
    e = violation(own)
    assert (e.code, e.message, e.path) == ("insufficient_funds", "alice has 30", "domain.alice")

    def exits(ctx):
        raise SystemExit(3)  # still one Result: the worker survives it
    assert violation(exits).code == "process_failed"


def test_canceled_and_timeout():
    p = Process("slow", lambda ctx: ctx.sleep(30))
    ev = threading.Event()
    ev.set()
    res = p.run([1, 1, "slow", 1, [], b"", 0], cancel=ev)
    assert res[3][0] == "canceled"
    res = p.run([1, 1, "slow", 1, [], b"", 1])  # a deadline in 1970
    assert res[3][0] == "timeout"


def test_templates_bind_args():
    def move(ctx, src, dst, amount=1):
        a, b = ctx.get("domain.acc." + src, 0), ctx.get("domain.acc." + dst, 0)
        ctx.set("domain.acc." + src, a - amount)
        ctx.set("domain.acc." + dst, b + amount)
    p = Process("move", move, inputs=["domain.acc.{src}", "domain.acc.{dst}"],
                outputs=["domain.acc.{src}", "domain.acc.{dst}"])
    out = tt.run(p, {"domain.acc.a": 5, "domain.acc.b": 1, "domain.acc.c": 9}, {"src": "a", "dst": "b"})
    assert out.delta() == {"domain.acc.a": 4, "domain.acc.b": 2}
    assert out.result is None and out.result_raw == b""
    for args in ({"src": "a"}, {"src": "a.b", "dst": "c"}, {"src": "heavy_x", "dst": "c"}, {"src": 1, "dst": "c"}):
        with pytest.raises(theus.BadArgs):
            tt.run(p, {}, args)


@pytest.mark.parametrize("inputs,outputs,semantic", [
    (["domain..a"], [], "pure"), (["{x}.a"], [], "pure"), (["domain.{X}"], [], "pure"),
    (["internal_x"], [], "pure"), ([], ["domain.const_x"], "pure"), (["domain.sig_x"], [], "pure"),
    ([], [], "impure"),
])
def test_bad_contracts_are_refused_when_declared(inputs, outputs, semantic):
    with pytest.raises(ValueError):
        Process("bad", lambda ctx: None, inputs=inputs, outputs=outputs, semantic=semantic)


def test_effect_emits_and_appends():
    def place(ctx, id):
        ctx.set("domain.orders." + id, {"id": id})
        ctx.append("domain.log_orders", id)
        ctx.emit("orders", {"id": id})
    p = Process("place", place, outputs=["domain.orders.{id}", "domain.log_orders"], semantic="effect")
    out = tt.run(p, {}, {"id": "o1"})
    assert [(w.path, w.op) for w in out.writes] == [("domain.orders.o1", 1), ("domain.log_orders", 3)]
    assert out.emits == [("orders", {"id": "o1"})]
    with pytest.raises(theus.ProcessFailed, match="topic"):
        tt.run(Process("e", lambda ctx: ctx.emit("a.b", 1), semantic="effect"))


def test_tensors_inline():
    state = {"heavy.w": np.arange(1000, dtype=np.float32)}
    out = tt.run(tensor_example.affine, state, {"src": "w", "dst": "v", "scale": 2, "shift": 1})
    v = out.tensor("heavy.v")
    assert v.dtype == np.float32 and v.shape == (1000,)
    assert np.array_equal(v, np.arange(1000, dtype=np.float32) * 2 + 1)
    assert tt.run(tensor_example.stats, state, {"key": "w"}).result["sum"] == 499500.0

    def write_input(ctx):
        ctx.tensor("heavy.w")[0] = 1  # read-only
    with pytest.raises(theus.ProcessFailed, match="read-only"):
        tt.run(Process("w", write_input, inputs=["heavy.w"]), state)
    with pytest.raises(theus.BadTensor):
        tt.run(Process("t", lambda ctx: ctx.new_tensor("domain.t", "F32", 4), outputs=["domain.t"]))
    with pytest.raises(theus.ContractViolation):
        tt.run(Process("t", lambda ctx: ctx.new_tensor("heavy.t", "F32", 4)))


@pytest.mark.parametrize("dtype", ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"])
def test_tensor_dtypes_round_trip(dtype):
    def make(ctx):
        a = ctx.new_tensor("heavy.t", dtype, (2, 3))
        a[...] = 1
    out = tt.run(Process("make", make, outputs=["heavy.t"]))
    t = out.tensor("heavy.t")
    assert t.shape == (2, 3) and t.nbytes == 6 * {"F64": 8, "I64": 8, "F32": 4, "I32": 4}.get(dtype, 2 if dtype in ("F16", "BF16", "I16") else 1)
    assert (t == 1).all()


def test_wire_round_trip_and_bad_frames():
    import socket
    a, b = socket.socketpair()
    try:
        b.sendall(wire.frame(wire.PING, [7]) + wire.frame(wire.PONG, [(1 << 64) - 1]))
        r = wire.FrameReader(a)
        assert r.next() == (wire.PING, [7])
        assert r.next() == (wire.PONG, [(1 << 64) - 1])
        for bad in (b"\x00\x00\x00\x00\x07", b"\x00\x00\x00\x02\x07\x80",  # zero length; a map body
                    b"\x00\x00\x00\x04\x07\x91\x07\x00",  # trailing bytes after the tuple
                    b"\x00\x00\x00\x04\x07\x91\xa1\xff"):  # a str that is not UTF-8
            b.sendall(bad)
            with pytest.raises(theus.BadFrame):
                wire.FrameReader(a, max_frame=1024).next()
            a.setblocking(False)
            try:
                while a.recv(64):
                    pass
            except BlockingIOError:
                pass
            a.setblocking(True)
        b.sendall(b"\x00\x10\x00\x01\x07")  # over the limit, from the header alone
        with pytest.raises(theus.BadFrame, match="over the limit"):
            wire.FrameReader(a, max_frame=1024).next()
    finally:
        a.close()
        b.close()
    with pytest.raises(wire.FrameTooLarge):
        wire.frame(wire.EXECUTE, [1, "p", b"x" * 2000, "", 0], max_frame=1024)


def test_codes_and_version_match_the_go_side():
    import re
    go = (REPO / "protocol" / "errors.go").read_text()
    codes = re.findall(r'^\s*Code\w+\s*=\s*"([a-z_]+)"', go, re.M)
    assert tuple(codes) == theus.CODES, "protocol/errors.go and theus.errors.CODES differ"
    for c in codes:
        assert theus.error_class(c) is not theus.Error, c
    frame_go = (REPO / "protocol" / "frame.go").read_text()
    assert int(re.search(r"\bVersion\s*=\s*(\d+)", frame_go).group(1)) == theus.VERSION
    assert re.search(r'\bMagic\s*=\s*"([^"]+)"', frame_go).group(1) == theus.MAGIC


def test_errors_match_by_code():
    e = theus.Error.from_wire(["not_found", "nothing at or under this path", "domain.x"])
    assert isinstance(e, theus.NotFound) and e == theus.NotFound() and e.path == "domain.x"
    assert theus.Error.from_wire(["insufficient_funds", "m", ""]) == theus.Fail("insufficient_funds")
