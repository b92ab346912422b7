"""Paths, zones and contracts, with the rules of the Go package contract.

The supervisor checks every Result against the contract again; these
checks give a process its error at the line that broke the rule, and give
theus.testing the supervisor's verdict without a supervisor.
"""

import json
import re

from .errors import BadArgs, ContractViolation, ProcessFailed

MAX_PATH_LEN = 256
MAX_PATH_DEPTH = 32
MAX_ARG_SEGMENT = 128
MAX_TOPIC_LEN = 128

DATA, HEAVY, SIGNAL, META, LOG, CONST, PRIVATE = "DATA", "HEAVY", "SIGNAL", "META", "LOG", "CONST", "PRIVATE"

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")
_ARG_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")

# The rules a violation names (the sentinels of contract/errors.go).
UNDECLARED_READ = "contract: read of an undeclared path"
UNDECLARED_WRITE = "contract: write of an undeclared path"
CONST_WRITE = "contract: write of a CONST path"
PRIVATE_READ = "contract: read of a PRIVATE path"
PRIVATE_WRITE = "contract: write of a PRIVATE path (the supervisor's own records live there)"
LOG_NOT_APPEND = "contract: LOG paths only accept appends"
APPEND_NOT_LOG = "contract: append outside the root of a LOG"
SIGNAL_IN_PURE = "contract: PURE process reads a SIGNAL path"
EMIT_IN_PURE = "contract: PURE process emits an outbox message"


class InvalidPath(ProcessFailed):
    """A path that is not [A-Za-z0-9_-]+ segments joined by dots, at most
    256 bytes and 32 segments. In a process it fails the call with
    process_failed, as in the Go SDK."""

    def __init__(self, path, reason):
        shown = path if len(path) <= MAX_PATH_LEN + 16 else path[:MAX_PATH_LEN + 16] + "..."
        ProcessFailed.__init__(self, "contract: invalid path %s: %s" % (json.dumps(shown), reason))
        self.reason = reason


def check_path(s):
    """Raises InvalidPath unless s is a valid path."""
    if type(s) is not str:
        raise InvalidPath(repr(s), "a path is a str")
    if not s:
        raise InvalidPath(s, "empty")
    if len(s.encode()) > MAX_PATH_LEN:
        raise InvalidPath(s, "longer than %d bytes" % MAX_PATH_LEN)
    segs = s.split(".")
    for i, seg in enumerate(segs):
        if not seg:
            where = "empty last segment" if i == len(segs) - 1 else "empty segment"
            raise InvalidPath(s, where)
        if not _SEGMENT.match(seg):
            bad = next(c for c in seg if not _SEGMENT.match(c))
            raise InvalidPath(s, "%r is not allowed; segments allow only [A-Za-z0-9_-]" % bad)
    if len(segs) > MAX_PATH_DEPTH:
        raise InvalidPath(s, "deeper than %d segments" % MAX_PATH_DEPTH)
    return s


def segment_zone(seg):
    """The zone a single segment names, or DATA."""
    if seg == "heavy" or seg.startswith("heavy_"):
        return HEAVY
    if seg.startswith(("sig_", "cmd_")):
        return SIGNAL
    if seg.startswith("meta_"):
        return META
    if seg.startswith("log_"):
        return LOG
    if seg.startswith("const_"):
        return CONST
    if seg.startswith("internal_"):
        return PRIVATE
    return DATA


def zone_root(p, zone):
    """The prefix of p that ends at its outermost segment of zone, or None."""
    segs = p.split(".")
    for i, seg in enumerate(segs):
        if segment_zone(seg) == zone:
            return ".".join(segs[:i + 1])
    return None


def in_zone(p, zone):
    return zone_root(p, zone) is not None


def covers(root, q):
    """q lies in the subtree rooted at root."""
    return q == root or (q.startswith(root) and q[len(root)] == ".")


class Contract:
    """A bound contract: the paths a call may read and write."""

    __slots__ = ("name", "inputs", "outputs", "semantic")

    def __init__(self, name, inputs, outputs, semantic):
        self.name, self.inputs, self.outputs, self.semantic = name, inputs, outputs, semantic
        for p in inputs:
            check_path(p)
            if in_zone(p, PRIVATE):
                raise self.violation(p, PRIVATE_READ)
            if semantic == "pure" and in_zone(p, SIGNAL):
                raise self.violation(p, SIGNAL_IN_PURE)
        for p in outputs:
            check_path(p)
            if in_zone(p, CONST):
                raise self.violation(p, CONST_WRITE)
            if in_zone(p, PRIVATE):
                raise self.violation(p, PRIVATE_WRITE)

    def violation(self, p, rule):
        return ContractViolation("%s: %s (process %s)" % (rule, p, self.name), p)

    def check_read(self, p):
        """Raises InvalidPath or ContractViolation unless p may be read."""
        check_path(p)
        if in_zone(p, PRIVATE):
            raise self.violation(p, PRIVATE_READ)
        if self.semantic == "pure" and in_zone(p, SIGNAL):
            raise self.violation(p, SIGNAL_IN_PURE)
        if not any(covers(d, p) for d in self.inputs):
            raise self.violation(p, UNDECLARED_READ)

    def check_write(self, p, op):
        """Raises InvalidPath or ContractViolation unless op (1 set, 2
        delete, 3 append) may be applied to p."""
        check_path(p)
        if op not in (1, 2, 3):
            raise ProcessFailed("contract: invalid contract: %s: unknown write kind %r" % (p, op))
        if in_zone(p, CONST):
            raise self.violation(p, CONST_WRITE)
        if in_zone(p, PRIVATE):
            raise self.violation(p, PRIVATE_WRITE)
        root = zone_root(p, LOG)
        if op != 3 and root is not None:
            raise self.violation(p, LOG_NOT_APPEND)
        if op == 3 and root != p:
            raise self.violation(p, APPEND_NOT_LOG)
        if not any(covers(d, p) for d in self.outputs):
            raise self.violation(p, UNDECLARED_WRITE)

    def check_emit(self, topic):
        """Raises ProcessFailed for a bad topic, ContractViolation from a
        pure process."""
        check_topic(topic)
        if self.semantic == "pure":
            raise self.violation(topic, EMIT_IN_PURE)


def check_topic(topic):
    """An outbox topic: one DATA-zone path segment of at most 128 bytes."""
    def bad(why):
        return ProcessFailed("contract: invalid outbox topic %s: %s" % (json.dumps(topic), why))
    if type(topic) is not str:
        raise bad("a topic is a str")
    if len(topic.encode()) > MAX_TOPIC_LEN:
        raise bad("longer than %d bytes" % MAX_TOPIC_LEN)
    if "." in topic:
        raise bad("a topic is one path segment, without dots")
    try:
        check_path(topic)
    except InvalidPath as e:
        raise bad(e.reason) from None
    z = segment_zone(topic)
    if z != DATA:
        raise bad("names the %s zone; a topic is a DATA-zone segment" % z)


def _parse_template(seg):
    """(name, optional) for a {name} or {name?} segment, None for a plain
    one; ValueError for a malformed template."""
    if not seg.startswith("{"):
        return None
    if not seg.endswith("}"):
        raise ValueError("segment %r: a template is {name} or {name?}" % seg)
    inner = seg[1:-1]
    optional = inner.endswith("?")
    if optional:
        inner = inner[:-1]
    if not inner:
        raise ValueError("segment %r: a template needs an arg name" % seg)
    if not _ARG_NAME.match(inner):
        raise ValueError("segment %r: an arg name is [a-z_][a-z0-9_]*" % seg)
    return inner, optional


def _plain_segment(v):
    if len(v.encode()) > MAX_ARG_SEGMENT:
        return "%d bytes, over %d" % (len(v.encode()), MAX_ARG_SEGMENT)
    if "." in v:
        return "%r has a dot: it names one segment" % v
    try:
        check_path(v)
    except InvalidPath as e:
        return e.reason
    z = segment_zone(v)
    if z != DATA:
        return "%r names the %s zone" % (v, z)
    return None


class Spec:
    """A process's declared contract, templates included. Bind makes the
    contract of one call from its args."""

    def __init__(self, name, inputs, outputs, semantic="pure"):
        if semantic not in ("pure", "effect"):
            raise ValueError("process %s: semantic %r: want \"pure\" or \"effect\"" % (name, semantic))
        self.name, self.semantic = name, semantic
        self.inputs, self.outputs = list(inputs), list(outputs)
        templated = False
        for p in self.inputs + self.outputs:
            if type(p) is not str:
                raise ValueError("process %s: path %r is not a str" % (name, p))
            for i, seg in enumerate(p.split(".")):
                try:
                    t = _parse_template(seg)
                    if t is not None and i == 0:
                        raise ValueError("the first segment names the layer: it cannot be a template")
                except ValueError as e:
                    raise ValueError("contract: invalid contract: %s: %s: %s" % (name, p, e)) from None
                templated = templated or t is not None
        self.templated = templated
        try:
            if templated:
                self._bind(lambda t: ("x", True))  # the shape, each template one segment
                self.fixed = None
            else:
                self.fixed = Contract(name, self.inputs, self.outputs, semantic)
        except (InvalidPath, ContractViolation) as e:
            raise ValueError("contract: invalid contract: %s: %s" % (name, e.message)) from None

    def bind(self, args):
        """The contract of a call with these args (the JSON bytes, empty
        for none). Raises BadArgs when a template cannot be bound."""
        if self.fixed is not None:
            return self.fixed
        fields = {}
        if args and args.strip() != b"null":
            try:
                fields = json.loads(args)
            except (ValueError, RecursionError) as e:
                raise BadArgs("contract: bad argument for a templated path: %s: args are not a JSON object: %s" % (self.name, e)) from None
            if type(fields) is not dict:
                raise BadArgs("contract: bad argument for a templated path: %s: args are not a JSON object" % self.name)

        def val(t):
            name, optional = t
            v = fields.get(name)
            if v is not None and type(v) is not str:
                raise BadArgs("contract: bad argument for a templated path: %s: arg %r names a path segment: want a string" % (self.name, name))
            if not v:
                if optional:
                    return "", False
                raise BadArgs("contract: bad argument for a templated path: %s: arg %r is needed: it names a path segment" % (self.name, name))
            why = _plain_segment(v)
            if why:
                raise BadArgs("contract: bad argument for a templated path: %s: arg %r: %s" % (self.name, name, why))
            return v, True
        try:
            return self._bind(val)
        except InvalidPath as e:
            raise BadArgs("contract: bad argument for a templated path: %s: %s" % (self.name, e.message)) from None

    def _bind(self, val):
        def paths(decl):
            out = []
            for d in decl:
                if "{" in d:
                    segs = d.split(".")
                    keep = True
                    for i, seg in enumerate(segs):
                        t = _parse_template(seg)
                        if t is None:
                            continue
                        v, keep = val(t)
                        if not keep:
                            break
                        segs[i] = v
                    if not keep:
                        continue
                    d = ".".join(segs)
                out.append(d)
            return out
        return Contract(self.name, paths(self.inputs), paths(self.outputs), self.semantic)
