"""The three ratios of the Python SDK (docs/BENCHMARKS.md, "Python SDK"),
measured in one run against one supervisor (scripts/bench-python.sh
starts it):

1. noop p50 round trip through a Python worker (py.noop) over the same
   through a Go worker (noop), both called by the same Python client,
   sequentially, in interleaved rounds;
2. numpy.sum of an F32 tensor a Go worker wrote, in a Python worker
   (py.bench.sum, the whole call as the client sees it), against
   numpy.sum of an array of the same size in this process;
3. pipelined noop calls per second from the Python client (exec_many)
   over theus-bench's Go client at the same depth, and from the asyncio
   client (theus.aio) likewise.

Prints one JSON object.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import theus
import theus.aio


def p50(xs):
    return statistics.median(xs)


def noop_latency(c, rounds, n):
    lat = {"noop": [], "py.noop": []}
    for _ in range(rounds):
        for p in ("noop", "py.noop"):
            xs = lat[p]
            for _ in range(n):
                t = time.perf_counter()
                c.exec(p)
                xs.append(time.perf_counter() - t)
    go, py = p50(lat["noop"]) * 1e6, p50(lat["py.noop"]) * 1e6
    return {"go_worker_p50_us": round(go, 1), "py_worker_p50_us": round(py, 1),
            "go_worker_p99_us": round(np.percentile(lat["noop"], 99) * 1e6, 1),
            "py_worker_p99_us": round(np.percentile(lat["py.noop"], 99) * 1e6, 1),
            "ratio_py_over_go": round(py / go, 3), "calls_each": rounds * n}


def tensor_sum(c, nbytes, rounds):
    n = nbytes // 4
    c.exec("tensor.fill", {"key": "bench", "n": n, "value": 1.0}, timeout=600)
    local = np.ones(n, dtype=np.float32)  # the same values, in this process's own memory
    np.sum(local)  # touch every page once
    c.exec("py.bench.sum", {"key": "bench"}, timeout=600)  # and the worker's first read
    inproc, call, inside = [], [], []
    for _ in range(rounds):
        t = time.perf_counter()
        s_local = float(np.sum(local))
        inproc.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = c.exec("py.bench.sum", {"key": "bench"}, timeout=600).value
        call.append(time.perf_counter() - t)
        inside.append(r["seconds"])
        assert r["sum"] == s_local, (r, s_local)
    a, b, w = p50(inproc), p50(call), p50(inside)
    return {"bytes": n * 4, "inproc_numpy_sum_ms": round(a * 1e3, 2), "worker_call_ms": round(b * 1e3, 2),
            "worker_numpy_sum_ms": round(w * 1e3, 2), "inproc_GBps": round(n * 4 / a / 1e9, 2),
            "worker_call_GBps": round(n * 4 / b / 1e9, 2), "ratio_worker_over_inproc": round(a / b, 3),
            "rounds": rounds}


def go_pipelined(bench, socket, depth, requests, out):
    cmd = [bench, "--socket", socket, "--workload", "noop", "--clients", "1", "--depth", str(depth),
           "--requests", str(requests), "--duration", "0", "--out", out, "--name", "go-pipelined"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "go-pipelined.json")) as f:
        return json.load(f)["throughput_rps"]


def py_pipelined(c, depth, requests):
    t = time.perf_counter()
    rs = c.exec_many(["noop"] * requests, window=depth)
    dt = time.perf_counter() - t
    assert len(rs) == requests
    return requests / dt


def aio_pipelined(socket, depth, requests):
    async def run():
        async with await theus.aio.connect(socket) as c:
            t = time.perf_counter()
            rs = await c.exec_many(["noop"] * requests, window=depth)
            dt = time.perf_counter() - t
            assert len(rs) == requests
            return requests / dt
    return asyncio.run(run())


def pipelined(c, bench, socket, depth, requests, rounds):
    out = tempfile.mkdtemp(prefix="bench-py-")
    go, py, aio = [], [], []
    for _ in range(rounds):
        go.append(go_pipelined(bench, socket, depth, requests, out))
        py.append(py_pipelined(c, depth, requests))
        aio.append(aio_pipelined(socket, depth, requests))
    g, p, a = p50(go), p50(py), p50(aio)
    return {"depth": depth, "requests": requests, "go_client_rps": round(g), "py_client_rps": round(p),
            "ratio_py_over_go": round(p / g, 3), "aio_client_rps": round(a),
            "ratio_aio_over_go": round(a / g, 3), "rounds": rounds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--bench", required=True, help="theus-bench binary")
    ap.add_argument("--tensor-bytes", type=int, default=1 << 30)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with theus.Client(args.socket) as c:
        c.exec_many(["noop", "py.noop"] * 500)  # warm up both workers
        out = {"noop": noop_latency(c, args.rounds, 2000)}
        out["tensor_sum"] = tensor_sum(c, args.tensor_bytes, max(2 * args.rounds - 1, 5))
        out["pipelined"] = pipelined(c, args.bench, args.socket, 64, 50000, args.rounds)
    out["python"] = sys.version.split()[0]
    out["msgpack"] = ".".join(map(str, __import__("msgpack").version))
    out["numpy"] = np.__version__
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
