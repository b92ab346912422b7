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


def runner(client, got):
    """run(name): executes name on client, keeping its value or error in got."""
    def run(name):
        try:
            got[name] = client.exec(name).value
        except Exception as e:
            got[name] = e
    return run


def test_drain_answers_requests_in_flight():
    ln, path = listen()
    stopped, answer = threading.Event(), threading.Event()
    served = []

    def supervisor():
        c, _ = ln.accept()
        c.settimeout(30)
        try:
            r = wire.FrameReader(c)
            execs = [r.next() for _ in range(2)]
            assert [k for k, _ in execs] == [wire.EXECUTE] * 2, execs
            c.shutdown(socket.SHUT_RD)  # the drain: the client's sends fail from now on
            stopped.set()
            answer.wait(30)
            out = b"".join(wire.frame(wire.REPLY, [t[0], 1, 1, 0, False, False, ('"%s"' % t[1]).encode(), None, "smart"])
                           for _, t in execs)
            c.sendall(out + wire.frame(wire.REFUSE, [["shutting_down", "the supervisor is shutting down", ""]]))
            served.append(None)
        except Exception as e:  # reported by the test
            served.append(e)
        finally:
            c.close()

    srv = threading.Thread(target=supervisor, daemon=True)
    srv.start()
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
    srv.join(30)
    for t in inflight + [t2]:
        t.join(30)
    client.close()
    ln.close()
    assert served == [None], served
    second = got.pop("second", None)
    assert isinstance(second, theus.Error) and second.code == "shutting_down", \
        "the request sent during the drain: %r, want shutting_down" % second
    assert got == {"first": "first", "third": "third"}, "the requests in flight: %r, want their replies" % got


def test_supervisor_that_stops_reading_and_stays():
    """A supervisor that stops reading and never closes: the request whose
    send failed gives up after the grace with ConnectionLost, and so does
    one that waited for its reply meanwhile."""
    ln, path = listen()
    stopped, done = threading.Event(), threading.Event()

    def supervisor():
        c, _ = ln.accept()
        c.settimeout(30)
        wire.FrameReader(c).next()
        c.shutdown(socket.SHUT_RD)
        stopped.set()
        done.wait(60)
        c.close()

    srv = threading.Thread(target=supervisor, daemon=True)
    srv.start()
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
    ln.close()
    assert not sender.is_alive() and not waiter.is_alive(), "a request waited past the grace: %r" % got
    for name in ("first", "second"):
        assert isinstance(got[name], theus.ConnectionLost), got
