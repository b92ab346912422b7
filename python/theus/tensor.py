"""Tensor descriptors of the HEAVY zone and numpy arrays over them.

A HEAVY path holds a descriptor, a JSON object: {"slab","off","len","gen",
"dtype","shape","strides"} for a tensor in a slab, {"len","dtype","shape",
"data"} for a small one inline (docs/PROTOCOL.md, Tensors). numpy is
imported on first use: a worker that makes no tensors does not need it.
"""

import base64
import binascii
import json

from .errors import BadTensor

MAX_RANK = 8
MAX_DESCRIPTOR_JSON = 4096

# dtype name -> (numpy type name, element size). BF16 has no numpy type:
# its elements are their raw bits, uint16 (as the Go SDK gives them).
DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("uint16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}
_BY_NUMPY = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
             "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
_FIELDS = {"slab", "off", "len", "gen", "dtype", "shape", "strides", "data"}

_np = None


def numpy():
    """The numpy module, imported once."""
    global _np
    if _np is None:
        try:
            import numpy as np
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise ImportError("theus tensors need numpy (Debian: apt-get install python3-numpy): %s" % e) from None
        _np = np
    return _np


def dtype_name(dtype):
    """The theus dtype name ("F32", ...) of a name or a numpy dtype."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    np = numpy()
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError("dtype %r: want one of %s or a numpy dtype" % (dtype, ", ".join(DTYPES))) from None
    name = _BY_NUMPY.get(dt.name)
    if name is None or not dt.isnative:
        raise ValueError("numpy dtype %s has no theus dtype (want one of %s; BF16 by name)" % (dt, ", ".join(DTYPES)))
    return name


def np_dtype(name):
    return numpy().dtype(DTYPES[name][0])


def check_shape(shape):
    """The shape as a list of ints (an int is a 1-D shape), and its number
    of elements."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    try:
        shape = [int(s) for s in shape]
    except (TypeError, ValueError):
        raise ValueError("shape %r: want an int or a sequence of ints" % (shape,)) from None
    if len(shape) > MAX_RANK:
        raise ValueError("shape %r: rank %d over %d" % (shape, len(shape), MAX_RANK))
    n = 1
    for s in shape:
        if s < 0:
            raise ValueError("shape %r: negative dimension %d" % (shape, s))
        n *= s
    if n >= 1 << 62:
        raise ValueError("shape %r overflows" % (shape,))
    return shape, n


def _int(d, k, default=0):
    v = d.get(k, default)
    if type(v) is not int:
        raise BadTensor("descriptor field %s is not an integer: %r" % (k, v))
    return v


def parse_descriptor(raw, max_inline):
    """The descriptor in raw (JSON bytes) as a dict, checked as strictly
    as the supervisor checks it (no unknown field, a known dtype, a shape
    of at most 8 dimensions, inline data of exactly the shape's size)."""
    if len(raw) > MAX_DESCRIPTOR_JSON + max_inline * 4 // 3 + 8:
        raise BadTensor("descriptor: %d bytes of JSON" % len(raw))
    try:
        d = json.loads(raw)
    except ValueError as e:
        raise BadTensor("descriptor: %s" % e) from None
    if type(d) is not dict:
        raise BadTensor("descriptor: not a JSON object")
    unknown = set(d) - _FIELDS
    if unknown:
        raise BadTensor("descriptor: unknown field %s" % sorted(unknown)[0])
    dt = d.get("dtype")
    if dt not in DTYPES:
        raise BadTensor("descriptor: dtype %r" % (dt,))
    shape = d.get("shape")
    if type(shape) is not list or any(type(s) is not int for s in shape):
        raise BadTensor("descriptor: no shape")
    try:
        shape, n = check_shape(shape)
    except ValueError as e:
        raise BadTensor("descriptor: %s" % e) from None
    slab, off, length, gen = _int(d, "slab"), _int(d, "off"), _int(d, "len"), _int(d, "gen")
    if length < 0:
        raise BadTensor("descriptor: length %d" % length)
    strides = d.get("strides")
    if strides is not None and (type(strides) is not list or any(type(s) is not int or s < 0 for s in strides)
                                or len(strides) != len(shape)):
        raise BadTensor("descriptor: strides %r for shape %r" % (strides, shape))
    size = DTYPES[dt][1]
    out = {"slab": slab, "off": off, "len": length, "gen": gen, "dtype": dt, "shape": shape,
           "strides": strides}
    if slab:
        if "data" in d:
            raise BadTensor("descriptor: inline data in an arena descriptor")
        if off <= 0 or gen == 0:
            raise BadTensor("descriptor: arena descriptor without offset or generation")
        if strides is None and n * size > length:
            raise BadTensor("descriptor: shape %r of %s needs %d bytes, descriptor says %d" % (shape, dt, n * size, length))
        if strides is not None and n:
            last = sum((s - 1) * st for s, st in zip(shape, strides))
            if (last + 1) * size > length:
                raise BadTensor("descriptor: strides %r reach element %d of %d" % (strides, last, length // size))
        return out
    if off or gen or strides is not None:
        raise BadTensor("descriptor: an inline tensor has no offset, generation or strides")
    data = d.get("data", "")
    if type(data) is not str:
        raise BadTensor("descriptor: data is not a string")
    try:
        b = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadTensor("descriptor: data: %s" % e) from None
    if len(b) > max_inline:
        raise BadTensor("descriptor: %d inline bytes, over %d" % (len(b), max_inline))
    if n * size != len(b) or length != len(b):
        raise BadTensor("descriptor: shape %r of %s needs %d bytes; %d inline, length %d" % (shape, dt, n * size, len(b), length))
    out["data"] = b
    return out


def array(desc, buffer=None, writable=False):
    """A numpy array over a parsed descriptor: over its inline bytes, or
    over buffer (the slab's mapping) at its offset. No copy."""
    np = numpy()
    dt = np_dtype(desc["dtype"])
    shape = desc["shape"]
    strides = desc["strides"]
    if strides is not None:
        strides = [s * dt.itemsize for s in strides]
    if desc["slab"] == 0:
        a = np.ndarray(shape, dt, buffer=desc["data"])
    else:
        a = np.ndarray(shape, dt, buffer=buffer, offset=desc["off"], strides=strides)
    if not writable:
        a.flags.writeable = False
    return a


def inline_descriptor(arr, name=None):
    """The JSON bytes of an inline descriptor holding arr's bytes (name:
    the dtype, when arr's numpy dtype does not say it: BF16)."""
    name = name or dtype_name(arr.dtype)
    data = numpy().ascontiguousarray(arr).tobytes()
    return json.dumps({"len": len(data), "dtype": name, "shape": list(arr.shape),
                       "data": base64.b64encode(data).decode()}, separators=(",", ":")).encode()


def arena_descriptor(slab, off, gen, arr, name=None):
    """The JSON bytes of the descriptor of arr, a C-order block at off in slab."""
    return json.dumps({"slab": slab, "off": off, "len": arr.nbytes, "gen": gen,
                       "dtype": name or dtype_name(arr.dtype), "shape": list(arr.shape)},
                      separators=(",", ":")).encode()
