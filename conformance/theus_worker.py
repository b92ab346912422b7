#!/usr/bin/python3
"""A theus worker plugin written from docs/PROTOCOL.md alone.

It speaks the worker conversation (section 6): Hello, Welcome or Refuse,
Mapped for its own slab, then Dispatch/Result, Cancel, Ping/Pong and
Alloc/Grant, and it reads the slab packet socket (section 7) on its own
thread. It serves a few processes named py.*:

  py.echo      no contract; returns its args bytes unchanged
  py.add       {"key","by"} on domain.py.{key}: adds, returns the new value
  py.delete    {"key"} deletes domain.py.{key}
  py.sleep     {"ms","ignore_cancel","until_file"}: sleeps, stops early on
               a Cancel, or once the file until_file exists
  py.misbehave {"mode"}: breaks the contract or the value rules on purpose
  py.alloc     {"size"}: Alloc a block of its own slab, write and read it
  py.append    appends its args to log_py (write op 3)
  py.crash     the worker exits at once (os._exit)

When CONFORM_EVENTS names a file, the worker appends one JSON line per
event there (hello, welcome, packets, mapped, pongs while a process runs,
cancels, exit), for the conformance test to check.
"""

import fcntl
import json
import mmap
import os
import socket
import struct
import sys
import threading
import time

import msgpack

HELLO, WELCOME, REFUSE, DISPATCH, RESULT, CANCEL, PING, PONG = 1, 2, 3, 4, 5, 6, 7, 8
ALLOC, GRANT, MAPPED = 15, 16, 17

MAGIC = "theus/1"
PROTOCOL = 4
MAX_FRAME = int(os.environ.get("THEUS_MAX_FRAME", "16777216"))
EVENTS = os.environ.get("CONFORM_EVENTS", "")
PID = os.getpid()

F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004


def event(kind, **fields):
    if not EVENTS:
        return
    fields.update(event=kind, pid=PID, t=time.time())
    line = (json.dumps(fields, sort_keys=True) + "\n").encode()
    fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def die(msg, code=2):
    sys.stderr.write("py-worker: %s\n" % msg)
    event("die", msg=msg)
    os._exit(code)


# --- frames (section 2) and bodies (section 3) ---------------------------

class FrameSocket:
    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self.rf = self.sock.makefile("rb", buffering=65536)
        self.wlock = threading.Lock()

    def send(self, kind, body):
        data = msgpack.packb(body, use_bin_type=True)
        if len(data) + 1 > MAX_FRAME:
            raise ValueError("frame of %d bytes over the limit" % (len(data) + 1))
        frame = struct.pack(">IB", len(data) + 1, kind) + data
        with self.wlock:
            self.sock.sendall(frame)

    def recv(self):
        """Returns (kind, tuple), or None at end of file."""
        head = self.rf.read(5)
        if len(head) == 0:
            return None
        if len(head) < 5:
            die("short frame header")
        length, kind = struct.unpack(">IB", head)
        if length == 0 or length > MAX_FRAME:
            die("bad frame length %d" % length)
        body = self.rf.read(length - 1)
        if len(body) != length - 1:
            die("short frame body")
        # strict: exactly one value, no maps, bin stays bytes, str stays str
        value = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
        if not isinstance(value, list):
            die("body of kind %d is not an array" % kind)
        return kind, value


def expect_len(kind, t, n):
    if len(t) != n:
        die("kind %d: tuple of %d elements, want %d" % (kind, len(t), n))


def error(code, message, path=""):
    return [code, message, path]


# --- the slab packet socket (section 7) ----------------------------------

class Slabs:
    def __init__(self):
        self.cond = threading.Condition()
        self.maps = {}  # slab id -> (mmap or None, fd, writable, size)

    def get(self, slab, timeout):
        end = time.time() + timeout
        with self.cond:
            while slab not in self.maps:
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.maps[slab]


SLABS = Slabs()


def packet_loop(sock):
    while True:
        try:
            data, fds, flags, _ = socket.recv_fds(sock, 64, 4)
        except OSError as e:
            event("packet_error", err=str(e))
            return
        if not data and not fds:
            event("packet_eof")
            return
        if len(data) != 13 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            die("bad slab packet: %d bytes, flags %#x" % (len(data), flags))
        op, slab, size = struct.unpack("<BIq", data)
        want_fds = 1 if op in (1, 2) else 0
        if op not in (1, 2, 3) or slab == 0 or size < 0 or len(fds) != want_fds:
            for fd in fds:
                os.close(fd)
            die("bad slab packet op=%d slab=%d size=%d fds=%d" % (op, slab, size, len(fds)))
        if op == 3:
            with SLABS.cond:
                entry = SLABS.maps.pop(slab, None)
            if entry is not None:
                mm, fd, _, _ = entry
                if mm is not None:
                    mm.close()
                os.close(fd)
            event("packet", op=op, slab=slab, size=size, known=entry is not None)
            continue
        fd = fds[0]
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        if seals & (F_SEAL_SHRINK | F_SEAL_GROW) != (F_SEAL_SHRINK | F_SEAL_GROW):
            os.close(fd)
            die("slab %d is not sealed against resizing (seals %#x)" % (slab, seals))
        st_size = os.fstat(fd).st_size
        writable = op == 1
        mm = None
        if size > 0:
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
        # logged before the slab is published: Mapped may follow at once
        event("packet", op=op, slab=slab, size=size, fstat_size=st_size, seals=seals)
        with SLABS.cond:
            SLABS.maps[slab] = (mm, fd, writable, size)
            SLABS.cond.notify_all()


# --- processes --------------------------------------------------------------

def contract(inputs, outputs, semantic="pure"):
    return inputs, outputs, semantic


PROCESSES = {
    "py.echo": contract([], []),
    "py.add": contract(["domain.py.{key}"], ["domain.py.{key}"]),
    "py.delete": contract(["domain.py.{key}"], ["domain.py.{key}"]),
    "py.sleep": contract([], []),
    "py.misbehave": contract(["domain.py"], ["domain.py.mis"]),
    "py.alloc": contract([], []),
    "py.append": contract([], ["log_py"], "effect"),
    "py.crash": contract([], []),
}


class Call:
    def __init__(self, worker, d):
        self.worker = worker
        (self.id, self.attempt, self.process, self.version, inputs,
         self.args_raw, self.deadline) = d
        self.inputs = {e[0]: (e[1], e[2]) for e in inputs}
        self.args = None  # decoded on the process's thread, by run()
        self.cancel = threading.Event()
        # Result fields
        self.writes = []
        self.result = b""
        self.err = None
        self.reads = []
        self.reads_known = False


def run_echo(c):
    c.result = c.args_raw
    c.reads_known = True


def run_add(c):
    path = "domain.py." + c.args["key"]
    old = 0
    if path in c.inputs:
        old = json.loads(c.inputs[path][0])
    new = old + c.args.get("by", 1)
    c.writes = [[path, 1, json.dumps(new).encode()]]
    c.reads, c.reads_known = [path], True
    c.result = json.dumps({"value": new, "old": old, "inputs": sorted(c.inputs),
                           "attempt": c.attempt, "version": c.version}).encode()


def run_delete(c):
    path = "domain.py." + c.args["key"]
    c.writes = [[path, 2, b""]]
    c.reads_known = True


def run_sleep(c):
    ms = c.args.get("ms", 0)
    until = c.args.get("until_file", "")
    end = time.time() + ms / 1000.0
    event("sleep_start", dispatch=c.id, ms=ms)
    while time.time() < end:
        if until and os.path.exists(until):
            break
        if c.cancel.is_set() and not c.args.get("ignore_cancel"):
            event("sleep_canceled", dispatch=c.id)
            c.err = error("canceled", "py.sleep: canceled by the supervisor")
            return
        time.sleep(0.02)
    event("sleep_end", dispatch=c.id, ms=ms)
    c.result = json.dumps({"slept_ms": ms}).encode()
    c.reads_known = True


def run_misbehave(c):
    mode = c.args["mode"]
    ok = [["domain.py.mis", 1, b"1"]]
    if mode == "write_outside":
        c.writes = [["domain.other", 1, b"1"]]
    elif mode == "read_outside":
        c.writes, c.reads, c.reads_known = ok, ["domain.secret"], True
    elif mode == "result_not_json":
        c.result = b"{not json"
    elif mode == "value_not_json":
        c.writes = [["domain.py.mis", 1, b"nope"]]
    elif mode == "bad_op":
        c.writes = [["domain.py.mis", 4, b"1"]]
    elif mode == "own_code":
        c.err = error("py_custom", "a code of the process's own", "domain.py.mis")
        c.writes = ok  # ignored with an error
    elif mode == "ok":
        c.writes, c.reads_known = ok, True
        c.result = b"true"
    else:
        c.err = error("bad_args", "unknown mode")


def run_alloc(c):
    g = c.worker.alloc(c.id, c.args["size"])
    _, slab, off, length, gen, err = g
    out = {"slab": slab, "off": off, "len": length, "gen": gen, "err": err}
    if err is None:
        entry = SLABS.get(slab, 1)
        if entry is None or entry[0] is None or not entry[2]:
            out["write"] = "no writable mapping of slab %d" % slab
        else:
            mm = entry[0]
            n = min(length, 4096)
            pattern = bytes((i * 7 + c.id) & 0xFF for i in range(n))
            mm[off:off + n] = pattern
            out["write"] = "ok" if mm[off:off + n] == pattern else "mismatch"
    c.result = json.dumps(out).encode()
    c.reads_known = True


def run_append(c):
    c.writes = [["log_py", 3, c.args_raw or b"null"]]
    c.reads_known = True


def run_crash(c):
    event("crash", dispatch=c.id)
    os._exit(3)


RUN = {
    "py.echo": run_echo, "py.add": run_add, "py.delete": run_delete,
    "py.sleep": run_sleep, "py.misbehave": run_misbehave,
    "py.alloc": run_alloc, "py.append": run_append, "py.crash": run_crash,
}


# --- the worker conversation (section 6) ------------------------------------

class Worker:
    def __init__(self):
        self.fs = FrameSocket(int(os.environ.get("THEUS_WORKER_FD", "3")))
        self.lock = threading.Lock()
        self.running = {}  # dispatch id -> Call
        self.allocs = {}   # alloc id -> [Event, Grant]
        self.next_alloc = 1

    def alloc(self, dispatch, size):
        with self.lock:
            aid = self.next_alloc
            self.next_alloc += 1
            slot = [threading.Event(), None]
            self.allocs[aid] = slot
        self.fs.send(ALLOC, [aid, dispatch, size])
        if not slot[0].wait(10):
            die("no Grant for Alloc %d" % aid)
        return slot[1]

    def handshake(self):
        procs = [[name, list(i), list(o), s] for name, (i, o, s) in PROCESSES.items()]
        self.fs.send(HELLO, [MAGIC, PROTOCOL, "conformance-py", PID, procs, False])
        event("hello")
        got = self.fs.recv()
        if got is None:
            die("end of file before Welcome")
        kind, t = got
        if kind == REFUSE:
            expect_len(kind, t, 1)
            event("refused", err=t[0])
            die("refused: %r" % (t[0],), 1)
        if kind != WELCOME:
            die("kind %d instead of Welcome" % kind)
        expect_len(kind, t, 5)
        protocol, slot, heartbeat_ms, slab, inline_max = t
        event("welcome", protocol=protocol, slot=slot, heartbeat_ms=heartbeat_ms,
              slab=slab, inline_max=inline_max,
              env_slot=os.environ.get("THEUS_WORKER_SLOT"))
        if slab != 0:
            entry = SLABS.get(slab, 9)
            if entry is None or not entry[2]:
                die("Welcome names slab %d but no read-write packet for it came" % slab)
            self.fs.send(MAPPED, [slab])
            event("mapped", slab=slab)

    def serve(self):
        while True:
            got = self.fs.recv()
            if got is None:
                self.finish()
            kind, t = got
            if kind == PING:
                expect_len(kind, t, 1)
                self.fs.send(PONG, [t[0]])
                with self.lock:
                    n = len(self.running)
                if n:
                    event("pong_while_running", seq=t[0], in_flight=n)
            elif kind == DISPATCH:
                expect_len(kind, t, 7)
                c = Call(self, t)
                with self.lock:
                    self.running[c.id] = c
                threading.Thread(target=self.run, args=(c,), daemon=True).start()
            elif kind == CANCEL:
                expect_len(kind, t, 2)
                with self.lock:
                    c = self.running.get(t[0])
                event("cancel", dispatch=t[0], running=c is not None)
                if c is not None:
                    c.cancel.set()
            elif kind == GRANT:
                expect_len(kind, t, 6)
                with self.lock:
                    slot = self.allocs.pop(t[0], None)
                if slot is not None:
                    slot[1] = t
                    slot[0].set()
            # any other well-formed kind is ignored, as the Go SDK does

    def run(self, c):
        try:
            # The supervisor accepts JSON up to 10000 levels deep; Python's
            # parser may refuse less. That fails this call, not the worker.
            c.args = json.loads(c.args_raw) if c.args_raw else {}
        except (ValueError, RecursionError) as e:
            c.err = error("bad_args", "args: %s: %s" % (type(e).__name__, e))
        try:
            if c.err is None:
                RUN[c.process](c)
        except Exception as e:  # a failing process fails its call, not the worker
            c.err = error("process_failed", "%s: %s" % (type(e).__name__, e))
        with self.lock:
            self.running.pop(c.id, None)
        if c.err is not None:
            body = [c.id, [], b"", c.err, [], False, []]
        else:
            body = [c.id, c.writes, c.result, None, c.reads, c.reads_known, []]
        self.fs.send(RESULT, body)

    def finish(self):
        end = time.time() + 1.0
        while time.time() < end:
            with self.lock:
                if not self.running:
                    break
            time.sleep(0.01)
        event("exit", reason="eof")
        os._exit(0)


def watch_parent():
    want = int(os.environ.get("THEUS_SUPERVISOR_PID", "0"))
    while True:
        if want and os.getppid() != want:
            die("supervisor %d is gone" % want, 0)
        time.sleep(0.5)


def main():
    threading.Thread(target=watch_parent, daemon=True).start()
    heavy = os.environ.get("THEUS_HEAVY_FD")
    if heavy:
        ps = socket.socket(fileno=int(heavy))
        threading.Thread(target=packet_loop, args=(ps,), daemon=True).start()
    w = Worker()
    w.handshake()
    w.serve()


if __name__ == "__main__":
    main()
