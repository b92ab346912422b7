"""The client side: run processes, read the Context and the supervisor's
state over the client socket (docs/PROTOCOL.md, section 5).

A Client is one connection. It is safe to share between threads and it
pipelines: any number of requests may be in flight, and replies, which
come back in any order, are matched to requests by id. There is no
thread of its own: a caller waiting for its reply reads the socket for
everyone until its reply has come.
"""

import itertools
import json
import math
import os
import socket as _socket
import threading
import time
import uuid

from .errors import BadFrame, ConnectionLost, Error
from .wire import (BACKUP, BACKUPREPLY, CALL, CALLREPLY, DEFAULT_MAX_FRAME, EXECUTE, GET, GETREPLY,
                   PING, PONG, REFUSE, REPLY, STATUS, STATUSREPLY, FrameReader, check_bin,
                   check_bool, check_entry, check_error, check_int, check_list, check_str,
                   check_tuple, check_uint, frame)

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_loads = json.loads

REPLY_KINDS = (REPLY, GETREPLY, STATUSREPLY, BACKUPREPLY, CALLREPLY, PONG)

# How long, after a send failed, a client waits for the supervisor to
# close: over the supervisor's own grace for a drain's last replies and
# Refuse (1 s).
END_GRACE = 2.0


def default_socket():
    """The supervisor's default socket: $THEUS_SOCKET, else
    $XDG_RUNTIME_DIR/theus/theus.sock, else /tmp/theus-<uid>/theus.sock."""
    p = os.environ.get("THEUS_SOCKET")
    if p:
        return p
    d = os.environ.get("XDG_RUNTIME_DIR")
    if d:
        return os.path.join(d, "theus", "theus.sock")
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", "theus-%d" % os.getuid(), "theus.sock")


def execute_body(rid, call):
    """The Execute tuple of request rid for one call of exec_many: a
    process name, a (process, args) tuple or a dict of exec's keyword
    arguments with "process"."""
    if isinstance(call, str):
        process, kw = call, {}
    elif isinstance(call, dict):
        kw = dict(call)
        process = kw.pop("process")
    else:
        process, kw = call[0], {"args": call[1] if len(call) > 1 else None}
    return [rid, process, encode_args(kw.get("args")), kw.get("op_id", ""), timeout_ms(kw.get("timeout"))]


def new_op_id():
    """A fresh random op id (128 bits, hex)."""
    return uuid.uuid4().hex


def encode_args(args):
    """args as the JSON bytes of an Execute: None is none, bytes are taken
    as JSON already."""
    if args is None:
        return b""
    if isinstance(args, (bytes, bytearray, memoryview)):
        return bytes(args)
    return _dumps(args).encode()


def timeout_ms(timeout):
    """A timeout in seconds as whole milliseconds, rounded up (None or 0:
    the supervisor's default)."""
    if not timeout:
        return 0
    if timeout < 0:
        return -1  # the supervisor answers bad_request
    return max(1, math.ceil(timeout * 1000))


class Result:
    """A committed execution."""

    __slots__ = ("version", "attempts", "conflicts", "vip", "duplicate", "raw", "mode")

    def __init__(self, t):
        self.version, self.attempts, self.conflicts = t[1], t[2], t[3]
        self.vip, self.duplicate, self.raw, self.mode = t[4], t[5], t[6], t[8]

    @property
    def value(self):
        """What the process returned, decoded from JSON (None for none)."""
        return _loads(self.raw) if self.raw else None

    def __repr__(self):
        return ("Result(value=%r, version=%d, attempts=%d, conflicts=%d, vip=%s, duplicate=%s)"
                % (self.value, self.version, self.attempts, self.conflicts, self.vip, self.duplicate))


class Entry:
    __slots__ = ("path", "raw", "version")

    def __init__(self, path, raw, version):
        self.path, self.raw, self.version = path, raw, version

    @property
    def value(self):
        return _loads(self.raw)

    def __repr__(self):
        return "Entry(%r, %s, version=%d)" % (self.path, self.raw.decode(errors="replace"), self.version)


class Value:
    """What get returns: every entry at or under a path, sorted by path."""

    def __init__(self, path, version, entries):
        self.path, self.version, self.entries = path, version, entries

    @property
    def value(self):
        """The value at the path itself, decoded (None when only paths
        below it hold values)."""
        for e in self.entries:
            if e.path == self.path:
                return e.value
        return None

    def items(self):
        """{path: decoded value} of every entry."""
        return {e.path: e.value for e in self.entries}

    def __repr__(self):
        return "Value(%r, version=%d, %r)" % (self.path, self.version, self.entries)


HEAVY_FIELDS = ("size", "slab_size", "slabs", "retired", "held", "in_use", "blocks",
                "largest_free", "huge_kib", "inline_max")
WORKER_FIELDS = ("slot", "pid", "state", "in_flight", "processed", "restarts")


def decode_status(t):
    """A StatusReply tuple as a dict."""
    check_tuple(t, 17, "StatusReply")
    workers = []
    for w in check_list(t[8], "StatusReply.Workers"):
        check_tuple(w, 6, "WorkerStatus")
        workers.append(dict(zip(WORKER_FIELDS, (check_int(w[0], "Slot"), check_int(w[1], "PID"),
                                                check_str(w[2], "State"), check_int(w[3], "InFlight"),
                                                check_uint(w[4], "Processed"), check_uint(w[5], "Restarts")))))
    heavy = check_tuple(t[10], 10, "HeavyStatus")
    for i, v in enumerate(heavy):
        check_int(v, "HeavyStatus." + HEAVY_FIELDS[i])
    return {"version": check_uint(t[1], "Version"), "commits": check_uint(t[2], "Commits"),
            "conflicts": check_uint(t[3], "Conflicts"), "retries": check_uint(t[4], "Retries"),
            "vip": check_uint(t[5], "VIP"), "failures": check_uint(t[6], "Failures"),
            "mode": check_str(t[7], "Mode"), "workers": workers,
            "processes": [check_str(p, "Processes") for p in check_list(t[9], "Processes")],
            "heavy": dict(zip(HEAVY_FIELDS, heavy)), "durability": check_str(t[11], "Durability"),
            "durable": check_uint(t[12], "Durable"), "batches": check_uint(t[13], "Batches"),
            "persisted": check_uint(t[14], "Persisted"), "lost_tensors": check_int(t[15], "LostTensors")}


def check_reply(kind, t):
    """Checks a reply tuple of kind; returns (id, the Error or None)."""
    if kind == REPLY:
        check_tuple(t, 9, "Reply")
        check_uint(t[1], "Reply.Version")
        check_uint(t[2], "Reply.Attempts", 32)
        check_uint(t[3], "Reply.Conflicts", 32)
        check_bool(t[4], "Reply.VIP")
        check_bool(t[5], "Reply.Duplicate")
        check_bin(t[6], "Reply.Result")
        check_str(t[8], "Reply.Mode")
        err = t[7]
    elif kind == GETREPLY:
        check_tuple(t, 4, "GetReply")
        check_uint(t[1], "GetReply.Version")
        for e in check_list(t[2], "GetReply.Entries"):
            check_entry(e, "GetReply.Entries")
        err = t[3]
    elif kind == STATUSREPLY:
        check_tuple(t, 17, "StatusReply")
        err = t[16]
    elif kind == CALLREPLY:
        check_tuple(t, 3, "CallReply")
        check_bin(t[1], "CallReply.Body")
        err = t[2]
    elif kind == BACKUPREPLY:
        check_tuple(t, 6, "BackupReply")
        err = t[5]
    elif kind == PONG:
        check_tuple(t, 1, "Pong")
        err = None
    else:
        raise BadFrame("the supervisor sent kind %d to a client" % kind)
    return check_uint(t[0], "reply ID"), check_error(err, "Err")


class Client:
    """A connection to a supervisor.

    Client(socket=None, max_frame=16 MiB): socket is the supervisor's
    --socket (default: default_socket()); max_frame its --max-frame,
    which a client is not told on the wire.
    """

    def __init__(self, socket=None, max_frame=DEFAULT_MAX_FRAME, connect_timeout=10.0):
        self.path = socket or default_socket()
        self.max_frame = max_frame
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self._reader = FrameReader(sock, max_frame)
        self._ids = itertools.count(1)
        self._wlock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._reading = False
        self._pending = {}  # id -> [kind, tuple, counter]: [None, None, ...] until answered
        self._closed = None  # the error requests fail with once the connection ended

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the connection; requests in flight fail with ConnectionLost."""
        with self._cond:
            if self._closed is None:
                self._closed = ConnectionLost("theus: the client was closed")
            self._cond.notify_all()
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    # --- the conversation -------------------------------------------------------

    def _send(self, data, ids, done=None):
        """Sends data, the frames of requests ids; their replies will count
        in done[0] when done is given."""
        with self._cond:
            if self._closed is not None:
                raise self._closed
            for i in ids:
                self._pending[i] = [None, None, done]
        try:
            with self._wlock:
                self._sock.sendall(data)
        except OSError as e:
            self._await_end(END_GRACE)
            self._fail(ConnectionLost("theus: send to the supervisor: %s" % e))
            with self._cond:
                for i in ids:
                    self._pending.pop(i, None)
            raise self._closed from None

    def _await_end(self, grace):
        """Lets the supervisor's last frames arrive after a send failed. A
        supervisor that drains stops reading, answers the requests it
        read, then sends a Refuse (shutting_down) and closes: those replies
        go to their requests, and the Refuse ends the rest. One that went
        away sent its end, perhaps after a Refuse (too_many_clients). The
        frames are read here unless another thread reads them; after grace
        seconds, a supervisor that stopped reading and did not close has
        the reading side shut on it, which ends any reader."""
        deadline = time.monotonic() + grace
        cond = self._cond
        with cond:
            while self._closed is None and self._reading:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                cond.wait(left)
            if self._closed is not None:
                return
            mine = not self._reading
            if mine:
                self._reading = True
        if mine:
            try:
                self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
                self._read_until(lambda: False)  # until the Refuse or the end
            except (ConnectionError, Error):
                return  # the connection ended, and _closed says how
            finally:
                with cond:
                    self._reading = False
                    cond.notify_all()
        self._fail(ConnectionLost("theus: the supervisor stopped reading and did not close the "
                                  "connection within %gs" % grace))
        try:
            self._sock.shutdown(_socket.SHUT_RD)  # wakes another thread's read
        except OSError:
            pass

    def _fail(self, err):
        with self._cond:
            if self._closed is None:
                self._closed = err
            self._cond.notify_all()

    def _wait(self, rid):
        """The (kind, tuple) of request rid's reply."""
        cond = self._cond
        with cond:
            while True:
                slot = self._pending[rid]
                if slot[0] is not None:
                    del self._pending[rid]
                    return slot
                if self._closed is not None:
                    self._pending.pop(rid, None)
                    raise self._closed
                if not self._reading:
                    self._reading = True
                    break
                cond.wait()
        try:
            self._read_until(lambda: self._pending[rid][0] is not None)
        finally:
            with cond:
                self._reading = False
                cond.notify_all()
        with cond:
            slot = self._pending.pop(rid)
        return slot

    def _read_until(self, done):
        """Reads replies, delivering each to its slot, until done() (the
        caller holds the reader's role)."""
        reader, pending, cond = self._reader, self._pending, self._cond
        while not done():
            try:
                got = reader.next()
            except TimeoutError:
                return  # only _await_end sets a timeout: its grace is over
            except (OSError, Error) as e:
                self._fail(ConnectionLost("theus: read from the supervisor: %s" % e))
                raise self._closed from None
            if got is None:
                self._fail(ConnectionLost("theus: the supervisor closed the connection"))
                raise self._closed
            kind, t = got
            if kind == REFUSE:  # the supervisor's last word
                try:
                    check_tuple(t, 1, "Refuse")
                    err = check_error(t[0], "Refuse.Err")
                except Error as e:
                    err = e
                if err is None:
                    err = ConnectionLost("theus: read from the supervisor: a Refuse without an error")
                self._fail(err)
                raise err
            try:
                rid, _ = check_reply(kind, t)
            except Error as e:
                self._fail(ConnectionLost("theus: read from the supervisor: %s" % e))
                raise self._closed from None
            with cond:
                slot = pending.get(rid)
                if slot is not None and slot[0] is None:
                    slot[0], slot[1] = kind, t
                    if slot[2] is not None:
                        slot[2][0] += 1
                    cond.notify_all()

    def _round_trip(self, kind, body_of_id):
        rid = next(self._ids)
        self._send(frame(kind, body_of_id(rid), self.max_frame), (rid,))
        slot = self._wait(rid)
        return slot[0], slot[1]

    # --- requests -----------------------------------------------------------------

    def exec(self, process, args=None, op_id="", timeout=None):
        """Runs process with args (JSON-encodable, or JSON bytes) until it
        commits, and returns its Result. op_id makes it idempotent: a
        repeat returns the first outcome (duplicate True). timeout is in
        seconds (None: the supervisor's default, 30 s). A failure raises
        Error (the subclass of its code: theus.Timeout, ...)."""
        body = [0, process, encode_args(args), op_id, timeout_ms(timeout)]

        def build(rid):
            body[0] = rid
            return body
        _, t = self._round_trip(EXECUTE, build)
        err = check_error(t[7])
        if err is not None:
            raise err
        return Result(t)

    def exec_many(self, calls, window=1024, return_exceptions=False):
        """Runs calls pipelined on this connection, at most window in
        flight, and returns their Results in the order of calls. Each call
        is a process name, a (process, args) tuple or a dict of exec's
        keyword arguments. A failed call raises its Error once every call
        has ended, or is in the list with return_exceptions."""
        window = max(1, min(window, 1024))  # the supervisor reads at most 1024 per connection
        ids = []
        frames, frame_ids = [], []
        done = [0]  # replies delivered to our slots
        cond = self._cond

        def flush():
            if frames:
                data = b"".join(frames)
                self._send(data, frame_ids, done)
                frames.clear()
                frame_ids.clear()

        def collect(until):
            """Reads until at most until of ours are in flight."""
            with cond:
                while self._reading and len(ids) - done[0] > until:
                    cond.wait()
                if len(ids) - done[0] <= until:
                    return
                self._reading = True
            try:
                self._read_until(lambda: len(ids) - done[0] <= until)
            finally:
                with cond:
                    self._reading = False
                    cond.notify_all()

        for c in calls:
            rid = next(self._ids)
            frames.append(frame(EXECUTE, execute_body(rid, c), self.max_frame))
            frame_ids.append(rid)
            ids.append(rid)
            if len(frames) >= 64:
                flush()
            if len(ids) - done[0] >= window:
                flush()
                collect(window // 2)
        flush()
        collect(0)
        with cond:
            slots = [self._pending.pop(rid) for rid in ids]
        results, first = [], None
        for slot in slots:
            t = slot[1]
            err = check_error(t[7])
            if err is not None:
                first = first or err
                results.append(err)
            else:
                results.append(Result(t))
        if first is not None and not return_exceptions:
            raise first
        return results

    def get(self, path):
        """Every entry at or under path (a Value); NotFound when nothing is
        there."""
        _, t = self._round_trip(GET, lambda rid: [rid, path])
        err = check_error(t[3])
        if err is not None:
            raise err
        return Value(path, t[1], [Entry(e[0], e[1], e[2]) for e in t[2]])

    def value(self, path, default=None):
        """The decoded value at path itself, or default when nothing is at
        or under it."""
        try:
            return self.get(path).value
        except Error as e:
            if e.code == "not_found":
                return default
            raise

    def status(self):
        """The supervisor's counters, workers, processes and HEAVY zone, as
        a dict."""
        _, t = self._round_trip(STATUS, lambda rid: [rid])
        err = check_error(t[16])
        if err is not None:
            raise err
        return decode_status(t)

    def ping(self):
        """A round trip to the supervisor."""
        self._round_trip(PING, lambda rid: [rid])

    def call(self, method, body=None):
        """Runs a method beyond the core frames (flux.run, outbox.pull,
        audit.resume, ...: docs/FLUX.md) and returns its decoded result."""
        b = encode_args(body)
        _, t = self._round_trip(CALL, lambda rid: [rid, method, b])
        err = check_error(t[2])
        if err is not None:
            raise err
        return _loads(t[1]) if t[1] else None

    def backup(self, path):
        """Writes a consistent copy of the DATA zone to path (absolute, on
        the supervisor's machine); returns its version, paths, op ids and
        bytes."""
        _, t = self._round_trip(BACKUP, lambda rid: [rid, path])
        err = check_error(t[5])
        if err is not None:
            raise err
        return {"version": t[1], "paths": t[2], "op_ids": t[3], "bytes": t[4]}
