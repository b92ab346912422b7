"""Python workers under supervisors started with flags of their own: the
plugin rule, the handshake, and the error codes that need a particular
supervisor (retry_limit, shutting_down, too_many_clients, schema and
audit refusals, protocol_mismatch)."""

import hashlib
import os
import subprocess
import threading

import pytest

import theus

from conftest import GREETER, PYTHON_DIR, PYWORKER, poll


def test_greeter_plugin_by_shebang(supervisor):
    s = supervisor("--workers", "2", "--plugin", GREETER)
    with s.client() as c:
        assert c.exec("greet", {"name": "ada"}).value == {"greeting": "hello, ada", "count": 1}
        assert c.exec("greet", {"name": "ada"}).value == {"greeting": "hello, ada", "count": 2}
        with pytest.raises(theus.BadArgs):
            c.exec("greet", {})
        assert c.status()["processes"] == ["greet"]


def test_greeter_plugin_from_a_checkout(supervisor):
    """The example finds the SDK in python/ beside examples/, without
    PYTHONPATH: the issue's command works as written."""
    s = supervisor("--workers", "1", "--plugin", GREETER, env={"PYTHONPATH": ""})
    with s.client() as c:
        assert c.exec("greet", {"name": "cy"}).value["count"] == 1


def test_greeter_plugin_pinned(supervisor):
    digest = hashlib.sha256(GREETER.read_bytes()).hexdigest()
    s = supervisor("--workers", "1", "--plugin", "%s@sha256:%s" % (GREETER, digest))
    with s.client() as c:
        assert c.exec("greet", {"name": "bo"}).value["count"] == 1


def test_not_launched_by_a_supervisor():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    env.pop("THEUS_WORKER_FD", None)
    r = subprocess.run([str(GREETER)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "not launched by theus-supervisor" in r.stderr


def test_protocol_mismatch_stops_the_start(supervisor):
    s = supervisor("--workers", "1", "--plugin", PYWORKER, env={"PYWORKER_VERSION": "99"})
    assert s.proc.wait(60) == 1
    assert "protocol_mismatch" in s.log() and "version 99" in s.log()


def test_dispatches_run_concurrently(supervisor):
    """One worker; 4 calls that each return only once all 4 are in it."""
    s = supervisor("--workers", "1", "--plugin", PYWORKER)
    with s.client() as c:
        rs = c.exec_many([("py.rendezvous", {"group": "g", "n": 4, "timeout_s": 60})] * 4)
    assert len({r.value["pid"] for r in rs}) == 1
    assert len({r.value["thread"] for r in rs}) == 4


def test_retry_limit(supervisor):
    """py.conflict conflicts on every attempt (a nested call commits its
    input in between); without VIP tickets it runs out of attempts."""
    s = supervisor("--workers", "2", "--vip-after", "-1", "--durability", "none", "--plugin", PYWORKER)
    with s.client() as c:
        with pytest.raises(theus.RetryLimit):
            c.exec("py.conflict", {"socket": s.socket}, timeout=120)
        assert c.value("domain.rl") >= 32  # every attempt's bump committed; no conflict write did


def test_shutting_down(supervisor):
    s = supervisor("--workers", "1", "--plugin", PYWORKER)
    done = {}
    c1, c2 = s.client(), s.client()
    c2.ping()

    def long():
        done["r"] = c1.exec("py.sleep", {"ms": 1500}, timeout=60)
    t = threading.Thread(target=long)
    t.start()
    poll(lambda: c2.status()["workers"][0]["in_flight"] == 1)
    s.proc.send_signal(15)

    def refused():
        try:
            c2.exec("py.noop")
        except theus.ShuttingDown:
            return True
        return False
    poll(refused, timeout=10, interval=0.01)
    t.join(30)
    assert done["r"].value["slept_ms"] == 1500  # a call in flight finishes in the drain
    assert s.proc.wait(30) == 0
    c1.close()
    c2.close()


def test_too_many_clients(supervisor):
    s = supervisor("--workers", "1", "--max-clients", "1", "--plugin", PYWORKER)

    def first():
        # the supervisor may not have seen the readiness check's
        # connection close yet: it still counts it for a moment
        c = s.client()
        try:
            c.ping()
            return c
        except theus.TooManyClients:
            return None
    with poll(first, timeout=30) as c1:
        with s.client() as c2:
            with pytest.raises(theus.TooManyClients):
                c2.ping()
        assert c1.exec("py.noop").value is None


def test_schema_violation(supervisor, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("domain.py_schema.*: {type: integer, minimum: 0}\n")
    s = supervisor("--workers", "1", "--schema", schema, "--plugin", PYWORKER)
    with s.client() as c:
        c.exec("py.schema", {"value": 3})
        with pytest.raises(theus.SchemaViolation) as e:
            c.exec("py.schema", {"value": "three"})
        assert e.value.path == "domain.py_schema.x"
        assert c.value("domain.py_schema.x") == 3


def test_audit_refusals(supervisor, tmp_path):
    recipe = tmp_path / "audit.yaml"
    recipe.write_text(
        "audit: {level: B, threshold_max: 1}\n"
        "process_recipes:\n"
        "  py.audited:\n"
        "    inputs:\n"
        "      - {field: a, min: 0, level: A}\n"
        "      - {field: b, min: 0, level: B}\n"
        "      - {field: s, min: 0, level: S}\n")
    s = supervisor("--workers", "1", "--audit", recipe, "--plugin", PYWORKER)
    with s.client() as c:
        assert c.exec("py.audited", {"a": 1, "b": 2}).value == 3
        with pytest.raises(theus.AuditAbort):
            c.exec("py.audited", {"a": -1})
        assert c.exec("py.audited", {"b": -1}).value == -1  # the first B violation passes
        with pytest.raises(theus.AuditBlock):
            c.exec("py.audited", {"b": -1})
        with pytest.raises(theus.AuditStop):
            c.exec("py.audited", {"s": -1})
        with pytest.raises(theus.AuditStop):
            c.exec("py.audited", {})  # stopped until resumed
        assert c.call("audit.resume", {"process": "py.audited"})["resumed"] is True
        assert c.exec("py.audited", {"a": 2}).value == 2


def test_workers_exit_with_the_supervisor(supervisor):
    s = supervisor("--workers", "2", "--plugin", PYWORKER)
    with s.client() as c:
        pids = [w["pid"] for w in c.status()["workers"]]
    assert s.stop() == 0
    for pid in pids:
        poll(lambda: not os.path.exists("/proc/%d" % pid) or _zombie(pid), timeout=10)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
