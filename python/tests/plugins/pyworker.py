#!/usr/bin/python3
"""The Python worker of the SDK's tests: processes that count, sleep,
crash, break rules and meet each other, to drive a real supervisor
through every path of theus.worker.

PYWORKER_VERSION, when set, is the protocol version its Hello claims
(the protocol_mismatch test).
"""

import os
import threading
import time

import theus
import theus.wire

if os.environ.get("PYWORKER_VERSION"):
    theus.wire.VERSION = int(os.environ["PYWORKER_VERSION"])


@theus.process("py.noop")
def noop(ctx):
    return None


@theus.process("py.echo")
def echo(ctx, **args):
    return args


@theus.process("py.pid")
def pid(ctx):
    return os.getpid()


@theus.process("py.counter.add", inputs=["domain.counter"], outputs=["domain.counter"])
def counter_add(ctx, by=1):
    n = ctx.get("domain.counter", 0) + by
    ctx.set("domain.counter", n)
    return n


@theus.process("py.sleep")
def sleep(ctx, ms=0, pidfile=""):
    """Sleeps ms, stopping early on a Cancel; appends its pid to pidfile
    first, so a test knows which worker runs it."""
    if pidfile:
        with open(pidfile, "a") as f:
            f.write("%d\n" % os.getpid())
    ctx.sleep(ms / 1000)
    return {"pid": os.getpid(), "slept_ms": ms}


@theus.process("py.busy")
def busy(ctx, seconds=0.0, sleep_seconds=0.0):
    """Computes in pure Python (holding the GIL but for the interpreter's
    switches) for seconds, then sleeps sleep_seconds: a slow process whose
    worker must still answer Pings."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for i in range(1000):
            n += i
    time.sleep(sleep_seconds)
    return {"pid": os.getpid(), "n": n}


_meet = threading.Condition()
_arrived = {}


@theus.process("py.rendezvous")
def rendezvous(ctx, group, n, timeout_s=60):
    """Returns once n calls of group are in this worker at once: it
    succeeds only if the worker runs them concurrently."""
    end = time.monotonic() + timeout_s
    with _meet:
        _arrived[group] = _arrived.get(group, 0) + 1
        _meet.notify_all()
        while _arrived[group] < n:
            left = end - time.monotonic()
            if left <= 0:
                raise theus.Fail("rendezvous_timeout", "%d of %d calls of %s arrived" % (_arrived[group], n, group))
            _meet.wait(left)
    return {"pid": os.getpid(), "thread": threading.get_ident()}


@theus.process("py.crash")
def crash(ctx):
    os._exit(3)


@theus.process("py.raise")
def raise_(ctx):
    return 1 // 0


@theus.process("py.fail")
def fail(ctx, code, message="", path=""):
    raise theus.Fail(code, message, path)


@theus.process("py.bad_result")
def bad_result(ctx, kind):
    if kind == "set":
        return {1, 2}
    if kind == "nan":
        return float("nan")
    return None


@theus.process("py.violate", inputs=["domain.py"], outputs=["domain.py.ok", "log_py"])
def violate(ctx, mode):
    if mode == "read_outside":
        ctx.get("domain.secret")
    elif mode == "write_outside":
        ctx.set("domain.other", 1)
    elif mode == "set_in_log":
        ctx.set("log_py", 1)
    elif mode == "append_not_log":
        ctx.append("domain.py.ok", 1)
    elif mode == "caught":
        try:
            ctx.set("domain.other", 1)
        except theus.ContractViolation:
            pass
        ctx.set("domain.py.ok", True)
        return "ignored the violation"
    elif mode == "emit_pure":
        ctx.emit("py_topic", 1)
    elif mode == "bad_path":
        ctx.set("domain..ok", 1)
    elif mode == "ok":
        ctx.set("domain.py.ok", True)
        ctx.append("log_py", {"seen": ctx.get("domain.py.seen", 0)})
        return "ok"
    return None


@theus.process("py.order", inputs=["domain.py_orders.{id}"], outputs=["domain.py_orders.{id}"], semantic="effect")
def order(ctx, id, item):
    path = "domain.py_orders." + id
    if ctx.get(path) is not None:
        raise theus.Fail("order_exists", "order %s exists" % id)
    ctx.set(path, {"id": id, "item": item})
    ctx.emit("py_orders", {"id": id, "item": item})
    return {"id": id}


@theus.process("py.delete", inputs=["domain.py.{key}"], outputs=["domain.py.{key}"])
def delete(ctx, key):
    existed = ctx.has("domain.py." + key)
    ctx.delete("domain.py." + key)
    return existed


@theus.process("py.set", outputs=["domain.py.{key}"])
def set_(ctx, key, value):
    ctx.set("domain.py." + key, value)


@theus.process("py.bump", inputs=["domain.rl"], outputs=["domain.rl"])
def bump(ctx):
    ctx.set("domain.rl", ctx.get("domain.rl", 0) + 1)


@theus.process("py.conflict", inputs=["domain.rl"], outputs=["domain.rl"])
def conflict(ctx, socket):
    """Conflicts on every attempt: between its read and its write, a call
    of py.bump commits the same path."""
    v = ctx.get("domain.rl", 0)
    with theus.Client(socket) as c:
        c.exec("py.bump")
    ctx.set("domain.rl", v + 100)


@theus.process("py.heavy_set", outputs=["heavy.py_bad"])
def heavy_set(ctx):
    ctx.set("heavy.py_bad", 5)  # not a descriptor: the supervisor refuses it


@theus.process("py.tensor_outside", outputs=["domain.py.t"])
def tensor_outside(ctx):
    ctx.new_tensor("domain.py.t", "F32", 4)


@theus.process("py.tensor.make", outputs=["heavy.{key}"])
def tensor_make(ctx, key, n, value=1.0):
    a = ctx.new_tensor("heavy." + key, "F32", n)
    a[:] = value
    return a.nbytes


@theus.process("py.schema", outputs=["domain.py_schema.x"])
def schema(ctx, value):
    ctx.set("domain.py_schema.x", value)


@theus.process("py.big")
def big(ctx, n):
    return "x" * n  # over the frame limit: the Result cannot be sent as is


@theus.process("py.log")
def log(ctx, word):
    ctx.log("a log line", word=word)
    print("a stdout line", word)


@theus.process("py.audited")
def audited(ctx, a=0, b=0, s=0):
    return a + b + s


if __name__ == "__main__":
    theus.serve()
