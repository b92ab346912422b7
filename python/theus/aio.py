"""The asyncio client: the same requests as theus.Client, as coroutines.

    async with await theus.aio.connect() as c:
        r = await c.exec("greet", {"name": "ada"})
        rs = await asyncio.gather(*(c.exec("noop") for _ in range(100)))

One task reads the connection and resolves each request's future by id,
so any number of coroutines may share a client.
"""

import asyncio
import itertools
import json

from .client import (Entry, Result, Value, check_reply, decode_status, default_socket, encode_args,
                     timeout_ms)
from .errors import ConnectionLost, Error
from .wire import (CALL, DEFAULT_MAX_FRAME, EXECUTE, GET, HEADER, PING, REFUSE, STATUS, check_error,
                   check_tuple, decode, frame)


async def connect(socket=None, max_frame=DEFAULT_MAX_FRAME):
    """An AsyncClient connected to the supervisor at socket (default:
    default_socket())."""
    reader, writer = await asyncio.open_unix_connection(socket or default_socket(), limit=1 << 16)
    return AsyncClient(reader, writer, max_frame)


class AsyncClient:
    def __init__(self, reader, writer, max_frame):
        self._reader, self._writer = reader, writer
        self.max_frame = max_frame
        self._ids = itertools.count(1)
        self._pending = {}
        self._closed = None
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        self._fail(ConnectionLost("theus: the client was closed"))
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    def _fail(self, err):
        if self._closed is None:
            self._closed = err
        for f in self._pending.values():
            if not f.done():
                f.set_exception(err)
        self._pending.clear()

    async def _read(self):
        r = self._reader
        try:
            while True:
                head = await r.readexactly(5)
                length, kind = HEADER.unpack(head)
                if length == 0 or length > self.max_frame:
                    raise Error("bad_frame", "a frame of %d bytes (limit %d)" % (length, self.max_frame))
                t = decode(await r.readexactly(length - 1))
                if kind == REFUSE:
                    check_tuple(t, 1, "Refuse")
                    self._fail(check_error(t[0], "Refuse.Err"))
                    return
                rid, _ = check_reply(kind, t)
                f = self._pending.pop(rid, None)
                if f is not None and not f.done():
                    f.set_result(t)
        except asyncio.IncompleteReadError:
            self._fail(ConnectionLost("theus: the supervisor closed the connection"))
        except (OSError, Error) as e:
            self._fail(ConnectionLost("theus: read from the supervisor: %s" % e))

    async def _round_trip(self, kind, body_of_id):
        if self._closed is not None:
            raise self._closed
        rid = next(self._ids)
        data = frame(kind, body_of_id(rid), self.max_frame)
        f = asyncio.get_running_loop().create_future()
        self._pending[rid] = f
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as e:  # asyncio closes the connection: the reader ends too
            self._pending.pop(rid, None)
            raise self._closed or ConnectionLost("theus: send to the supervisor: %s" % e) from None
        return await f

    async def exec(self, process, args=None, op_id="", timeout=None):
        """As Client.exec."""
        a = encode_args(args)
        t = await self._round_trip(EXECUTE, lambda rid: [rid, process, a, op_id, timeout_ms(timeout)])
        err = check_error(t[7])
        if err is not None:
            raise err
        return Result(t)

    async def exec_many(self, calls, window=1024, return_exceptions=False):
        """As Client.exec_many: at most window calls in flight."""
        sem = asyncio.Semaphore(max(1, min(window, 1024)))

        async def one(c):
            if isinstance(c, str):
                c = (c,)
            if isinstance(c, dict):
                kw = dict(c)
                p = kw.pop("process")
            else:
                p, kw = c[0], {"args": c[1] if len(c) > 1 else None}
            async with sem:
                return await self.exec(p, **kw)
        return await asyncio.gather(*(one(c) for c in calls), return_exceptions=return_exceptions)

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
