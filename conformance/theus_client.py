#!/usr/bin/python3
"""A theus client written from docs/PROTOCOL.md alone, and the checks the
conformance test runs with it.

The library part (Conn) speaks the client conversation (section 5): no
handshake, frames of a big-endian length and a kind (section 2), bodies
that are msgpack tuples (section 3), request ids chosen here and replies
matched to them, in any order.

Run as a script, it drives a supervisor through one scenario and prints
one JSON line per check: {"check": NAME, "ok": BOOL, ...}. It exits 0
when every check passed, 1 otherwise.

  theus_client.py --socket PATH --scenario plugin|noheavy|demo [--backup-dir DIR]
"""

import argparse
import json
import os
import socket
import struct
import sys
import tempfile
import time

import msgpack

EXECUTE, REPLY, GET, GETREPLY, STATUS, STATUSREPLY = 9, 10, 11, 12, 13, 14
PING, PONG, BACKUP, BACKUPREPLY = 7, 8, 18, 19

DEFAULT_MAX_FRAME = 16777216  # the supervisor's default; a client is never told


class TheusError(Exception):
    """An Error tuple: (code, message, path)."""

    def __init__(self, code, message, path):
        super().__init__("%s: %s%s" % (code, message, " (%s)" % path if path else ""))
        self.code, self.message, self.path = code, message, path

    def tuple(self):
        return (self.code, self.message, self.path)


class BadFrame(Exception):
    pass


# --- decoding, one table per message (section 4) ----------------------------

def _u(v, bits=64):
    if type(v) is not int or v < 0 or v >= 1 << bits:
        raise BadFrame("not a uint%d: %r" % (bits, v))
    return v


def _i(v):
    if type(v) is not int or not -(1 << 63) <= v < 1 << 63:
        raise BadFrame("not an int64: %r" % (v,))
    return v


def _b(v):
    if type(v) is not bool:
        raise BadFrame("not a bool: %r" % (v,))
    return v


def _s(v):
    if type(v) is not str:
        raise BadFrame("not a str: %r" % (v,))
    return v


def _bin(v):
    if type(v) is not bytes:
        raise BadFrame("not a bin: %r" % (v,))
    return v


def _tuple(v, n, name):
    if type(v) is not list or len(v) != n:
        raise BadFrame("%s: want a tuple of %d, got %r" % (name, n, v))
    return v


def decode_error(v):
    """Error or nil -> TheusError or None."""
    if v is None:
        return None
    code, message, path = _tuple(v, 3, "Error")
    return TheusError(_s(code), _s(message), _s(path))


def _json(b):
    return json.loads(b) if b else None


def decode_entry(v):
    path, value, version = _tuple(v, 3, "Entry")
    return {"path": _s(path), "value": _bin(value), "version": _u(version)}


def decode_reply(t):
    _tuple(t, 9, "Reply")
    return {"id": _u(t[0]), "version": _u(t[1]), "attempts": _u(t[2], 32),
            "conflicts": _u(t[3], 32), "vip": _b(t[4]), "duplicate": _b(t[5]),
            "result": _bin(t[6]), "err": decode_error(t[7]), "mode": _s(t[8])}


def decode_getreply(t):
    _tuple(t, 4, "GetReply")
    return {"id": _u(t[0]), "version": _u(t[1]),
            "entries": [decode_entry(e) for e in t[2]], "err": decode_error(t[3])}


def decode_worker_status(v):
    _tuple(v, 6, "WorkerStatus")
    return {"slot": _i(v[0]), "pid": _i(v[1]), "state": _s(v[2]),
            "in_flight": _i(v[3]), "processed": _u(v[4]), "restarts": _u(v[5])}


HEAVY_FIELDS = ["size", "slab_size", "slabs", "retired", "held", "in_use",
                "blocks", "largest_free", "huge_kib", "inline_max"]


def decode_heavy(v):
    _tuple(v, 10, "HeavyStatus")
    return {k: _i(x) for k, x in zip(HEAVY_FIELDS, v)}


def decode_statusreply(t):
    _tuple(t, 17, "StatusReply")
    return {"id": _u(t[0]), "version": _u(t[1]), "commits": _u(t[2]),
            "conflicts": _u(t[3]), "retries": _u(t[4]), "vip": _u(t[5]),
            "failures": _u(t[6]), "mode": _s(t[7]),
            "workers": [decode_worker_status(w) for w in t[8]],
            "processes": [_s(p) for p in t[9]], "heavy": decode_heavy(t[10]),
            "durability": _s(t[11]), "durable": _u(t[12]), "batches": _u(t[13]),
            "persisted": _u(t[14]), "lost_tensors": _i(t[15]),
            "err": decode_error(t[16])}


def decode_backupreply(t):
    _tuple(t, 6, "BackupReply")
    return {"id": _u(t[0]), "version": _u(t[1]), "paths": _i(t[2]),
            "op_ids": _i(t[3]), "bytes": _i(t[4]), "err": decode_error(t[5])}


def decode_pong(t):
    _tuple(t, 1, "Pong")
    return {"id": _u(t[0])}


DECODERS = {REPLY: decode_reply, GETREPLY: decode_getreply,
            STATUSREPLY: decode_statusreply, BACKUPREPLY: decode_backupreply,
            PONG: decode_pong}


def encode_frame(kind, body):
    data = msgpack.packb(body, use_bin_type=True)
    return struct.pack(">IB", len(data) + 1, kind) + data


def _args_bytes(args):
    if args is None:
        return b""
    if isinstance(args, (bytes, bytearray)):
        return bytes(args)
    return json.dumps(args).encode()


# --- the connection ----------------------------------------------------------

class Conn:
    """One client connection. Not safe for concurrent use: pipeline by
    sending several requests (send_*) and then collecting their replies
    (wait), in any order."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rf = self.sock.makefile("rb", buffering=65536)
        self.next_id = 1
        self.max_frame = DEFAULT_MAX_FRAME
        self.pending = {}  # (reply kind, id) -> decoded reply
        self.order = []    # (reply kind, id) in the order they arrived

    def close(self):
        self.rf.close()
        self.sock.close()

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def send_raw(self, data):
        self.sock.sendall(data)

    def _send(self, kind, body):
        frame = encode_frame(kind, body)
        if len(frame) - 4 > self.max_frame:
            raise TheusError("bad_request", "request does not fit a frame", "")
        self.sock.sendall(frame)

    def recv(self):
        """Reads one frame; returns (kind, decoded). EOFError at end of file."""
        head = self.rf.read(5)
        if len(head) < 5:
            raise EOFError("connection closed (%d header bytes)" % len(head))
        length, kind = struct.unpack(">IB", head)
        if length == 0 or length > self.max_frame:
            raise BadFrame("frame length %d" % length)
        body = self.rf.read(length - 1)
        if len(body) != length - 1:
            raise EOFError("connection closed inside a frame")
        if kind not in DECODERS:
            raise BadFrame("unexpected kind %d" % kind)
        try:
            value = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
        except Exception as e:  # ExtraData, bad bytes
            raise BadFrame("kind %d: %s" % (kind, e))
        return kind, DECODERS[kind](value)

    def wait(self, kind, rid):
        key = (kind, rid)
        while key not in self.pending:
            k, msg = self.recv()
            self.pending[(k, msg["id"])] = msg
            self.order.append((k, msg["id"]))
        return self.pending.pop(key)

    # requests: send_* returns the id; the plain forms wait for the reply

    def send_execute(self, process, args=None, op_id="", timeout_ms=0, rid=None):
        rid = self._id() if rid is None else rid
        self._send(EXECUTE, [rid, process, _args_bytes(args), op_id, timeout_ms])
        return rid

    def execute(self, process, args=None, op_id="", timeout_ms=0):
        return self.wait(REPLY, self.send_execute(process, args, op_id, timeout_ms))

    def send_get(self, path):
        rid = self._id()
        self._send(GET, [rid, path])
        return rid

    def get(self, path):
        return self.wait(GETREPLY, self.send_get(path))

    def send_status(self):
        rid = self._id()
        self._send(STATUS, [rid])
        return rid

    def status(self):
        return self.wait(STATUSREPLY, self.send_status())

    def ping(self, seq):
        self._send(PING, [seq])
        return self.wait(PONG, seq)

    def backup(self, path):
        rid = self._id()
        self._send(BACKUP, [rid, path])
        return self.wait(BACKUPREPLY, rid)


def get_json(reply):
    """A GetReply's entries as {path: decoded JSON}."""
    return {e["path"]: json.loads(e["value"]) for e in reply["entries"]}


def errt(err):
    return None if err is None else list(err.tuple())


# --- the checks --------------------------------------------------------------

class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, **detail):
        ok = bool(ok)
        if not ok:
            self.failed += 1
        line = {"check": name, "ok": ok}
        line.update(detail)
        print(json.dumps(line, sort_keys=True, default=repr), flush=True)
        return ok

    def run(self, name, fn, *args):
        """Runs fn, turning an exception into a failed check."""
        try:
            fn(*args)
        except Exception as e:
            self.check(name, False, exception="%s: %s" % (type(e).__name__, e))


def wait_ready(path, want_workers, deadline=30.0):
    end = time.time() + deadline
    last = None
    while time.time() < end:
        try:
            c = Conn(path, timeout=5)
            st = c.status()
            c.close()
            last = st
            ready = [w for w in st["workers"] if w["state"] == "ready"]
            if len(ready) >= want_workers:
                return st
        except (OSError, EOFError):
            pass
        time.sleep(0.1)
    raise RuntimeError("supervisor not ready: %r" % (last,))


def common_checks(ck, c, known, path):
    """Checks that need no particular process; known names a process that
    takes no args, path a file for a backup (or "")."""
    # Ping from a client: Pong with the same seq.
    pong = c.ping(12345678901)
    ck.check("ping", pong["id"] == 12345678901, pong=pong)

    # Status: every field decodes, with the documented values.
    st = c.status()
    ck.check("status_fields",
             st["err"] is None and st["mode"] in ("smart", "strict", "training")
             and st["durability"] in ("sync", "async", "none")
             and st["processes"] == sorted(st["processes"])
             and all(w["state"] in ("starting", "ready", "backoff", "stopped") for w in st["workers"])
             and st["durable"] <= st["version"],
             status={k: v for k, v in st.items() if k != "err"})

    # Get of a missing path: not_found, naming the path, no entries.
    g = c.get("nothing.here.at_all")
    ck.check("get_missing_not_found",
             g["err"] is not None and g["err"].code == "not_found"
             and g["err"].path == "nothing.here.at_all" and g["entries"] == [],
             err=errt(g["err"]), version=g["version"])

    # Bad paths: bad_request. 256 bytes is a valid path, 257 is not; 33 segments neither.
    for name, p, ok in [("space", "bad path!", False), ("257_bytes", "a" * 257, False),
                        ("256_bytes", "a" * 256, True), ("33_segments", ".".join("a" * 33), False)]:
        g = c.get(p)
        code = g["err"].code if g["err"] else None
        ck.check("get_path_" + name, code == ("not_found" if ok else "bad_request"),
                 err=errt(g["err"]) if code != "bad_request" else code)

    # An unknown process.
    r = c.execute("no.such.process")
    ck.check("unknown_process", r["err"] is not None and r["err"].code == "unknown_process"
             and r["result"] == b"", err=errt(r["err"]))

    # Op ids: 128 bytes is fine, 129 is bad_request.
    r = c.execute(known, op_id="x" * 128)
    ck.check("op_id_128", r["err"] is None, err=errt(r["err"]))
    # Every reply, failed or not, carries the supervisor's mode.
    ck.check("reply_mode", r["mode"] == st["mode"], mode=r["mode"], status_mode=st["mode"])
    r = c.execute(known, op_id="y" * 129)
    ck.check("op_id_129", r["err"] is not None and r["err"].code == "bad_request",
             err=errt(r["err"]))

    # Integers in other encodings than the shortest: an id as int64
    # (0xd3), a TimeoutMS of 0 as int 8 (0xd0: the default timeout).
    body = (b"\x95\xd3" + struct.pack(">q", 4242) + msgpack.packb(known)
            + b"\xc4\x00" + b"\xa0" + b"\xd0\x00")
    c.send_raw(struct.pack(">IB", len(body) + 1, EXECUTE) + body)
    r = c.wait(REPLY, 4242)
    ck.check("int64_encoded_id", r["err"] is None, err=errt(r["err"]))
    # A negative TimeoutMS is bad_request (the spec's Execute table).
    body = (b"\x95\xcd\x10\x93" + msgpack.packb(known)
            + b"\xc4\x00" + b"\xa0" + b"\xff")
    c.send_raw(struct.pack(">IB", len(body) + 1, EXECUTE) + body)
    r = c.wait(REPLY, 4243)
    ck.check("negative_timeout", r["err"] is not None and r["err"].code == "bad_request",
             err=errt(r["err"]))

    # Get, Status and Ping are answered in the order read, and may
    # overtake an earlier Execute's Reply.
    c.order = []
    ex = c.send_execute("no.such.process")
    sent = [(GETREPLY, c.send_get("nothing.here")), (STATUSREPLY, c.send_status())]
    c._send(PING, [777])
    sent.append((PONG, 777))
    sent.append((GETREPLY, c.send_get("nothing.there")))
    c.wait(REPLY, ex)
    for k, rid in sent:
        c.wait(k, rid)
    got = [x for x in c.order if x[0] != REPLY]
    ck.check("in_order_replies", got == sent, got=got, want=sent)

    # Request id 0 is valid.
    c._send(STATUS, [0])
    st0 = c.wait(STATUSREPLY, 0)
    ck.check("request_id_zero", st0["id"] == 0 and st0["err"] is None)

    # Backup, when asked: an absolute path works, a relative one is bad_request.
    if path:
        b = c.backup(path)
        ck.check("backup", b["err"] is None and b["bytes"] > 0 and b["paths"] >= 0,
                 reply={k: v for k, v in b.items() if k != "err"})
        b = c.backup("relative/backup.db")
        ck.check("backup_relative", b["err"] is not None and b["err"].code == "bad_request",
                 err=errt(b["err"]))


def bad_frame_checks(ck, sockpath):
    """Bad frames end the connection without a reply (section 2)."""
    cases = {
        "zero_length": struct.pack(">IB", 0, EXECUTE),
        "over_limit": struct.pack(">IB", DEFAULT_MAX_FRAME + 1, EXECUTE),
        "map_body": encode_frame(STATUS, {"ID": 1}),
        "short_tuple": encode_frame(STATUS, []),
        "trailing_bytes": struct.pack(">IB", 4, STATUS) + b"\x91\x01\xc0",
        "wrong_kind": encode_frame(REPLY, [1, 0, 0, 0, False, False, b"", None]),
        "str_for_bin": encode_frame(EXECUTE, [1, "noop", "{}", "", 0]),
        "nil_for_bin": encode_frame(EXECUTE, [1, "noop", None, "", 0]),
        "negative_id": encode_frame(STATUS, [-1]),
        "int_for_str": encode_frame(BACKUP, [1, 0]),
        "client_sends_pong": encode_frame(PONG, [1]),
    }
    for name, data in cases.items():
        c = Conn(sockpath, timeout=10)
        try:
            c.send_raw(data)
            try:
                k, msg = c.recv()
                ck.check("bad_frame_" + name, False, got=[k, msg])
            except EOFError:
                ck.check("bad_frame_" + name, True)
        finally:
            c.close()


# --- scenario: the Python worker plugin --------------------------------------

def scenario_plugin(ck, sock, backup_dir):
    st = wait_ready(sock, 1)
    procs = ["py.add", "py.alloc", "py.append", "py.crash", "py.delete",
             "py.echo", "py.misbehave", "py.sleep"]
    ck.check("plugin_processes", st["processes"] == procs, processes=st["processes"])
    c = Conn(sock)
    ck.run("common", common_checks, ck, c, "py.echo", backup_dir and backup_dir + "/plugin.db")

    # Echo: the args bytes travel unchanged both ways; no args is an empty bin.
    raw = b'{ "spaced" : [1, 2, 3], "s": "\\u00e9" }'
    r = c.execute("py.echo", raw)
    ck.check("echo_bytes", r["err"] is None and r["result"] == raw and r["attempts"] == 1,
             result=r["result"])
    r = c.execute("py.echo")
    ck.check("echo_no_args", r["err"] is None and r["result"] == b"")
    r = c.execute("py.echo", b"{not json")
    ck.check("bad_args_not_json", r["err"] is not None and r["err"].code == "bad_args",
             err=errt(r["err"]))

    # py.add: a templated contract, reads and writes a DATA path.
    r1 = c.execute("py.add", {"key": "a", "by": 5})
    r2 = c.execute("py.add", {"key": "a", "by": 2})
    res2 = _json(r2["result"])
    ck.check("add_commits",
             r1["err"] is None and r2["err"] is None and res2["value"] == 7
             and res2["old"] == 5 and res2["inputs"] == ["domain.py.a"]
             and r2["version"] > r1["version"] and res2["version"] == r1["version"],
             r1=_json(r1["result"]), r2=res2, v1=r1["version"], v2=r2["version"])
    g = c.get("domain.py")
    ck.check("get_subtree", g["err"] is None and get_json(g) == {"domain.py.a": 7}
             and g["entries"][0]["version"] == r2["version"], entries=get_json(g))
    r = c.execute("py.add", {"by": 1})
    ck.check("template_arg_missing", r["err"] is not None and r["err"].code == "bad_args",
             err=errt(r["err"]))

    # Op ids: a repeat is a duplicate with the first outcome; another call is a conflict.
    a = c.execute("py.add", {"key": "op", "by": 1}, op_id="conf-op-1")
    b = c.execute("py.add", {"key": "op", "by": 1}, op_id="conf-op-1")
    x = c.execute("py.add", {"key": "op", "by": 9}, op_id="conf-op-1")
    g = c.get("domain.py.op")
    ck.check("op_id_duplicate",
             a["err"] is None and not a["duplicate"] and b["err"] is None and b["duplicate"]
             and b["version"] == a["version"] and b["result"] == a["result"]
             and get_json(g) == {"domain.py.op": 1},
             first=[a["version"], a["result"]], repeat=[b["version"], b["result"], b["duplicate"]])
    ck.check("op_id_conflict", x["err"] is not None and x["err"].code == "op_id_conflict",
             err=errt(x["err"]))

    # Pipelining: send everything, then match replies by id, in any order.
    # A slow execute first, which ends only once every other reply is in:
    # they overtake it.
    gate = os.path.join(tempfile.mkdtemp(prefix="theus-conform-"), "gate")
    slow = c.send_execute("py.sleep", {"ms": 60000, "until_file": gate}, timeout_ms=90000)
    ids = {}
    for i in range(300):
        ids[c.send_execute("py.add", {"key": "k%d" % (i % 10), "by": 1})] = i
    echo = {c.send_execute("py.echo", {"n": i}): i for i in range(50)}
    getid = c.send_get("domain.py.k0")
    c.order = []
    replies = {rid: c.wait(REPLY, rid) for rid in list(ids) + list(echo)}
    gr = c.wait(GETREPLY, getid)
    open(gate, "w").close()
    replies[slow] = c.wait(REPLY, slow)
    os.unlink(gate)
    os.rmdir(os.path.dirname(gate))
    ok = all(r["err"] is None for r in replies.values())
    ok = ok and all(_json(replies[rid]["result"]) == {"n": i} for rid, i in echo.items())
    arrival = [rid for k, rid in c.order if k == REPLY]
    g = c.get("domain.py")
    vals = get_json(g)
    ok = ok and all(vals.get("domain.py.k%d" % k) == 30 for k in range(10))
    ok = ok and [e["path"] for e in g["entries"]] == sorted(vals)
    # The Get was answered in the order the supervisor read it, so it may
    # overtake the adds sent before it (docs/PROTOCOL.md, "Pipelining"):
    # it sees k0 at some count from 1 to 30, or not yet (not_found).
    get_ok = (gr["err"] is not None and gr["err"].code == "not_found") or \
        (gr["err"] is None and 1 <= (get_json(gr).get("domain.py.k0") or 0) <= 30)
    ck.check("pipelined", ok and arrival[-1] == slow and len(arrival) == 351 and get_ok,
             slow_sent_first_arrived_last=arrival[-1] == slow,
             conflicts=sum(r["conflicts"] for r in replies.values()),
             get=errt(gr["err"]) if gr["err"] is not None else get_json(gr))

    # Delete, then the path is not_found.
    r = c.execute("py.delete", {"key": "a"})
    g = c.get("domain.py.a")
    ck.check("delete", r["err"] is None and g["err"] is not None and g["err"].code == "not_found",
             err=errt(g["err"]))

    # Append under log_*: what does it leave? (not specified in PROTOCOL.md)
    r1 = c.execute("py.append", {"n": 1})
    r2 = c.execute("py.append", {"n": 2})
    g = c.get("log_py")
    ck.check("append", r1["err"] is None and r2["err"] is None and g["err"] is None
             and len(g["entries"]) >= 1,
             errs=[errt(r1["err"]), errt(r2["err"])], entries=get_json(g) if g["err"] is None else errt(g["err"]))

    # Misbehaving processes: each gets the documented code.
    want = {"write_outside": ("contract_violation", "domain.other"),
            "read_outside": ("contract_violation", "domain.secret"),
            "result_not_json": ("process_failed", None),
            "value_not_json": ("process_failed", None),
            "bad_op": ("process_failed", None),
            "own_code": ("py_custom", "domain.py.mis")}
    for mode, (code, path) in want.items():
        r = c.execute("py.misbehave", {"mode": mode})
        e = r["err"]
        ck.check("misbehave_" + mode,
                 e is not None and e.code == code and (path is None or e.path == path)
                 and r["result"] == b"",
                 err=errt(e))
    g = c.get("domain.py.mis")
    ck.check("misbehave_nothing_committed", g["err"] is not None and g["err"].code == "not_found",
             err=errt(g["err"]))

    # Alloc/Grant: a block of the worker's own slab, written through its mmap.
    st = c.status()
    if st["heavy"]["slab_size"] > 0:
        r = c.execute("py.alloc", {"size": 4096})
        g = _json(r["result"]) or {}
        ck.check("alloc_grant",
                 r["err"] is None and g.get("err") is None and g.get("off", 0) > 0
                 and g["off"] % 64 == 0 and g.get("len", 0) >= 4096 and g.get("write") == "ok",
                 grant=g, err=errt(r["err"]))
        r = c.execute("py.alloc", {"size": 0})
        g = _json(r["result"]) or {}
        ck.check("alloc_size_zero", r["err"] is None and g.get("err") is not None
                 and g["err"][0] == "bad_request", grant=g)
        r = c.execute("py.alloc", {"size": 1 << 40})
        g = _json(r["result"]) or {}
        ck.check("alloc_too_big", r["err"] is None and g.get("err") is not None
                 and g["err"][0] == "arena_full", grant=g)
        st2 = c.status()
        ck.check("alloc_freed", st2["heavy"]["blocks"] == st["heavy"]["blocks"],
                 before=st["heavy"], after=st2["heavy"])

    # Heartbeats: a process that runs past the 5 s silence limit; the worker
    # answers Pings meanwhile and is not replaced.
    before = c.status()
    t0 = time.time()
    r = c.execute("py.sleep", {"ms": 6500}, timeout_ms=30000)
    after = c.status()
    same = [(w["slot"], w["pid"], w["restarts"]) for w in before["workers"]] == \
           [(w["slot"], w["pid"], w["restarts"]) for w in after["workers"]]
    ck.check("long_process_survives", r["err"] is None and r["attempts"] == 1 and same,
             err=errt(r["err"]), elapsed=round(time.time() - t0, 2),
             workers=after["workers"])

    # Cancel: a process past its execute's timeout is canceled; the worker
    # answers it with a Result and is not replaced.
    before = c.status()
    t0 = time.time()
    r = c.execute("py.sleep", {"ms": 15000}, timeout_ms=800)
    elapsed = time.time() - t0
    time.sleep(1.5)  # past the 500 ms + 500 ms kill window
    after = c.status()
    same = [(w["pid"], w["restarts"]) for w in before["workers"]] == \
           [(w["pid"], w["restarts"]) for w in after["workers"]]
    ck.check("cancel_timeout", r["err"] is not None and r["err"].code == "timeout"
             and elapsed < 5 and same, err=errt(r["err"]), elapsed=round(elapsed, 2))

    # Cancel when the client goes away (the Go test finds the Cancel in
    # the worker's events): the other connection sees a worker not replaced.
    before = c.status()
    c2 = Conn(sock)
    c2.send_execute("py.sleep", {"ms": 15000}, timeout_ms=30000)
    time.sleep(0.5)
    c2.close()
    end = time.time() + 10
    while time.time() < end:
        after = c.status()
        if sum(w["in_flight"] for w in after["workers"]) == 0:
            break
        time.sleep(0.05)
    time.sleep(1.2)  # past the 500 ms + 500 ms kill window
    after = c.status()
    ck.check("cancel_client_gone",
             sum(w["in_flight"] for w in after["workers"]) == 0
             and [(w["pid"], w["restarts"]) for w in before["workers"]]
             == [(w["pid"], w["restarts"]) for w in after["workers"]],
             workers=after["workers"])

    # A worker that ignores a Cancel is killed and replaced.
    before = c.status()
    r = c.execute("py.sleep", {"ms": 4000, "ignore_cancel": True}, timeout_ms=500)
    end = time.time() + 10
    while time.time() < end:
        after = c.status()
        if sum(w["restarts"] for w in after["workers"]) > sum(w["restarts"] for w in before["workers"]):
            break
        time.sleep(0.1)
    ck.check("ignored_cancel_killed", r["err"] is not None and r["err"].code == "timeout"
             and sum(w["restarts"] for w in after["workers"]) > sum(w["restarts"] for w in before["workers"]),
             err=errt(r["err"]), workers=after["workers"])

    # A worker that dies on every dispatch: worker_crashed after 1 + 3.
    wait_ready(sock, len(before["workers"]))
    r = c.execute("py.crash", timeout_ms=30000)
    ck.check("worker_crashed", r["err"] is not None and r["err"].code == "worker_crashed",
             err=errt(r["err"]), attempts=r["attempts"])
    st = wait_ready(sock, len(before["workers"]))
    r = c.execute("py.echo", b"1")
    ck.check("workers_back", r["err"] is None and r["result"] == b"1",
             workers=st["workers"], heavy=st["heavy"])
    c.close()
    bad_frame_checks(ck, sock)


# --- scenario: the Python worker with the HEAVY zone off ---------------------

def scenario_noheavy(ck, sock, backup_dir):
    """--heavy-size 0: the Welcome names no slab, so the worker sends no
    Mapped; an Alloc is answered arena_full."""
    st = wait_ready(sock, 1)
    h = st["heavy"]
    ck.check("noheavy_status", all(v == 0 for k, v in h.items() if k != "inline_max"),
             heavy=h, note="PROTOCOL.md says all zero; inline_max is not")
    c = Conn(sock)
    r = c.execute("py.add", {"key": "n", "by": 3})
    ck.check("noheavy_add", r["err"] is None and _json(r["result"])["value"] == 3,
             err=errt(r["err"]))
    r = c.execute("py.alloc", {"size": 64})
    g = _json(r["result"]) or {}
    ck.check("noheavy_alloc", r["err"] is None and g.get("err") is not None
             and g["err"][0] == "arena_full", grant=g)
    c.close()


# --- scenario: the default demo worker ----------------------------------------

def scenario_demo(ck, sock, backup_dir):
    wait_ready(sock, 1)
    c = Conn(sock)
    st = c.status()
    ck.check("demo_processes",
             all(p in st["processes"] for p in ["noop", "counter.add", "counters.add", "bank.open",
                                                "bank.transfer", "tensor.fill", "tensor.sum"]),
             processes=st["processes"])
    ck.run("common", common_checks, ck, c, "noop", backup_dir and backup_dir + "/demo.db")

    r = c.execute("noop")
    ck.check("noop", r["err"] is None and r["attempts"] == 1 and r["result"] == b"",
             version=r["version"], result=r["result"])

    r = c.execute("counter.add", {"by": 2}, op_id="demo-1", timeout_ms=5000)
    d = c.execute("counter.add", {"by": 2}, op_id="demo-1", timeout_ms=5000)
    x = c.execute("counter.add", {"by": 3}, op_id="demo-1")
    ck.check("counter_add", r["err"] is None and _json(r["result"]) == 2
             and d["duplicate"] and d["version"] == r["version"] and d["result"] == r["result"],
             first=[r["version"], r["result"]], dup=[d["version"], d["duplicate"]])
    ck.check("demo_op_id_conflict", x["err"] is not None and x["err"].code == "op_id_conflict",
             err=errt(x["err"]))

    # Pipelined hot-key adds: conflicts, retries, maybe VIP tickets.
    ids = [c.send_execute("counter.add", {"by": 1}) for _ in range(200)]
    ids += [c.send_execute("counters.add", {"key": "k%d" % (i % 8), "by": 1}) for i in range(200)]
    replies = {rid: c.wait(REPLY, rid) for rid in reversed(ids)}
    ck.check("demo_pipelined", all(r["err"] is None for r in replies.values()),
             conflicts=sum(r["conflicts"] for r in replies.values()),
             vip=sum(1 for r in replies.values() if r["vip"]))
    g = c.get("domain.counter")
    ck.check("demo_counter_value", g["err"] is None and get_json(g) == {"domain.counter": 202},
             entries=get_json(g) if g["err"] is None else errt(g["err"]))

    r1 = c.execute("bank.open", {"account": "alice", "balance": 100})
    r2 = c.execute("bank.open", {"account": "bob", "balance": 0})
    r3 = c.execute("bank.open", {"account": "bob", "balance": 5})
    t = c.execute("bank.transfer", {"from": "alice", "to": "bob", "amount": 30})
    f = c.execute("bank.transfer", {"from": "bob", "to": "alice", "amount": 99})
    g = c.get("domain.accounts")
    ck.check("bank", r1["err"] is None and r2["err"] is None and t["err"] is None
             and r3["err"] is not None and r3["err"].code == "account_exists"
             and f["err"] is not None and f["err"].code == "insufficient_funds"
             and get_json(g) == {"domain.accounts.alice": 70, "domain.accounts.bob": 30},
             open_again=errt(r3["err"]), transfer_fail=errt(f["err"]), accounts=get_json(g))
    r = c.execute("counter.add", {"by": 1, "nope": 1})
    ck.check("demo_bad_args", r["err"] is not None and r["err"].code == "bad_args",
             err=errt(r["err"]))

    st = c.status()
    ck.check("demo_status_counters",
             st["commits"] >= 205 and st["version"] >= st["commits"]
             and st["failures"] >= 2
             and sum(w["processed"] for w in st["workers"]) >= 405,
             status={k: v for k, v in st.items() if k not in ("err", "processes")})
    c.close()
    bad_frame_checks(ck, sock)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--scenario", choices=["plugin", "noheavy", "demo"], required=True)
    ap.add_argument("--backup-dir", default="")
    a = ap.parse_args()
    ck = Checks()
    fn = {"plugin": scenario_plugin, "noheavy": scenario_noheavy,
          "demo": scenario_demo}[a.scenario]
    ck.run("scenario_" + a.scenario, fn, ck, a.socket, a.backup_dir)
    sys.exit(1 if ck.failed else 0)


if __name__ == "__main__":
    main()
