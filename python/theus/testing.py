"""Run a process in the test's own interpreter, the way the Go package
workertest does: against a state the test gives, through the real wire
encoding (the Dispatch and the Result go through msgpack) and the same
contract checks the supervisor makes. No supervisor, no worker process,
nothing committed.

    out = theus.testing.run(greet, {"domain.greetings.ada": 2}, {"name": "ada"})
    assert out.result == {"greeting": "hello, ada", "count": 3}
    assert out.delta() == {"domain.greetings.ada": 3}

Tensors travel inline whatever their size: a numpy array in the state
becomes an inline descriptor, and a new_tensor comes back through
Outcome.tensor(path).
"""

import json
import sys

from . import contract as _contract
from . import tensor as _tensor
from .errors import ContractViolation, Error, ProcessFailed
from .processes import Process, dumps
from .wire import DISPATCH, RESULT, OP_DELETE, check_error, decode, frame

_BIG = 1 << 31  # frames in the harness are not bounded by a supervisor's limit


class Write:
    __slots__ = ("path", "op", "raw")

    def __init__(self, path, op, raw):
        self.path, self.op, self.raw = path, op, raw

    @property
    def value(self):
        """The written value, decoded (None for a delete)."""
        return None if self.op == OP_DELETE else json.loads(self.raw)

    def __repr__(self):
        return "Write(%r, op=%d, %r)" % (self.path, self.op, self.raw)


class Outcome:
    """What one run produced."""

    def __init__(self, writes, result_raw, reads, emits):
        self.writes = writes  # [Write], in order
        self.result_raw = result_raw  # JSON bytes; b"" for none
        self.reads = reads  # the paths read, sorted
        self.emits = emits  # [(topic, payload decoded)], in order

    @property
    def result(self):
        """What the process returned, decoded (None for none)."""
        return json.loads(self.result_raw) if self.result_raw else None

    def delta(self):
        """{path: value} of the writes (None for a delete; appends are
        listed by their log root, the last one winning)."""
        return {w.path: w.value for w in self.writes}

    def tensor(self, path):
        """The tensor a write at path set (a new_tensor), as a numpy array."""
        for w in reversed(self.writes):
            if w.path == path and w.op != OP_DELETE:
                return _tensor.array(_tensor.parse_descriptor(w.raw, _BIG))
        return None


def _encode(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray):
        return _tensor.inline_descriptor(v)
    return dumps(v)


def run(proc, state=None, args=None, attempt=1, version=1):
    """Runs proc once. state maps paths to values (JSON encoded, unless
    bytes, taken as JSON already; a numpy array becomes an inline tensor);
    only the paths its contract declares as inputs reach the process, as
    with the supervisor. args are JSON encoded likewise (None: none). A
    process error, bad args or a contract violation raises the Error of
    its code (theus.BadArgs, theus.ContractViolation, a Fail's code, ...).
    """
    if not isinstance(proc, Process):
        raise TypeError("theus.testing.run: %r is not a process (declare it with @theus.process)" % (proc,))
    raw_args = b"" if args is None else _encode(args)
    bound = proc.spec.bind(raw_args)  # BadArgs, as the supervisor answers
    inputs = []
    for p in sorted(state or {}):
        _contract.check_path(p)
        try:
            bound.check_read(p)
        except Error:
            continue
        inputs.append([p, _encode(state[p]), version])
    dp = [1, attempt, proc.name, version, inputs, raw_args, 0]
    dp = _round_trip(DISPATCH, dp)
    res = proc.run(dp)
    res = _round_trip(RESULT, res)
    err = check_error(res[3])
    if err is not None:
        raise err
    writes = []
    for path, op, value in res[1]:
        try:
            bound.check_write(path, op)
        except ContractViolation:
            raise
        except Error as e:
            raise ContractViolation(e.message, path) from None
        if op != OP_DELETE:
            try:
                json.loads(value)
            except ValueError:
                raise ProcessFailed("value is not JSON", path) from None
        writes.append(Write(path, op, value))
    if res[2]:
        try:
            json.loads(res[2])
        except ValueError:
            raise ProcessFailed("the result is not JSON") from None
    emits = []
    for topic, payload in res[6]:
        bound.check_emit(topic)
        emits.append((topic, json.loads(payload)))
    return Outcome(writes, res[2], res[4], emits)


def _round_trip(kind, body):
    data = frame(kind, body, _BIG)
    assert data[4] == kind
    return decode(data[5:])


__all__ = ["run", "Outcome", "Write"]
