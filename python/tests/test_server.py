"""theus.worker against a fake supervisor on a socketpair, in-process:
the handshake, Pings, Cancels, unknown processes and kinds, bad frames,
and the end of the connection."""

import os
import socket
import threading

import pytest

import theus
from theus import wire, worker
from theus.processes import Process


def wait_cancel(ctx, seconds=10):
    ctx.canceled.wait(seconds)
    ctx.check()
    return "not canceled"


PROCS = [Process("wait", wait_cancel), Process("echo", lambda ctx, **a: a)]


class Fake:
    """The supervisor's end of a worker's socketpair."""

    def __init__(self, monkeypatch):
        self.sup, w = socket.socketpair()
        monkeypatch.setenv(worker.ENV_FD, str(w.detach()))
        monkeypatch.delenv(worker.ENV_HEAVY_FD, raising=False)
        monkeypatch.delenv(worker.ENV_SUPERVISOR_PID, raising=False)
        self.reader = wire.FrameReader(self.sup)
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            worker.run(PROCS)
        except worker.WorkerError as e:
            self.error = e

    def recv(self):
        self.sup.settimeout(30)
        return self.reader.next()

    def send(self, kind, body):
        self.sup.sendall(wire.frame(kind, body))

    def handshake(self):
        kind, hello = self.recv()
        assert kind == wire.HELLO
        assert hello[0] == wire.MAGIC and hello[1] == wire.VERSION and hello[3] == os.getpid()
        assert sorted(p[0] for p in hello[4]) == ["echo", "wait"]
        self.send(wire.WELCOME, [wire.VERSION, 0, 1000, 0, 2048])

    def close(self):
        self.sup.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker did not end with its connection"


def test_pings_cancels_and_unknowns(monkeypatch):
    f = Fake(monkeypatch)
    f.handshake()
    f.send(wire.PING, [41])
    assert f.recv() == (wire.PONG, [41])
    # a Cancel right behind its Dispatch, in one write
    f.sup.sendall(wire.frame(wire.DISPATCH, [1, 1, "wait", 1, [], b"", 0]) + wire.frame(wire.CANCEL, [1]))
    kind, res = f.recv()
    assert kind == wire.RESULT and res[0] == 1 and res[3][0] == "canceled", res
    f.send(wire.DISPATCH, [2, 1, "nope", 1, [], b"", 0])
    kind, res = f.recv()
    assert res[0] == 2 and res[3][0] == "unknown_process"
    f.send(wire.CANCEL, [99])  # not running: ignored
    f.send(wire.STATUS, [5])  # a kind a worker does not expect: ignored
    f.send(wire.DISPATCH, [3, 1, "echo", 1, [], b'{"a":1}', 0])
    kind, res = f.recv()
    assert res[:4] == [3, [], b'{"a":1}', None]
    f.close()
    assert f.error is None


def test_dispatches_overlap_and_pings_are_answered_meanwhile(monkeypatch):
    f = Fake(monkeypatch)
    f.handshake()
    for i in range(1, 9):
        f.send(wire.DISPATCH, [i, 1, "wait", 1, [], b"", 0])
    f.send(wire.PING, [7])
    assert f.recv() == (wire.PONG, [7])  # 8 processes wait, and the reader answers
    for i in range(1, 9):
        f.send(wire.CANCEL, [i])
    got = sorted(f.recv()[1][0] for _ in range(8))
    assert got == list(range(1, 9))
    f.close()


def test_a_bad_frame_ends_the_worker(monkeypatch):
    f = Fake(monkeypatch)
    f.handshake()
    f.sup.sendall(b"\x00\x00\x00\x02\x07\x80")  # a Ping whose body is a map
    f.thread.join(10)
    assert isinstance(f.error, worker.WorkerError) and "bad_frame" in str(f.error)
    f.sup.close()


def test_a_refused_hello(monkeypatch):
    f = Fake(monkeypatch)
    f.recv()
    f.send(wire.REFUSE, [["protocol_mismatch", "worker speaks version 1", ""]])
    f.thread.join(10)
    assert "refused by the supervisor: protocol_mismatch" in str(f.error)
    f.sup.close()


def test_not_launched(monkeypatch):
    monkeypatch.delenv(worker.ENV_FD, raising=False)
    with pytest.raises(worker.WorkerError, match="not launched by theus-supervisor"):
        worker.run(PROCS)
    with pytest.raises(worker.WorkerError, match="defined twice"):
        worker.run(PROCS + PROCS[:1])
    assert not theus.launched()
