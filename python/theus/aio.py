"""The asyncio client: the same requests as theus.Client, as coroutines.

    async with await theus.aio.connect() as c:
        r = await c.exec("greet", {"name": "ada"})
        rs = await asyncio.gather(*(c.exec("noop") for _ in range(100)))

The event loop calls the client when its socket can be read, and the
client resolves each request's future by id, so any number of coroutines
may share a client. Sends go straight to the
socket, or to a queue that the event loop flushes when the socket is full;
a frame is queued whole, so a request cancelled while it waits never
leaves half a frame on the connection.

The client drives its socket itself rather than through asyncio's
streams: a stream closes the connection when a write fails, and a
supervisor that drains (it stops reading, answers what it read, then
sends a Refuse and closes) still owes replies to the requests in flight.
After a failed send the client reads on until that end, for at most
END_GRACE seconds, as theus.Client does.
"""

import asyncio
import itertools
import json
import socket as _socket

from .client import (END_GRACE, Entry, Result, Value, check_reply, decode_status, default_socket,
                     encode_args, execute_body, timeout_ms)
from .errors import ConnectionLost, Error
from .wire import (CALL, DEFAULT_MAX_FRAME, EXECUTE, GET, HEADER, PING, REFUSE, STATUS, BadFrame,
                   check_error, check_tuple, decode, frame)

# HIGH_WATER is how many bytes may wait for the socket before a sender
# waits for room; READ_SIZE is how much one receive asks for.
HIGH_WATER = 1 << 16
READ_SIZE = 1 << 16


async def connect(socket=None, max_frame=DEFAULT_MAX_FRAME):
    """An AsyncClient connected to the supervisor at socket (default:
    default_socket())."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, socket or default_socket())
    except BaseException:
        s.close()
        raise
    return AsyncClient(s, max_frame)


class AsyncClient:
    """A connection to the supervisor for coroutines of one event loop.
    Made by connect; close it (or use `async with`)."""

    def __init__(self, sock, max_frame):
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self.max_frame = max_frame
        self._ids = itertools.count(1)
        self._pending = {}
        self._closed = None     # the error every request gets once the connection ended
        self._out = bytearray()  # frames the socket did not take yet
        self._room = asyncio.Event()  # set while _out is under HIGH_WATER
        self._room.set()
        self._send_err = None   # the failed send; nothing is sent after it
        self._ender = None      # the task that ends the connection after a failed send
        self._buf = bytearray()  # what was read of frames not yet whole
        self._ended = asyncio.Event()  # set once reading stopped
        self._loop.add_reader(sock, self._readable)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        """Closes the connection; requests in flight fail with ConnectionLost.
        Closing again does nothing."""
        self._end_reading(ConnectionLost("theus: the client was closed"))
        try:
            if self._ender is not None:
                self._ender.cancel()
                try:
                    await self._ender
                except (asyncio.CancelledError, Exception):
                    pass
        finally:
            self._sock.close()

    def _fail(self, err):
        if self._closed is None:
            self._closed = err
        for f in self._pending.values():
            if not f.done():
                f.set_exception(err)
        self._pending.clear()

    # --- the socket ---------------------------------------------------------------

    def _write(self, data):
        """Sends data (whole frames) now, as much as the socket takes, and
        queues the rest for the event loop to flush. After a failed send
        nothing more is sent: the request waits for the end (_end_after)."""
        if self._send_err is not None or self._ended.is_set():
            return
        if not self._out:
            try:
                n = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self._send_failed(e)
                return
            if n == len(data):
                return
            self._loop.add_writer(self._sock, self._flush)
            data = memoryview(data)[n:]
        self._out += data
        if len(self._out) > HIGH_WATER:
            self._room.clear()

    def _flush(self):
        """Sends what is queued, called by the event loop when the socket
        has room."""
        try:
            n = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._send_failed(e)
            return
        del self._out[:n]
        if not self._out:
            self._loop.remove_writer(self._sock)
        if len(self._out) <= HIGH_WATER:
            self._room.set()

    def _stop_writing(self):
        if self._out:
            self._out.clear()
            if self._sock.fileno() >= 0:
                self._loop.remove_writer(self._sock)
        self._room.set()

    def _send_failed(self, err):
        """A send failed: the supervisor stopped reading (it drains) or went
        away. What it still sends is read until it ends the connection."""
        self._send_err = err
        self._stop_writing()
        self._ender = self._loop.create_task(self._end_after(err))

    async def _end_after(self, err):
        """Ends the connection END_GRACE seconds after a failed send unless
        the supervisor ended it first (its Refuse or close, read by
        _readable): a supervisor that stopped reading and stays would
        leave the requests waiting for ever."""
        try:
            await asyncio.wait_for(self._ended.wait(), END_GRACE)
        except asyncio.TimeoutError:
            self._end_reading(ConnectionLost("theus: send to the supervisor: %s" % err))

    def _readable(self):
        """Reads what the socket has, called by the event loop, and resolves
        the futures of the replies it completes."""
        try:
            chunk = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end_reading(ConnectionLost("theus: read from the supervisor: %s" % e))
            return
        buf = self._buf
        if not chunk:
            why = " inside a frame" if buf else ""
            self._end_reading(ConnectionLost("theus: the supervisor closed the connection" + why))
            return
        buf += chunk
        at = 0
        try:
            while len(buf) - at >= 5:
                length, kind = HEADER.unpack_from(buf, at)
                if length == 0 or length > self.max_frame:
                    raise BadFrame("a frame of %d bytes (limit %d)" % (length, self.max_frame))
                if len(buf) - at < 4 + length:
                    break
                t = decode(bytes(buf[at + 5:at + 4 + length]))
                at += 4 + length
                if kind == REFUSE:  # the supervisor's last word
                    check_tuple(t, 1, "Refuse")
                    err = check_error(t[0], "Refuse.Err")
                    if err is None:
                        raise BadFrame("a Refuse without an error")
                    self._end_reading(err)
                    return
                rid, _ = check_reply(kind, t)
                f = self._pending.pop(rid, None)
                if f is not None and not f.done():
                    f.set_result(t)
        except Exception as e:  # a bad frame; anything else here is a bug, reported the same way
            self._end_reading(ConnectionLost("theus: read from the supervisor: %s" % e))
            return
        del buf[:at]

    def _end_reading(self, err):
        """Ends the connection's use: every request waiting, every one made
        after, and every sender waiting for room gets err (unless the
        connection had ended before); nothing more is read or sent."""
        if self._ended.is_set():
            return
        self._loop.remove_reader(self._sock)
        self._fail(err)
        self._stop_writing()
        self._ended.set()

    # --- requests -------------------------------------------------------------------

    async def _round_trip(self, kind, body_of_id):
        if self._closed is not None:
            raise self._closed
        rid = next(self._ids)
        data = frame(kind, body_of_id(rid), self.max_frame)
        f = self._loop.create_future()
        self._pending[rid] = f
        try:
            self._write(data)
            if not self._room.is_set():
                await self._room.wait()
            return await f
        except BaseException:  # an error, or cancelled: a reply read already forgot it
            self._forget(rid, f)
            raise

    def _forget(self, rid, f):
        """Drops request rid, whose caller no longer waits for f (it has
        its reply, or was cancelled): a reply that comes later is
        ignored, and an error f got is not reported as unretrieved."""
        self._pending.pop(rid, None)
        if not f.done():
            f.cancel()
        elif not f.cancelled():
            f.exception()

    async def exec(self, process, args=None, op_id="", timeout=None):
        """As Client.exec."""
        a = encode_args(args)
        t = await self._round_trip(EXECUTE, lambda rid: [rid, process, a, op_id, timeout_ms(timeout)])
        err = check_error(t[7])
        if err is not None:
            raise err
        return Result(t)

    async def exec_many(self, calls, window=1024, return_exceptions=False):
        """As Client.exec_many: the calls pipelined, at most window in
        flight, their frames sent 64 to a write; the Results in the order
        of calls. A failed call raises its Error once every call has
        ended, or is in the list with return_exceptions. The end of the
        connection (ConnectionLost, a Refuse) raises, once every call
        has ended, either way."""
        window = max(1, min(window, 1024))  # the supervisor reads at most 1024 per connection
        loop = self._loop
        sent = []    # (id, future) of the calls whose frames were written
        batch = []   # the same, for the frames not yet written
        frames = []
        left = [0, window]  # calls in flight, and how many may be when room is set
        room = asyncio.Event()
        cut = False  # the connection ended before every call was sent

        def ended(_f):
            left[0] -= 1
            if left[0] <= left[1]:
                room.set()

        def flush():
            if frames:
                self._write(b"".join(frames))
                for rid, f in batch:  # before any reply can be read: the loop has not run
                    self._pending[rid] = f
                    f.add_done_callback(ended)
                sent.extend(batch)
                left[0] += len(batch)
                frames.clear()
                batch.clear()

        try:
            for c in calls:
                if self._closed is not None:
                    cut = True  # the calls sent end with it
                    break
                rid = next(self._ids)
                frames.append(frame(EXECUTE, execute_body(rid, c), self.max_frame))
                batch.append((rid, loop.create_future()))
                if len(frames) >= 64:
                    flush()
                if left[0] + len(batch) >= window:
                    flush()
                    left[1] = window // 2
                    if left[0] > left[1]:
                        room.clear()
                        await room.wait()
                if not self._room.is_set():
                    await self._room.wait()
            flush()
            results, first, lost = [], None, None
            for _, f in sent:
                try:
                    t = await f
                    err = check_error(t[7])
                except (Error, ConnectionLost) as e:
                    err = e
                    if e is self._closed:  # the connection's end, not the call's
                        lost = e
                if err is not None:
                    first = first or err
                    results.append(err)
                else:
                    results.append(Result(t))
        except BaseException:  # cut short: every future sent was awaited otherwise
            for rid, f in sent:
                self._forget(rid, f)
            raise
        if lost is not None or cut:
            raise lost or self._closed
        if first is not None and not return_exceptions:
            raise first
        return results

    async def get(self, path):
        """As Client.get."""
        t = await self._round_trip(GET, lambda rid: [rid, path])
        err = check_error(t[3])
        if err is not None:
            raise err
        return Value(path, t[1], [Entry(e[0], e[1], e[2]) for e in t[2]])

    async def status(self):
        """As Client.status."""
        t = await self._round_trip(STATUS, lambda rid: [rid])
        err = check_error(t[16])
        if err is not None:
            raise err
        return decode_status(t)

    async def ping(self):
        await self._round_trip(PING, lambda rid: [rid])

    async def call(self, method, body=None):
        """As Client.call."""
        b = encode_args(body)
        t = await self._round_trip(CALL, lambda rid: [rid, method, b])
        err = check_error(t[2])
        if err is not None:
            raise err
        return json.loads(t[1]) if t[1] else None
