#!/usr/bin/python3
"""tensor is a theus worker plugin in Python that works on the HEAVY
zone with numpy, beside the Go demo worker's tensor.* processes:

    go build -o /tmp/theus/ ./cmd/theus-supervisor ./cmd/theus-worker ./cmd/theusctl
    PYTHONPATH=python /tmp/theus/theus-supervisor --heavy-size 1GiB \\
        --plugin /tmp/theus/theus-worker --plugin examples/py-tensor/tensor.py &
    theusctl exec tensor.fill --args '{"key":"w","n":1000000,"value":0.5}'        # Go writes heavy.w
    theusctl exec py.tensor.stats --args '{"key":"w"}'                            # numpy reads it in place
    theusctl exec py.tensor.affine --args '{"src":"w","dst":"v","scale":4,"shift":1}'  # numpy writes heavy.v
    theusctl exec tensor.sum --args '{"key":"v"}'                                 # Go sums it: 3000000

ctx.tensor gives a read-only numpy array over the shared memory (no
copy); ctx.new_tensor a writable one in this worker's own slab, committed
with the delta.
"""

import os
import sys

import numpy as np

try:
    import theus
except ImportError:  # run from a checkout: the SDK is python/ at its root
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
    import theus


@theus.process("py.tensor.stats", inputs=["heavy.{key}"])
def stats(ctx, key):
    """Sum, mean, min and max of the F32 tensor heavy.<key>, read in place."""
    a = ctx.tensor("heavy." + key)
    if a is None:
        raise theus.Fail("not_found", "no tensor at heavy." + key, "heavy." + key)
    return {"n": int(a.size), "sum": float(a.sum(dtype=np.float64)), "mean": float(a.mean(dtype=np.float64)) if a.size else None,
            "min": float(a.min()) if a.size else None, "max": float(a.max()) if a.size else None}


@theus.process("py.tensor.affine", inputs=["heavy.{src}"], outputs=["heavy.{dst}"])
def affine(ctx, src, dst, scale=1.0, shift=0.0):
    """heavy.<dst> = heavy.<src> * scale + shift, written in place into a
    new tensor of this worker's slab."""
    a = ctx.tensor("heavy." + src)
    if a is None:
        raise theus.Fail("not_found", "no tensor at heavy." + src, "heavy." + src)
    out = ctx.new_tensor("heavy." + dst, a.dtype, a.shape)
    np.multiply(a, a.dtype.type(scale), out=out)
    out += a.dtype.type(shift)
    return {"n": int(out.size)}


@theus.process("py.tensor.sum", inputs=["heavy.{key}"])
def tensor_sum(ctx, key):
    """numpy.sum of heavy.<key>, as numpy computes it in its own dtype."""
    a = ctx.tensor("heavy." + key)
    if a is None:
        raise theus.Fail("not_found", "no tensor at heavy." + key, "heavy." + key)
    return float(np.sum(a))


if __name__ == "__main__":
    theus.serve()
