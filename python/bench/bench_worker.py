#!/usr/bin/python3
"""The Python worker of scripts/bench-python.sh: py.noop, and
py.bench.sum, numpy.sum of a HEAVY tensor read in place."""

import time

import numpy as np

import theus


@theus.process("py.noop")
def noop(ctx):
    return None


@theus.process("py.bench.sum", inputs=["heavy.{key}"])
def bench_sum(ctx, key):
    a = ctx.tensor("heavy." + key)
    t = time.perf_counter()
    s = np.sum(a)
    return {"sum": float(s), "seconds": time.perf_counter() - t}


if __name__ == "__main__":
    theus.serve()
