"""Frames and message bodies of the theus wire protocol (docs/PROTOCOL.md).

A frame is a 4-byte big-endian length (of the kind byte and the body), a
kind byte and a msgpack body that is exactly one array (a tuple). Values,
args and results are JSON documents carried as msgpack bin.

The protocol version this SDK speaks is VERSION, its one constant: the
supervisor refuses a worker of another version (protocol_mismatch).
"""

import struct

import msgpack

from .errors import BadFrame, Error

MAGIC = "theus/1"
VERSION = 4  # protocol.Version of the Go side; a Hello of another is refused

DEFAULT_MAX_FRAME = 16 << 20  # the supervisor's default --max-frame

# Kinds (section 2 of docs/PROTOCOL.md).
HELLO, WELCOME, REFUSE, DISPATCH, RESULT, CANCEL, PING, PONG = 1, 2, 3, 4, 5, 6, 7, 8
EXECUTE, REPLY, GET, GETREPLY, STATUS, STATUSREPLY = 9, 10, 11, 12, 13, 14
ALLOC, GRANT, MAPPED, BACKUP, BACKUPREPLY = 15, 16, 17, 18, 19
CALL, CALLREPLY, SUBSCRIBE, EVENT, UNSUBSCRIBE = 20, 21, 22, 23, 24

# Write ops (contract.Op).
OP_SET, OP_DELETE, OP_APPEND = 1, 2, 3

MAX_READS = 65536  # protocol.MaxReads
MAX_EMITS = 65536  # protocol.MaxEmits

HEADER = struct.Struct(">IB")
_pack_header = HEADER.pack
_packb = msgpack.packb
_unpackb = msgpack.unpackb


class FrameTooLarge(Error):
    """A message that does not fit the frame limit; it was not sent."""

    def __init__(self, size, limit):
        Error.__init__(self, "bad_request", "a frame of %d bytes is over the limit of %d" % (size, limit))


def frame(kind, body, max_frame=DEFAULT_MAX_FRAME):
    """The bytes of one frame holding body (a list, the message tuple)."""
    data = _packb(body, use_bin_type=True)
    if len(data) + 1 > max_frame:
        raise FrameTooLarge(len(data) + 1, max_frame)
    return _pack_header(len(data) + 1, kind) + data


def decode(body):
    """The tuple of a body: one msgpack array, nothing after it. Strings
    must be UTF-8; anything else is a BadFrame."""
    try:
        v = _unpackb(body, raw=False, use_list=True, strict_map_key=True)
    except Exception as e:  # ExtraData, FormatError, UnicodeDecodeError, ...
        raise BadFrame("body: %s: %s" % (type(e).__name__, e)) from None
    if type(v) is not list:
        raise BadFrame("body is a %s, not an array" % type(v).__name__)
    return v


class FrameReader:
    """Reads frames from a stream socket through a 64 KiB buffer, so a
    burst of small frames costs one recv. Not safe for concurrent use:
    one reader at a time."""

    SIZE = 65536

    def __init__(self, sock, max_frame=DEFAULT_MAX_FRAME):
        self.sock = sock
        self.max_frame = max_frame
        self.buf = bytearray(self.SIZE)
        self.start = 0
        self.end = 0

    def _fill(self, need):
        """Reads until need bytes are buffered; False at end of file."""
        buf = self.buf
        if self.start and len(buf) - self.start < need:
            n = self.end - self.start
            buf[:n] = buf[self.start:self.end]
            self.start, self.end = 0, n
        if need > len(buf):
            buf.extend(bytes(need - len(buf)))
        with memoryview(buf) as mv:
            while self.end - self.start < need:
                n = self.sock.recv_into(mv[self.end:])
                if n == 0:
                    return False
                self.end += n
        return True

    def next(self):
        """The next frame as (kind, tuple); None at end of file between
        frames. A bad frame raises BadFrame; end of file inside a frame
        raises ConnectionResetError."""
        if self.end - self.start < 5 and not self._fill(5):
            if self.end != self.start:
                raise ConnectionResetError("end of file inside a frame header")
            return None
        length, kind = HEADER.unpack_from(self.buf, self.start)
        if length == 0:
            raise BadFrame("a frame of length 0")
        if length > self.max_frame:
            raise BadFrame("a frame of %d bytes, over the limit of %d" % (length, self.max_frame))
        total = 4 + length
        if self.end - self.start < total and not self._fill(total):
            raise ConnectionResetError("end of file inside a frame")
        s = self.start
        with memoryview(self.buf) as mv:
            body = decode(mv[s + 5:s + total])
        self.start = s + total
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.buf) > self.SIZE:
                self.buf = bytearray(self.SIZE)  # give a large frame's room back
        return kind, body


# --- checks of decoded tuples -------------------------------------------------

def check_tuple(v, n, name):
    if type(v) is not list or len(v) != n:
        raise BadFrame("%s: want a tuple of %d elements, got %s" % (name, n, _short(v)))
    return v


def check_uint(v, name, bits=64):
    if type(v) is not int or v < 0 or v >> bits:
        raise BadFrame("%s: not a uint%d: %s" % (name, bits, _short(v)))
    return v


def check_int(v, name):
    if type(v) is not int or not -(1 << 63) <= v < (1 << 63):
        raise BadFrame("%s: not an int64: %s" % (name, _short(v)))
    return v


def check_str(v, name):
    if type(v) is not str:
        raise BadFrame("%s: not a str: %s" % (name, _short(v)))
    return v


def check_bin(v, name):
    if type(v) is not bytes:
        raise BadFrame("%s: not a bin: %s" % (name, _short(v)))
    return v


def check_bool(v, name):
    if type(v) is not bool:
        raise BadFrame("%s: not a bool: %s" % (name, _short(v)))
    return v


def check_list(v, name):
    if type(v) is not list:
        raise BadFrame("%s: not an array: %s" % (name, _short(v)))
    return v


def check_error(v, name="Error"):
    """An `Error or nil` field: None, or the Error of the code."""
    if v is None:
        return None
    check_tuple(v, 3, name)
    check_str(v[0], name + ".Code")
    check_str(v[1], name + ".Message")
    check_str(v[2], name + ".Path")
    return Error.from_wire(v)


def check_entry(v, name="Entry"):
    """An Entry tuple [path, value, version], checked."""
    check_tuple(v, 3, name)
    check_str(v[0], name + ".Path")
    check_bin(v[1], name + ".Value")
    check_uint(v[2], name + ".Version")
    return v


def _short(v):
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."
