"""The worker side: serve() speaks the worker conversation of
docs/PROTOCOL.md (section 6) on the socket the supervisor gave.

Threads: one thread at a time reads the frame socket (the reader). When
it reads a Dispatch it hands the reading to an idle thread (starting one
if none is idle) and runs the process itself, so a process starts at once
on the thread that read it, several run at once, and Pings are answered
while they run. A second thread reads the packet socket (theus.slabs).
"""

import os
import socket
import sys
import threading
import time

from . import processes as _process
from . import wire as _wire
from .errors import Canceled, Error, ProcessFailed, Timeout, UnknownProcess
from .slabs import Slabs
from .wire import (ALLOC, CANCEL, DISPATCH, DEFAULT_MAX_FRAME, GRANT, HELLO, MAGIC, MAPPED, PING,
                   PONG, REFUSE, RESULT, WELCOME, FrameReader, FrameTooLarge, check_bin,
                   check_entry, check_error, check_int, check_list, check_str, check_tuple,
                   check_uint, frame)

ENV_FD = "THEUS_WORKER_FD"
ENV_HEAVY_FD = "THEUS_HEAVY_FD"
ENV_SUPERVISOR_PID = "THEUS_SUPERVISOR_PID"
ENV_MAX_FRAME = "THEUS_MAX_FRAME"

EXIT_GRACE = 1.0  # seconds running processes get once the supervisor has gone
HANDSHAKE_TIMEOUT = 30.0
MAX_IDLE = 4  # idle threads kept for the next dispatches

NOT_LAUNCHED = "theus: not launched by theus-supervisor (run it with: theus-supervisor --plugin PATH)"


class WorkerError(Exception):
    """The worker cannot go on: a refused handshake, a bad frame."""


def launched():
    """Whether this program was launched by theus-supervisor as a worker."""
    return bool(os.environ.get(ENV_FD))


def _build():
    try:
        from importlib.metadata import version
        return "theus-py/" + version("theus")
    except Exception:
        return "theus-py"


def serve(*processes):
    """Serves processes (default: every @theus.process declared) until the
    supervisor closes the connection, then returns. On an error (not
    launched by a supervisor, refused, a bad frame) it logs the reason to
    stderr and exits with status 1."""
    procs = list(processes) or list(_process.REGISTRY)
    try:  # the supervisor logs stdout line by line: print() should reach it at once
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    try:
        run(procs)
    except WorkerError as e:
        _process.log("error", "worker exits", error=str(e))
        sys.exit(1)


def run(procs):
    """serve() without the exit: raises WorkerError."""
    reg = {}
    for p in procs:
        if not isinstance(p, _process.Process):
            raise WorkerError("theus: %r is not a process (declare it with @theus.process)" % (p,))
        if p.name in reg:
            raise WorkerError("theus: process %s defined twice" % p.name)
        reg[p.name] = p
    if not reg:
        raise WorkerError("theus: no processes to serve")
    fd_s = os.environ.get(ENV_FD, "")
    if not fd_s:
        raise WorkerError(NOT_LAUNCHED)
    try:
        fd = int(fd_s)
        if fd < 3:
            raise ValueError
    except ValueError:
        raise WorkerError("theus: %s=%r: want a descriptor number >= 3" % (ENV_FD, fd_s)) from None
    want = os.environ.get(ENV_SUPERVISOR_PID, "")
    if want and want != str(os.getppid()):
        raise WorkerError("theus: supervisor %s is gone (parent is %d)" % (want, os.getppid()))
    try:
        max_frame = int(os.environ.get(ENV_MAX_FRAME, "")) or DEFAULT_MAX_FRAME
    except ValueError:
        max_frame = DEFAULT_MAX_FRAME
    sock = socket.socket(fileno=fd)
    slabs = None
    hv = os.environ.get(ENV_HEAVY_FD, "")
    if hv:
        try:
            hfd = int(hv)
            if hfd < 3 or hfd == fd:
                raise ValueError
        except ValueError:
            raise WorkerError("theus: %s=%r: want a descriptor number >= 3" % (ENV_HEAVY_FD, hv)) from None
        slabs = Slabs(socket.socket(fileno=hfd), _process.log)
        slabs.start()
    srv = _Server(sock, reg, max_frame, slabs)
    try:
        srv.handshake(procs)
    except BaseException:
        if slabs is not None:
            slabs.close(True)
        raise
    srv.serve()


class _Heavy:
    """The HEAVY zone as a process reaches it: the slabs and Alloc."""

    __slots__ = ("slabs", "inline_max", "alloc")

    def __init__(self, slabs, inline_max, alloc):
        self.slabs, self.inline_max, self.alloc = slabs, inline_max, alloc


class _Server:
    def __init__(self, sock, reg, max_frame, slabs):
        self.sock = sock
        self.reg = reg
        self.max_frame = max_frame
        self.reader = FrameReader(sock, max_frame)
        self.slabs = slabs
        self.heavy = None
        self.wlock = threading.Lock()
        self.read_lock = threading.Lock()  # held by the reader
        self.mu = threading.Lock()
        self.idle = 0  # threads waiting to read
        self.running = {}  # dispatch id -> cancel Event
        self.grants = {}  # Alloc id -> [Event, Grant tuple]
        self.next_alloc = 0
        self.done = threading.Event()
        self.error = None

    def send(self, kind, body):
        data = frame(kind, body, self.max_frame)
        with self.wlock:
            self.sock.sendall(data)

    # --- handshake ------------------------------------------------------------

    def handshake(self, procs):
        # Ring False: this SDK does not map the ring pair (THEUS_RING_FD);
        # the socket carries its Dispatches and Results.
        hello = [MAGIC, _wire.VERSION, _build(), os.getpid(), [p.info() for p in procs], False]
        try:
            self.send(HELLO, hello)
            self.sock.settimeout(HANDSHAKE_TIMEOUT)
            got = self.reader.next()
            self.sock.settimeout(None)
        except (OSError, Error) as e:
            raise WorkerError("theus: handshake: %s" % e) from None
        if got is None:
            raise WorkerError("theus: handshake: the supervisor closed the connection")
        kind, t = got
        if kind == REFUSE:
            check_tuple(t, 1, "Refuse")
            raise WorkerError("theus: refused by the supervisor: %s" % check_error(t[0], "Refuse.Err"))
        if kind != WELCOME:
            raise WorkerError("theus: handshake: got kind %d, want a Welcome" % kind)
        try:
            check_tuple(t, 5, "Welcome")
            _, _, _, slab, inline_max = (check_uint(t[0], "Protocol", 16), check_int(t[1], "Slot"),
                                         check_int(t[2], "HeartbeatMS"), check_uint(t[3], "Slab", 32),
                                         check_int(t[4], "InlineMax"))
        except Error as e:
            raise WorkerError("theus: handshake: %s" % e) from None
        if self.slabs is None:
            if slab:
                raise WorkerError("theus: the supervisor gives slab %d but no packet socket (%s)" % (slab, ENV_HEAVY_FD))
            self.heavy = _Heavy(None, max(0, min(inline_max, 1 << 30)), self.alloc)
            return
        self.slabs.own, self.slabs.inline_max = slab, max(0, min(inline_max, 1 << 30))
        self.heavy = _Heavy(self.slabs, self.slabs.inline_max, self.alloc)
        if slab == 0:
            return
        try:
            r = self.slabs.region(slab, time.monotonic() + HANDSHAKE_TIMEOUT)
        except Exception as e:
            raise WorkerError("theus: handshake: %s" % e) from None
        if not r.writable:
            raise WorkerError("theus: slab %d arrived read-only" % slab)
        try:
            self.send(MAPPED, [slab])
        except OSError as e:
            raise WorkerError("theus: handshake: %s" % e) from None

    # --- dispatches -------------------------------------------------------------

    def serve(self):
        self.idle = 1
        threading.Thread(target=self.loop, name="theus-worker", daemon=True).start()
        self.done.wait()
        # Running processes see their cancel set; those that ignore it get
        # EXIT_GRACE, then serve returns without them.
        with self.mu:
            for ev in self.running.values():
                ev.set()
        end = time.monotonic() + EXIT_GRACE
        finished = True
        while True:
            with self.mu:
                if not self.running:
                    break
            if time.monotonic() >= end:
                finished = False
                _process.log("warn", "processes still running after the supervisor left; exiting without them")
                break
            time.sleep(0.01)
        if self.slabs is not None:
            self.slabs.close(finished)  # unmapping under a running process would crash it
        if self.error is not None:
            raise WorkerError(self.error)

    def loop(self):
        while True:
            with self.read_lock:
                if self.done.is_set():
                    return
                dp = self.read_until_dispatch()
                if dp is None:
                    return
                # Registered before another thread reads: a Cancel right
                # behind the Dispatch finds it.
                cancel = threading.Event()
                with self.mu:
                    self.running[dp[0]] = cancel
                    self.idle -= 1
                    spawn = self.idle == 0
                    if spawn:
                        self.idle += 1
            if spawn:
                threading.Thread(target=self.loop, name="theus-worker", daemon=True).start()
            self.run(dp, cancel)
            with self.mu:
                if self.idle >= MAX_IDLE:
                    return
                self.idle += 1

    def finish(self, error=None):
        if error is not None and self.error is None:
            self.error = error
        self.done.set()

    def read_until_dispatch(self):
        """Reads frames until a Dispatch, which it returns; None when the
        connection ended."""
        while True:
            try:
                got = self.reader.next()
            except Error as e:  # a bad frame: there is no resynchronising
                self.finish("theus: read from the supervisor: %s" % e)
                return None
            except OSError as e:
                self.finish(None if self.done.is_set() else "theus: read from the supervisor: %s" % e)
                return None
            if got is None:
                self.finish()  # the supervisor closed the connection
                return None
            kind, t = got
            try:
                if kind == DISPATCH:
                    return self.check_dispatch(t)
                if kind == PING:
                    check_tuple(t, 1, "Ping")
                    self.send(PONG, [check_uint(t[0], "Ping.Seq")])
                elif kind == CANCEL:
                    if type(t) is not list or len(t) != 1:  # [id] is accepted too
                        check_tuple(t, 2, "Cancel")  # [id, ring]: ring is 0 here
                    with self.mu:
                        ev = self.running.get(check_uint(t[0], "Cancel.ID"))
                    if ev is not None:
                        ev.set()
                elif kind == GRANT:
                    self.deliver_grant(t)
                else:
                    _process.log("warn", "ignoring an unexpected message", kind=kind)
            except Error as e:
                self.finish("theus: read from the supervisor: %s" % e)
                return None
            except OSError as e:
                self.finish(None if self.done.is_set() else "theus: pong: %s" % e)
                return None

    @staticmethod
    def check_dispatch(t):
        check_tuple(t, 7, "Dispatch")
        check_uint(t[0], "Dispatch.ID")
        check_uint(t[1], "Dispatch.Attempt", 32)
        check_str(t[2], "Dispatch.Process")
        check_uint(t[3], "Dispatch.Version")
        for e in check_list(t[4], "Dispatch.Inputs"):
            check_entry(e, "Dispatch.Inputs")
        check_bin(t[5], "Dispatch.Args")
        check_int(t[6], "Dispatch.Deadline")
        return t

    def deliver_grant(self, t):
        check_tuple(t, 6, "Grant")
        gid = check_uint(t[0], "Grant.ID")
        check_uint(t[1], "Grant.Slab", 32)
        check_int(t[2], "Grant.Off")
        check_int(t[3], "Grant.Len")
        check_uint(t[4], "Grant.Gen")
        t[5] = check_error(t[5], "Grant.Err")
        with self.mu:
            slot = self.grants.pop(gid, None)
        if slot is not None:
            slot[1] = t
            slot[0].set()

    def run(self, dp, cancel):
        did = dp[0]
        p = self.reg.get(dp[2])
        try:
            if p is None:
                res = [did, [], b"", UnknownProcess("this worker has no process %r" % dp[2]).wire(), [], False, []]
            else:
                res = p.run(dp, self.heavy, cancel)
        finally:
            with self.mu:
                self.running.pop(did, None)
        try:
            try:
                data = frame(RESULT, res, self.max_frame)
            except FrameTooLarge as e:
                # The delta or result does not fit a frame: fail the call
                # instead of leaving the supervisor waiting for an answer.
                err = ProcessFailed("process %s: %s" % (dp[2], e.message))
                data = frame(RESULT, [did, [], b"", err.wire(), [], False, []], self.max_frame)
            except (TypeError, ValueError, OverflowError) as e:
                err = ProcessFailed("process %s: the result does not encode: %s" % (dp[2], e))
                data = frame(RESULT, [did, [], b"", err.wire(), [], False, []], self.max_frame)
            with self.wlock:
                self.sock.sendall(data)
        except OSError:
            pass  # the supervisor is gone; the reader sees it
        if self.slabs is not None:
            self.slabs.collect()

    def alloc(self, ctx, size):
        """A block of this worker's slab for ctx's dispatch: (slab, off,
        len, gen). Raises ArenaFull or BadRequest as the Grant says,
        Canceled or Timeout when the call ends first."""
        ev = threading.Event()
        slot = [ev, None]
        with self.mu:
            self.next_alloc += 1
            aid = self.next_alloc
            self.grants[aid] = slot
        try:
            try:
                self.send(ALLOC, [aid, ctx.dispatch, size])
            except OSError as e:
                raise ProcessFailed("theus: alloc: %s" % e) from None
            while not ev.wait(0.05):
                if ctx.canceled.is_set():
                    raise Canceled("theus: alloc of %d bytes: canceled" % size)
                if ctx.deadline is not None and time.time() >= ctx.deadline:
                    raise Timeout("theus: alloc of %d bytes: past the deadline" % size)
                if self.done.is_set():
                    raise ProcessFailed("theus: alloc: the supervisor is gone")
        finally:
            with self.mu:
                self.grants.pop(aid, None)
        _, slab, off, length, gen, err = slot[1]
        if err is not None:
            raise err
        return slab, off, length, gen


__all__ = ["serve", "run", "launched", "WorkerError"]
