"""Fixtures of the Python SDK's tests: the Go binaries, built once per
session, and supervisors started on a socket of their own.

Run with Debian's interpreter, which has msgpack, numpy and pytest:

    /usr/bin/python3 -m pytest -q python/tests
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"
PLUGINS = Path(__file__).resolve().parent / "plugins"
PYWORKER = PLUGINS / "pyworker.py"
GREETER = REPO / "examples" / "py-greeter" / "greeter.py"
TENSOR = REPO / "examples" / "py-tensor" / "tensor.py"

sys.path.insert(0, str(PYTHON_DIR))

import theus  # noqa: E402


class Bins:
    def __init__(self, d):
        self.dir = d
        self.supervisor = d / "theus-supervisor"
        self.worker = d / "theus-worker"  # the Go demo worker


@pytest.fixture(scope="session")
def bins(tmp_path_factory):
    """theus-supervisor and theus-worker, built from this checkout."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the go command is not on PATH: the tests need to build theus-supervisor")
    d = tmp_path_factory.mktemp("bin")
    # THEUS_GO_BUILD_FLAGS: -race when the Go test that runs pytest has it.
    flags = os.environ.get("THEUS_GO_BUILD_FLAGS", "").split()
    cmd = [go, "build", *flags, "-o", str(d) + os.sep, "./cmd/theus-supervisor", "./cmd/theus-worker"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("go build: %s\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return Bins(d)


class Supervisor:
    """A theus-supervisor on a socket of its own, with the SDK on its
    workers' PYTHONPATH."""

    def __init__(self, bins, *args, env=None, start_timeout=60.0):
        self.root = Path(tempfile.mkdtemp(prefix="theus-py-"))  # short: a socket path has 108 bytes
        self.socket = str(self.root / "sock" / "theus.sock")
        self.log_path = self.root / "supervisor.log"
        e = dict(os.environ)
        e["PYTHONPATH"] = str(PYTHON_DIR) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
        e.pop("THEUS_SOCKET", None)
        e.pop("PYTHONUNBUFFERED", None)  # the SDK must not need it
        e.update(env or {})
        self.args = [str(bins.supervisor), "--socket", self.socket, "--state-dir", str(self.root / "state"),
                     "--log-format", "json"] + [str(a) for a in args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=e,
                                     cwd=str(REPO))
        self._wait_ready(start_timeout)

    def _wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return  # exited: the test looks at returncode and log()
            if os.path.exists(self.socket):
                try:
                    with theus.Client(self.socket) as c:
                        c.ping()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("the supervisor did not start within %.0f s:\n%s" % (timeout, self.log()[-4000:]))

    def client(self, **kw):
        return theus.Client(self.socket, **kw)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=30.0):
        """SIGTERM, then the exit status (SIGKILL after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def supervisor(bins, request):
    """A factory: supervisor(*args) starts one, stopped (and checked to
    exit 0) when the test ends."""
    started = []

    def start(*args, **kw):
        s = Supervisor(bins, *args, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        running = s.proc.poll() is None
        rc = s.stop()
        failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
        if failed:
            sys.stderr.write("supervisor log (last 4 KiB):\n%s\n" % s.log_path.read_text(errors="replace")[-4096:])
        shutil.rmtree(s.root, ignore_errors=True)
        if running and rc != 0 and not failed:
            pytest.fail("supervisor exited %s after SIGTERM, want 0" % rc)


@pytest.fixture(scope="module")
def shared(bins):
    """One supervisor for a module's tests: the Go demo worker, the test
    worker and the tensor example, two workers each."""
    s = Supervisor(bins, "--workers", "2", "--heavy-size", "256MiB",
                   "--plugin", bins.worker, "--plugin", PYWORKER, "--plugin", TENSOR)
    if s.proc.poll() is not None:
        pytest.fail("the supervisor did not start:\n" + s.log()[-4000:])
    yield s
    rc = s.stop()
    shutil.rmtree(s.root, ignore_errors=True)
    assert rc == 0, "supervisor exited %s after SIGTERM" % rc


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def poll(fn, timeout=60.0, interval=0.05):
    """fn() until it returns something true, or AssertionError."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("not true within %.0f s: %s" % (timeout, fn))
        time.sleep(interval)
