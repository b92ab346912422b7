"""Processes and what they see: the process decorator and Ctx.

A process is a function of a Ctx and its args, declared with a contract:

    @theus.process("greet", inputs=["domain.greetings"], outputs=["domain.greetings"])
    def greet(ctx, name):
        n = ctx.get("domain.greetings." + name, 0) + 1
        ctx.set("domain.greetings." + name, n)
        return {"greeting": "hello, " + name, "count": n}

The args of a call (a JSON object) are passed as keyword arguments: an
unknown field, a missing one without a default, or args that are not an
object fail the call with bad_args. The return value goes back to the
caller as JSON (None: no result).
"""

import inspect
import json
import sys
import threading
import time
import traceback

from . import contract as _contract
from . import tensor as _tensor
from .errors import BadArgs, BadTensor, Canceled, ContractViolation, Error, ProcessFailed, Timeout
from .wire import MAX_EMITS, MAX_READS, OP_APPEND, OP_DELETE, OP_SET

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_loads = json.loads


def dumps(v):
    """v as compact JSON bytes (NaN and infinities refused, as in Go)."""
    return _dumps(v).encode()


_log_lock = threading.Lock()


def log(level, message, **fields):
    """Writes one JSON line to stderr, which the supervisor collects into
    its own log (stdout is collected too, as plain lines)."""
    rec = {"level": level, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "message": message}
    rec.update(fields)
    line = json.dumps(rec, default=str) + "\n"
    with _log_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Process:
    """A process ready to serve: its name, contract and function. Build
    one with the process decorator. Calling it calls the function."""

    def __init__(self, name, fn, inputs=(), outputs=(), semantic="pure"):
        if not isinstance(name, str) or not name:
            raise ValueError("theus: a process needs a name")
        if not callable(fn):
            raise TypeError("theus: process %s: %r is not callable" % (name, fn))
        self.name, self.fn = name, fn
        self.spec = _contract.Spec(name, inputs, outputs, semantic)
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError("theus: process %s: the function's first parameter must take the ctx" % name)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return "<theus process %s>" % self.name

    def info(self):
        """The ProcessInfo tuple of the Hello."""
        return [self.name, list(self.spec.inputs), list(self.spec.outputs), self.spec.semantic]

    def run(self, dispatch, heavy=None, cancel=None):
        """Runs the process once on a Dispatch tuple and returns the Result
        tuple. heavy is the worker's HEAVY zone (None: every tensor made
        travels inline, as in theus.testing); cancel an Event the worker
        sets on a Cancel."""
        did, attempt, _, version, inputs, args, deadline = dispatch
        try:
            bound = self.spec.bind(args)
        except Error as e:
            return [did, [], b"", e.wire(), [], False, []]
        ctx = Ctx(self, bound, did, attempt, version, inputs, deadline, heavy, cancel)
        try:
            out = self._call(ctx, args)
            err = ctx._violation
            if err is None:
                ctx._flush_tensors()
        except BaseException as e:  # one Result per Dispatch, whatever happens
            err = self._wire_error(e, ctx)
        if err is not None:
            return [did, [], b"", err.wire(), [], False, []]
        reads = sorted(set(ctx._reads))
        known = len(reads) <= MAX_READS
        return [did, ctx._writes, out, None, reads if known else [], known, ctx._emits]

    def _call(self, ctx, args):
        kwargs = {}
        if args and args.strip() not in (b"", b"null"):
            try:
                kwargs = _loads(args)
            except (ValueError, RecursionError) as e:
                raise BadArgs("process %s: args: %s" % (self.name, e)) from None
            if type(kwargs) is not dict:
                raise BadArgs("process %s: args are a JSON %s, want an object" % (self.name, type(kwargs).__name__))
        try:
            v = self.fn(ctx, **kwargs)
        except TypeError as e:
            # Args that do not fit the function's parameters are bad_args;
            # a TypeError the function raised is its own failure. The call
            # failed to bind when it never entered the function (no frame
            # after this one), or when the signature says so.
            tb = e.__traceback__
            if tb is not None and tb.tb_next is None:
                raise BadArgs("process %s: %s" % (self.name, e)) from None
            try:
                self.signature.bind(ctx, **kwargs)
            except TypeError as be:
                raise BadArgs("process %s: %s" % (self.name, be)) from None
            raise
        if v is None:
            return b""
        try:
            return dumps(v)
        except (TypeError, ValueError, RecursionError) as e:
            raise ProcessFailed("process %s: encode result: %s" % (self.name, e)) from None

    def _wire_error(self, e, ctx):
        if isinstance(e, Error):
            return e
        if isinstance(e, KeyboardInterrupt):  # pragma: no cover
            raise e
        ctx.log("process raised", level="warn", error=repr(e), traceback=traceback.format_exc())
        return ProcessFailed("process %s raised %s: %s" % (self.name, type(e).__name__, e))


def process(name, inputs=(), outputs=(), semantic="pure"):
    """Declares a process: @theus.process("name", inputs=[...],
    outputs=[...], semantic="pure"|"effect"). It is registered for
    theus.serve(). A bad contract raises ValueError at once."""
    def wrap(fn):
        p = Process(name, fn, inputs, outputs, semantic)
        REGISTRY.append(p)
        return p
    return wrap


REGISTRY = []  # the processes declared with @process, in order


class Ctx:
    """What a process sees: its declared inputs at one snapshot, and the
    delta it builds. A Ctx is used by one call and must not be kept.

    Reads and writes outside the contract raise ContractViolation, and
    fail the call even if the process catches the error.
    """

    def __init__(self, proc, bound, did, attempt, version, inputs, deadline, heavy, cancel):
        self.process = proc.name
        self.version = version  # the snapshot's version
        self.attempt = attempt  # runs of this call, from 1; more after conflicts
        self.dispatch = did
        self.deadline = deadline / 1e9 if deadline else None  # Unix seconds; None: none
        self.canceled = cancel if cancel is not None else threading.Event()
        self._c = bound
        self._inputs = {}
        for e in inputs:
            self._inputs[e[0]] = e[1]
        self._sorted = None
        self._writes = []
        self._reads = []
        self._violation = None
        self._heavy = heavy
        self._outputs = []  # (path, array, dtype name, (slab, off, gen) or None) of new_tensor
        self._emits = []

    # --- cancellation -----------------------------------------------------

    def done(self):
        """True once the caller stopped waiting: a Cancel came, or the
        deadline passed."""
        return self.canceled.is_set() or (self.deadline is not None and time.time() >= self.deadline)

    def check(self):
        """Raises Canceled or Timeout once done(): call it in long loops."""
        if self.canceled.is_set():
            raise Canceled("process %s: canceled by the supervisor" % self.process)
        if self.deadline is not None and time.time() >= self.deadline:
            raise Timeout("process %s: past its deadline" % self.process)

    def sleep(self, seconds):
        """Sleeps, stopping early (Canceled, Timeout) when done."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.canceled.wait(min(left, 0.05))

    # --- reads --------------------------------------------------------------

    def _fail(self, err):
        if self._violation is None:
            self._violation = err
        return err

    def _check_read(self, path):
        try:
            self._c.check_read(path)
        except ContractViolation as e:
            raise self._fail(e) from None
        self._reads.append(path)

    def raw(self, path):
        """The JSON bytes at path, or None."""
        self._check_read(path)
        return self._inputs.get(path)

    def get(self, path, default=None):
        """The value at path, decoded from JSON, or default when there is
        none. A path outside the inputs raises ContractViolation."""
        self._check_read(path)
        b = self._inputs.get(path)
        if b is None:
            return default
        return _loads(b)

    def has(self, path):
        """Whether path holds a value."""
        self._check_read(path)
        return path in self._inputs

    def children(self, path):
        """The values at paths directly under path, keyed by their last
        segment (the accounts under domain.accounts, say)."""
        self._check_read(path)
        prefix = path + "."
        out = {}
        for p, v in self._inputs.items():
            if p.startswith(prefix) and "." not in p[len(prefix):]:
                out[p[len(prefix):]] = _loads(v)
        return out

    # --- writes -------------------------------------------------------------

    def _write(self, path, op, value):
        try:
            self._c.check_write(path, op)
        except Error as e:
            raise self._fail(e) from None
        b = b""
        if op != OP_DELETE:
            try:
                b = dumps(value)
            except (TypeError, ValueError, RecursionError) as e:
                raise self._fail(ProcessFailed("process %s: value for %s: %s" % (self.process, path, e))) from None
        self._writes.append([path, op, b])

    def set(self, path, value):
        """Sets path to value (JSON encoded) in the delta."""
        self._write(path, OP_SET, value)

    def delete(self, path):
        """Deletes the value at path (not its subtree) in the delta."""
        self._write(path, OP_DELETE, None)

    def append(self, path, value):
        """Appends value to the LOG rooted at path (a path whose last
        segment is log_*)."""
        self._write(path, OP_APPEND, value)

    def emit(self, topic, payload):
        """Adds an outbox message under topic (one DATA-zone segment),
        committed with the delta or dropped with it. Effect processes
        only."""
        try:
            self._c.check_emit(topic)
        except Error as e:
            raise self._fail(e) from None
        if len(self._emits) >= MAX_EMITS:
            raise self._fail(ProcessFailed("process %s: more than %d outbox messages in one call" % (self.process, MAX_EMITS)))
        try:
            b = dumps(payload)
        except (TypeError, ValueError, RecursionError) as e:
            raise self._fail(ProcessFailed("process %s: payload for topic %s: %s" % (self.process, topic, e))) from None
        self._emits.append([topic, b])

    def log(self, message, level="info", **fields):
        """Logs a JSON line tagged with the process and the dispatch."""
        log(level, message, process=self.process, dispatch=self.dispatch, **fields)

    # --- tensors ------------------------------------------------------------

    def tensor(self, path):
        """The tensor at a HEAVY input path as a read-only numpy array over
        the shared bytes (no copy), or None. It must not be used after the
        process returns."""
        b = self.raw(path)
        if b is None:
            return None
        h = self._heavy
        d = _tensor.parse_descriptor(b, h.inline_max if h is not None else 1 << 30)
        if d["slab"] == 0:
            return _tensor.array(d)
        if h is None:
            raise ProcessFailed("%s is in the HEAVY arena, which this worker does not map" % path)
        r = h.slabs.region(d["slab"], self._mono_deadline(), self.canceled)
        if r.mm is None or d["off"] <= 0 or d["off"] > r.size - d["len"]:
            raise BadTensor("%s: bytes [%d, +%d) outside slab %d" % (path, d["off"], d["len"], d["slab"]), path)
        return _tensor.array(d, r.mm)

    def new_tensor(self, path, dtype, shape):
        """A writable numpy array of dtype ("F32", numpy.float32, ...) and
        shape for the HEAVY path path, added to the delta: fill it in
        place before returning. Up to the inline limit (2 KiB) it is
        private memory that travels inline; larger, a block of this
        worker's slab (one round trip to the supervisor), holding whatever
        the slab held: write every element. arena_full when the slab has
        no room."""
        try:
            self._c.check_write(path, OP_SET)
        except Error as e:
            raise self._fail(e) from None
        if not _contract.in_zone(path, _contract.HEAVY):
            raise self._fail(BadTensor("a tensor must be written at a HEAVY path (heavy.* or *.heavy_*)", path))
        name = _tensor.dtype_name(dtype)
        shape, n = _tensor.check_shape(shape)
        dt = _tensor.np_dtype(name)
        size = n * dt.itemsize
        h = self._heavy
        np = _tensor.numpy()
        if h is None or h.slabs is None or size <= h.inline_max:
            a = np.zeros(shape, dt)
            self._outputs.append((path, a, name, None))
            return a
        slab, off, length, gen = h.alloc(self, size)
        r = h.slabs.region(slab, self._mono_deadline(), self.canceled)
        if not r.writable or r.mm is None or off <= 0 or length < size or off > r.size - size:
            raise ProcessFailed("new_tensor %s: the supervisor granted [%d, +%d) of slab %d, which this worker cannot write" % (path, off, length, slab))
        a = np.ndarray(shape, dt, buffer=r.mm, offset=off)
        self._outputs.append((path, a, name, (slab, off, gen)))
        return a

    def _mono_deadline(self):
        if self.deadline is None:
            return time.monotonic() + 30
        return time.monotonic() + max(0.0, self.deadline - time.time())

    def _flush_tensors(self):
        for path, a, name, where in self._outputs:
            if where is None:
                v = _tensor.inline_descriptor(a, name)
            else:
                v = _tensor.arena_descriptor(where[0], where[1], where[2], a, name)
            self._writes.append([path, OP_SET, v])


def inline_value(arr):
    """The inline descriptor (JSON bytes) of a numpy array: what a HEAVY
    path holds for a small tensor, and what theus.testing puts in the
    state for an array."""
    return _tensor.inline_descriptor(arr)

