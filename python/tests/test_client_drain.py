"""theus.Client against a fake supervisor that drains: it stops reading,
answers the requests it read, then sends a Refuse and closes. A request
sent meanwhile fails its send; the ones in flight must still get their
replies (one thread reads for both), and the failed one the Refuse's
shutting_down."""

import os
import socket
import tempfile
import threading

import theus
from theus import wire


def listen():
    """A listening socket, in a directory of its own, and its path."""
    d = tempfile.mkdtemp()
    os.chmod(d, 0o700)
    path = os.path.join(d, "s.sock")
    ln = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ln.bind(path)
    ln.listen(1)
    return ln, path


def fake(script):
    """A fake supervisor that runs script(conn) on the one connection it
    accepts, in a thread (the connection's operations time out after
    30 s); returns its socket path and stop(), which fails the test if
    the script raised or did not end."""
    ln, path = listen()
    errors = []

    def run():
        c, _ = ln.accept()
        c.settimeout(30)
        try:
            script(c)
        except Exception as e:  # reported by stop
            errors.append(e)
        finally:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def stop():
        t.join(30)
        ln.close()
        assert not errors, errors
        assert not t.is_alive(), "the fake supervisor did not end"
    return path, stop


def reply(t):
    """The Reply of execute t, its value the process's name."""
    return wire.frame(wire.REPLY, [t[0], 1, 1, 0, False, False, ('"%s"' % t[1]).encode(), None, "smart"])


def drains(stopped, answer):
    """A fake supervisor's script that drains: it reads two executes,
    stops reading (the client's sends fail from then on), sets stopped,
    waits for answer, then answers both and sends a Refuse."""
    def script(c):
        r = wire.FrameReader(c)
        execs = [r.next() for _ in range(2)]
        assert [k for k, _ in execs] == [wire.EXECUTE] * 2, execs
        c.shutdown(socket.SHUT_RD)  # the drain: the client's sends fail from now on
        stopped.set()
        answer.wait(30)
        c.sendall(b"".join(reply(t) for _, t in execs) +
                  wire.frame(wire.REFUSE, [["shutting_down", "the supervisor is shutting down", ""]]))
    return script


def stops_reading(stopped, done):
    """A fake supervisor's script that reads one frame, stops reading,
    sets stopped and stays until done."""
    def script(c):
        wire.FrameReader(c).next()
        c.shutdown(socket.SHUT_RD)
        stopped.set()
        done.wait(60)
    return script


def runner(client, got):
    """run(name): executes name on client, keeping its value or error in got."""
    def run(name):
        try:
            got[name] = client.exec(name).value
        except Exception as e:
            got[name] = e
    return run


def test_drain_answers_requests_in_flight():
    stopped, answer = threading.Event(), threading.Event()
    path, stop = fake(drains(stopped, answer))
    client = theus.Client(path)
    got = {}
    run = runner(client, got)

    inflight = [threading.Thread(target=run, args=(n,), daemon=True) for n in ("first", "third")]
    for t in inflight:
        t.start()
    assert stopped.wait(30), "the fake supervisor did not read the requests"
    t2 = threading.Thread(target=run, args=("second",), daemon=True)
    t2.start()
    threading.Event().wait(0.3)  # the second's send fails meanwhile
    answer.set()
    for t in inflight + [t2]:
        t.join(30)
    client.close()
    stop()
    second = got.pop("second", None)
    assert isinstance(second, theus.Error) and second.code == "shutting_down", \
        "the request sent during the drain: %r, want shutting_down" % second
    assert got == {"first": "first", "third": "third"}, "the requests in flight: %r, want their replies" % got


def test_supervisor_that_stops_reading_and_stays():
    """A supervisor that stops reading and never closes: the request whose
    send failed gives up after the grace with ConnectionLost, and so does
    one that waited for its reply meanwhile."""
    stopped, done = threading.Event(), threading.Event()
    path, stop = fake(stops_reading(stopped, done))
    client = theus.Client(path)
    got = {}
    run = runner(client, got)

    waiter = threading.Thread(target=run, args=("first",), daemon=True)
    waiter.start()
    assert stopped.wait(30)
    sender = threading.Thread(target=run, args=("second",), daemon=True)
    sender.start()
    sender.join(30)
    waiter.join(30)
    done.set()
    client.close()
    stop()
    assert not sender.is_alive() and not waiter.is_alive(), "a request waited past the grace: %r" % got
    for name in ("first", "second"):
        assert isinstance(got[name], theus.ConnectionLost), got
