"""theus.aio against fake supervisors: one that drains (it stops reading,
answers the requests it read, then sends a Refuse and closes), one that
stops reading and stays, one that reads only once the client has queued
more than its socket holds, and one that holds requests to see
exec_many's window. The asyncio client drives its socket itself, so a
failed send must not drop the replies still owed, and a frame queued
while the socket is full must go whole."""

import asyncio
import gc
import socket
import threading

import theus
import theus.aio
from theus import wire

from test_client_drain import drains, fake, reply, stops_reading


async def outcome(coro):
    try:
        return (await coro).value
    except Exception as e:
        return e


def test_drain_answers_requests_in_flight():
    stopped, answer = threading.Event(), threading.Event()
    path, stop = fake(drains(stopped, answer))

    async def main():
        loop = asyncio.get_running_loop()
        async with await theus.aio.connect(path) as c:
            inflight = [loop.create_task(outcome(c.exec(n))) for n in ("first", "third")]
            assert await loop.run_in_executor(None, stopped.wait, 30), "the fake supervisor did not read the requests"
            second = loop.create_task(outcome(c.exec("second")))
            await asyncio.sleep(0.3)  # the second's send fails meanwhile
            answer.set()
            return await asyncio.wait_for(asyncio.gather(*inflight, second), 30)

    first, third, second = asyncio.run(main())
    stop()
    assert isinstance(second, theus.Error) and second.code == "shutting_down", \
        "the request sent during the drain: %r, want shutting_down" % second
    assert (first, third) == ("first", "third"), "the requests in flight: %r, want their replies" % ((first, third),)


def test_supervisor_that_stops_reading_and_stays():
    """The request whose send failed gives up after the grace with
    ConnectionLost, and so does one that waited for its reply meanwhile."""
    stopped, done = threading.Event(), threading.Event()
    path, stop = fake(stops_reading(stopped, done))

    async def main():
        loop = asyncio.get_running_loop()
        async with await theus.aio.connect(path) as c:
            waiter = loop.create_task(outcome(c.exec("first")))
            assert await loop.run_in_executor(None, stopped.wait, 30)
            sender = loop.create_task(outcome(c.exec("second")))
            got = await asyncio.wait_for(asyncio.gather(waiter, sender), 10 * theus.client.END_GRACE)
            with_closed = await outcome(c.exec("third"))  # the connection has ended: at once
            return got + [with_closed]

    try:
        got = asyncio.run(main())
    finally:
        done.set()
        stop()
    for e in got:
        assert isinstance(e, theus.ConnectionLost), got


def test_frames_queued_while_the_socket_is_full_go_whole():
    """A supervisor that reads nothing until the client has queued more
    than the socket holds, then reads everything: every request, each
    with an argument of 256 KiB, arrives whole and in order, including
    the one cancelled while it waited for room."""
    go = threading.Event()
    got = []

    def script(c):
        go.wait(30)
        r = wire.FrameReader(c)
        out = []
        for _ in range(8):
            kind, t = r.next()
            assert kind == wire.EXECUTE, kind
            got.append((t[1], len(t[2])))
            out.append(reply(t))
        c.sendall(b"".join(out))
        threading.Event().wait(1)

    path, stop = fake(script)
    big = {"pad": "x" * (256 << 10)}

    async def main():
        loop = asyncio.get_running_loop()
        async with await theus.aio.connect(path) as c:
            calls = [loop.create_task(outcome(c.exec("p%d" % i, big))) for i in range(8)]
            await asyncio.sleep(0.2)
            assert c._out, "the socket took 2 MiB without a reader: the test proves nothing"
            calls[3].cancel()  # its frame is queued already: it goes whole
            go.set()
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)

    res = asyncio.run(main())
    stop()
    assert [n for n, _ in got] == ["p%d" % i for i in range(8)], got
    assert len({n for _, n in got}) == 1, got
    assert isinstance(res[3], asyncio.CancelledError), res[3]
    assert [res[i] for i in range(8) if i != 3] == ["p%d" % i for i in range(8) if i != 3], res


def test_exec_many_keeps_its_window_and_order():
    """exec_many with window 4 never has more than 4 requests unanswered:
    the fake supervisor holds what it reads until nothing more comes for
    0.1 s, then answers in reverse order. The results come in the order
    of the calls, and a failed call is raised only once all have ended,
    or listed with return_exceptions."""
    most = [0]

    def answer(c, held):
        out = b""
        for t in reversed(held):
            if t[1] == "bad":
                out += wire.frame(wire.REPLY, [t[0], 0, 1, 0, False, False, b"", ["bad_args", "no", ""], "smart"])
            else:
                out += reply(t)
        c.sendall(out)

    def script(c):
        r = wire.FrameReader(c)
        for total in (20, 20):
            held, seen = [], 0
            while seen < total:
                c.settimeout(0.1 if held else 30)
                try:
                    kind, t = r.next()
                except TimeoutError:  # the client waits: answer what it sent
                    answer(c, held)
                    held = []
                    continue
                assert kind == wire.EXECUTE, kind
                held.append(t)
                seen += 1
                most[0] = max(most[0], len(held))
            answer(c, held)

    path, stop = fake(script)
    calls = ["p%d" % i for i in range(20)]
    calls[7] = "bad"

    async def main():
        async with await theus.aio.connect(path) as c:
            try:
                await c.exec_many(calls, window=4)
                raised = None
            except theus.Error as e:
                raised = e
            listed = await c.exec_many(calls, window=4, return_exceptions=True)
            return raised, listed

    raised, listed = asyncio.run(main())
    stop()
    assert most[0] <= 4, "%d requests unanswered at once, window 4" % most[0]
    assert isinstance(raised, theus.Error) and raised.code == "bad_args", raised
    assert isinstance(listed[7], theus.Error) and listed[7].code == "bad_args", listed[7]
    assert [r.value for i, r in enumerate(listed) if i != 7] == [n for i, n in enumerate(calls) if i != 7], listed


def run_checked(main):
    """asyncio.run(main()), failing on any error the loop reports (a
    future's exception never retrieved, a callback's exception)."""
    reported = []

    async def wrapped():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx.get("message")))
        try:
            return await main()
        finally:
            gc.collect()
            await asyncio.sleep(0)
    out = asyncio.run(wrapped())
    assert not reported, reported
    return out


def test_refuse_without_an_error_ends_the_connection():
    """A Refuse whose error is nil is a bad frame: the requests after it
    fail at once with ConnectionLost (they hung, with nothing reading),
    in both clients."""
    stay = threading.Event()

    def script(c):
        c.sendall(wire.frame(wire.REFUSE, [None]))
        stay.wait(10)

    path, stop = fake(script)

    async def main():
        async with await theus.aio.connect(path) as c:
            await asyncio.sleep(0.3)
            try:
                await asyncio.wait_for(c.exec("x"), 5)
            except theus.ConnectionLost as e:
                return e
    assert isinstance(run_checked(main), theus.ConnectionLost)
    stay.set()
    stop()

    stay.clear()
    path, stop = fake(script)
    client = theus.Client(path)
    try:
        client.exec("x")
        assert False, "no error"
    except theus.ConnectionLost:
        pass
    finally:
        client.close()
        stay.set()
        stop()


def test_exec_many_cut_by_the_connections_end():
    """The fake answers 3 of 10 executes and closes: exec_many raises
    ConnectionLost, also with return_exceptions, leaves no request
    pending, and no future's exception unretrieved."""
    def script(c):
        r = wire.FrameReader(c)
        ts = [r.next()[1] for _ in range(10)]
        c.sendall(b"".join(reply(t) for t in ts[:3]))

    for listed in (False, True):
        path, stop = fake(script)

        async def main():
            async with await theus.aio.connect(path) as c:
                try:
                    await c.exec_many(["p%d" % i for i in range(10)], return_exceptions=listed)
                except theus.ConnectionLost:
                    assert not c._pending, c._pending
                    return "lost"  # not the error: its traceback would keep the futures from the collector
        assert run_checked(main) == "lost"
        stop()


def test_exec_many_that_cannot_encode_a_call_sends_nothing():
    """A call whose args cannot be encoded raises before any frame of its
    batch is written: nothing is left pending (the requests before it
    were never sent), and the connection goes on."""
    def script(c):
        r = wire.FrameReader(c)
        kind, t = r.next()
        assert t[1] == "after", t
        c.sendall(reply(t))

    path, stop = fake(script)

    async def main():
        async with await theus.aio.connect(path) as c:
            try:
                await c.exec_many([("p%d" % i, {}) for i in range(10)] + [("bad", {"x": object()})])
                assert False, "no error"
            except TypeError:
                pass
            assert not c._pending, c._pending
            return (await c.exec("after")).value
    assert run_checked(main) == "after"
    stop()


def test_a_sender_waiting_for_room_gets_the_refuse():
    """The fake reads nothing until the client queued more than the
    socket holds, then sends a Refuse and shuts its writing side, and
    stays: the sender waiting for room gets the Refuse's error at once,
    not when the fake goes."""
    queued, stay = threading.Event(), threading.Event()

    def script(c):
        queued.wait(10)
        c.sendall(wire.frame(wire.REFUSE, [["shutting_down", "bye", ""]]))
        c.shutdown(socket.SHUT_WR)
        stay.wait(20)

    path, stop = fake(script)

    async def main():
        loop = asyncio.get_running_loop()
        async with await theus.aio.connect(path) as c:
            t = loop.create_task(c.exec("big", {"pad": "x" * (4 << 20)}))
            await asyncio.sleep(0.2)
            assert not c._room.is_set(), "4 MiB fit the socket: the test proves nothing"
            queued.set()
            try:
                await asyncio.wait_for(t, 5)
            except theus.Error as e:
                return e
    got = run_checked(main)
    stay.set()
    stop()
    assert isinstance(got, theus.Error) and got.code == "shutting_down", got


def test_cancelled_exec_is_forgotten():
    """An exec cancelled by its timeout leaves nothing pending; its reply,
    when it comes, is ignored, and the next exec gets its own."""
    go = threading.Event()

    def script(c):
        r = wire.FrameReader(c)
        _, first = r.next()
        go.wait(10)
        _, second = r.next()
        c.sendall(reply(first) + reply(second))

    path, stop = fake(script)

    async def main():
        async with await theus.aio.connect(path) as c:
            try:
                await asyncio.wait_for(c.exec("slow"), 0.2)
                assert False, "no timeout"
            except asyncio.TimeoutError:
                pass
            assert not c._pending, c._pending
            go.set()
            return (await c.exec("next")).value
    assert run_checked(main) == "next"
    stop()
