"""The client and the Python workers against a real supervisor, beside
the Go demo worker (one supervisor for the module)."""

import asyncio
import os
import threading

import pytest

import theus
import theus.aio


def test_client_basics(shared):
    with shared.client() as c:
        c.ping()
        st = c.status()
        for p in ("greet", "py.noop", "py.tensor.stats", "noop", "counter.add"):
            assert p in st["processes"] or p == "greet"
        assert {"version", "commits", "workers", "heavy", "durability", "mode"} <= set(st)
        assert len(st["workers"]) == 6 and all(w["state"] == "ready" for w in st["workers"])
        r = c.exec("py.echo", {"a": [1, "x"], "b": None})
        assert r.value == {"a": [1, "x"], "b": None} and r.attempts == 1 and not r.duplicate
        assert c.exec("py.noop").value is None and c.exec("py.noop").raw == b""
        assert c.exec("py.echo", b'{"raw":true}').value == {"raw": True}
        c.exec("py.set", {"key": "k1", "value": {"n": 1}})
        c.exec("py.set", {"key": "k2", "value": 2})
        v = c.get("domain.py")
        assert v.items() == {"domain.py.k1": {"n": 1}, "domain.py.k2": 2} and v.version >= 2
        assert c.value("domain.py.k2") == 2 and c.value("domain.py.none", "d") == "d"
        assert c.exec("py.delete", {"key": "k2"}).value is True
        assert c.value("domain.py.k2") is None
        with pytest.raises(theus.NotFound) as e:
            c.get("domain.py.none")
        assert e.value.path == "domain.py.none"


def test_op_ids(shared):
    with shared.client() as c:
        op = theus.new_op_id()
        a = c.exec("py.counter.add", {"by": 5}, op_id=op)
        b = c.exec("py.counter.add", {"by": 5}, op_id=op)
        assert b.duplicate and not a.duplicate and b.value == a.value and b.version == a.version
        with pytest.raises(theus.OpIDConflict):
            c.exec("py.counter.add", {"by": 6}, op_id=op)


def test_pipelining(shared):
    with shared.client() as c:
        calls = [("py.echo", {"i": i}) for i in range(3000)]
        rs = c.exec_many(calls, window=256)
        assert [r.value["i"] for r in rs] == list(range(3000))
        rs = c.exec_many(["noop", "py.noop", {"process": "py.echo", "args": {"x": 1}}, ("nope",)],
                         return_exceptions=True)
        assert rs[0].value is None and rs[2].value == {"x": 1} and isinstance(rs[3], theus.UnknownProcess)
        with pytest.raises(theus.UnknownProcess):
            c.exec_many(["py.noop", "nope", "py.noop"])
        assert c.exec("py.echo", {"after": 1}).value == {"after": 1}  # the connection is fine


def test_one_client_many_threads(shared):
    errors = []
    with shared.client() as c:
        def run(t):
            try:
                for i in range(200):
                    assert c.exec("py.echo", {"t": t, "i": i}).value == {"t": t, "i": i}
                    if i % 50 == 0:
                        c.status()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        ts = [threading.Thread(target=run, args=(t,)) for t in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errors, errors


def test_async_client(shared):
    async def main():
        async with await theus.aio.connect(shared.socket) as c:
            await c.ping()
            r = await c.exec("py.echo", {"a": 1})
            assert r.value == {"a": 1}
            rs = await asyncio.gather(*(c.exec("py.echo", {"i": i}) for i in range(200)))
            assert [r.value["i"] for r in rs] == list(range(200))
            rs = await c.exec_many([("py.echo", {"i": i}) for i in range(500)], window=64)
            assert [r.value["i"] for r in rs] == list(range(500))
            with pytest.raises(theus.NotFound):
                await c.get("domain.nothing_here")
            assert "py.noop" in (await c.status())["processes"]
            with pytest.raises(theus.BadRequest):
                await c.call("no.such.method")
    asyncio.run(main())


def test_python_and_go_workers_share_a_counter(shared):
    """8 clients call py.counter.add (Python) and counter.add (Go) on
    domain.counter: it ends at its start plus every success."""
    with shared.client() as c:
        start = c.value("domain.counter", 0)
    ok = [0] * 8
    errors = []

    def run(i):
        try:
            with shared.client() as c:
                for j in range(25):
                    c.exec("py.counter.add" if (i + j) % 2 else "counter.add", {"by": 1})
                    ok[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    with shared.client() as c:
        assert c.value("domain.counter") == start + sum(ok) == start + 200


def test_tensors_both_ways(shared):
    with shared.client() as c:
        n = 1 << 20
        c.exec("tensor.fill", {"key": "pw", "n": n, "value": 0.5})  # Go writes 4 MiB in its slab
        d = c.value("heavy.pw")
        assert d["slab"] > 0 and d["len"] == 4 * n
        st = c.exec("py.tensor.stats", {"key": "pw"}).value  # numpy reads it in place
        assert st == {"n": n, "sum": n * 0.5, "mean": 0.5, "min": 0.5, "max": 0.5}
        c.exec("py.tensor.affine", {"src": "pw", "dst": "pv", "scale": 4, "shift": 1})
        d = c.value("heavy.pv")
        assert d["slab"] > 0 and d["dtype"] == "F32" and d["shape"] == [n]
        assert c.exec("tensor.sum", {"key": "pv"}).value == 3.0 * n  # Go sums what numpy wrote
        assert c.exec("tensor.peek", {"key": "pv", "index": n - 1}).value == 3.0
        # small tensors travel inline, both ways
        c.exec("tensor.fill", {"key": "ps", "n": 16, "value": 2})
        assert "data" in c.value("heavy.ps")
        c.exec("py.tensor.affine", {"src": "ps", "dst": "ps2", "scale": 3})
        assert "data" in c.value("heavy.ps2")
        assert c.exec("tensor.sum", {"key": "ps2"}).value == 96
        assert c.exec("py.tensor.make", {"key": "pm", "n": 100000, "value": 2}).value == 400000
        assert c.exec("tensor.sum", {"key": "pm"}).value == 200000


def test_worker_errors_reach_the_client(shared):
    cases = [
        (("nope", None), theus.UnknownProcess),
        (("py.echo", b"{not json"), theus.BadArgs),  # the supervisor's check
        (("py.counter.add", {"bogus": 1}), theus.BadArgs),  # the SDK's
        (("greet_missing", None), theus.UnknownProcess),
        (("py.violate", {"mode": "read_outside"}), theus.ContractViolation),
        (("py.violate", {"mode": "write_outside"}), theus.ContractViolation),
        (("py.violate", {"mode": "set_in_log"}), theus.ContractViolation),
        (("py.violate", {"mode": "append_not_log"}), theus.ContractViolation),
        (("py.violate", {"mode": "caught"}), theus.ContractViolation),
        (("py.violate", {"mode": "emit_pure"}), theus.ContractViolation),
        (("py.violate", {"mode": "bad_path"}), theus.ProcessFailed),
        (("py.raise", None), theus.ProcessFailed),
        (("py.bad_result", {"kind": "set"}), theus.ProcessFailed),
        (("py.bad_result", {"kind": "nan"}), theus.ProcessFailed),
        (("py.heavy_set", None), theus.BadTensor),  # the supervisor's check
        (("py.tensor_outside", None), theus.BadTensor),  # the SDK's
        (("py.tensor.make", {"key": "huge", "n": 1 << 30}), theus.ArenaFull),
    ]
    with shared.client() as c:
        for (p, args), cls in cases:
            with pytest.raises(cls) as e:
                c.exec(p, args)
            assert e.value.code == cls.code, (p, args, e.value)
        with pytest.raises(theus.Error) as e:
            c.exec("py.fail", {"code": "insufficient_funds", "message": "alice has 30", "path": "domain.alice"})
        assert (e.value.code, e.value.message, e.value.path) == ("insufficient_funds", "alice has 30", "domain.alice")
        with pytest.raises(theus.ContractViolation) as e:
            c.exec("py.violate", {"mode": "read_outside"})
        assert e.value.path == "domain.secret"
        assert c.value("domain.py.ok") is None  # nothing of a failed call committed
        assert c.exec("py.violate", {"mode": "ok"}).value == "ok"
        log = c.get("log_py").entries
        assert log[0].path == "log_py.00000000000000000000" and log[0].value == {"seen": 0}
        with pytest.raises(theus.BadRequest):
            c.exec("py.noop", op_id="x" * 129)
        with pytest.raises(theus.BadRequest):
            c.exec("py.noop", timeout=-1)
        with pytest.raises(theus.BadRequest):
            c.get("domain.bad path")
        with pytest.raises(theus.Timeout):
            c.exec("py.sleep", {"ms": 5000}, timeout=0.3)
        with pytest.raises(theus.ProcessFailed, match="over the limit"):
            c.exec("py.big", {"n": 17 << 20})  # a Result over the frame limit
        with pytest.raises(theus.WorkerCrashed):
            c.exec("py.crash")
        assert c.exec("py.noop").value is None


def test_logs_reach_the_supervisor(shared):
    with shared.client() as c:
        c.exec("py.log", {"word": "zebra42"})
    from conftest import poll
    poll(lambda: "zebra42" in shared.log() and shared.log().count("zebra42") >= 2, timeout=30)
    lines = [ln for ln in shared.log().splitlines() if "zebra42" in ln]
    assert any("a log line" in ln and "py.log" in ln for ln in lines), lines
    assert any("a stdout line zebra42" in ln for ln in lines), lines


def test_outbox(shared):
    with shared.client() as c:
        c.exec("py.order", {"id": "o1", "item": "tea"})
        with pytest.raises(theus.Error) as e:
            c.exec("py.order", {"id": "o1", "item": "tea"})
        assert e.value.code == "order_exists"
        got = c.call("outbox.pull", {"topic": "py_orders"})
        msgs = got["messages"] if isinstance(got, dict) else got
        assert [m["payload"] for m in msgs] == [{"id": "o1", "item": "tea"}]


def test_heartbeats_while_a_process_runs(shared):
    """A process of 7 s (3.5 s of pure-Python compute, 3.5 s asleep) runs
    past the 5 s heartbeat timeout: its worker answers Pings meanwhile and
    is not killed as hung."""
    with shared.client() as c:
        before = {w["pid"]: w["restarts"] for w in c.status()["workers"]}
        r = c.exec("py.busy", {"seconds": 3.5, "sleep_seconds": 3.5}, timeout=60)
        pid = r.value["pid"]
        after = {w["pid"]: w for w in c.status()["workers"]}
        assert pid in before and pid in after, "the worker that ran py.busy was replaced"
        assert r.attempts == 1


def test_sigkill_mid_call_redispatches(shared, tmp_path):
    pidfile = str(tmp_path / "pids")
    result = {}

    def call():
        with shared.client() as c:
            try:
                result["r"] = c.exec("py.sleep", {"ms": 1500, "pidfile": pidfile}, timeout=60)
            except Exception as e:  # noqa: BLE001 - checked below
                result["e"] = e
    t = threading.Thread(target=call)
    t.start()
    from conftest import poll
    first = int(poll(lambda: os.path.exists(pidfile) and open(pidfile).read().split()[:1] or None)[0])
    os.kill(first, 9)
    t.join(90)
    assert "e" not in result, result
    r = result["r"]
    assert r.value["pid"] != first and r.value["slept_ms"] == 1500
    pids = [int(p) for p in open(pidfile).read().split()]
    assert pids[0] == first and pids[-1] == r.value["pid"]
    with shared.client() as c:
        poll(lambda: all(w["state"] == "ready" for w in c.status()["workers"]))
        assert sum(w["restarts"] for w in c.status()["workers"]) >= 1

