"""Python's multiprocessing.shared_memory, the same handoff as tensor.peek:
a parent makes and fills an F32 tensor in shared memory; a worker process
(started once, like a theus worker) is handed its name, attaches, reads
one element and detaches. Also: the worker's sum over the whole tensor.

Usage: python3 shm_handoff.py BYTES [ROUNDS]   (prints one line of JSON)
"""
import json
import multiprocessing as mp
import sys
import time

import numpy as np
from multiprocessing import resource_tracker, shared_memory


def worker(conn):
    while True:
        msg = conn.recv()
        if msg is None:
            return
        name, n, op = msg
        shm = shared_memory.SharedMemory(name=name)
        # Python 3.8-3.12 registers an attached segment with the resource
        # tracker as if it were created here (bpo-38119): undo that.
        resource_tracker.unregister(shm._name, "shared_memory")
        a = np.ndarray((n,), dtype=np.float32, buffer=shm.buf)
        v = float(a[n - 1]) if op == "peek" else float(a.sum(dtype=np.float64))
        del a
        shm.close()
        conn.send(v)


def main():
    size = int(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    n = size // 4
    parent, child = mp.Pipe()
    p = mp.Process(target=worker, args=(child,))
    p.start()

    t = time.perf_counter()
    shm = shared_memory.SharedMemory(create=True, size=size)
    a = np.ndarray((n,), dtype=np.float32, buffer=shm.buf)
    a.fill(0.5)
    fill = time.perf_counter() - t

    def timed(op):
        best = float("inf")
        for _ in range(rounds if op == "peek" else 3):
            t = time.perf_counter()
            parent.send((shm.name, n, op))
            parent.recv()
            best = min(best, time.perf_counter() - t)
        return best

    small = shared_memory.SharedMemory(create=True, size=4096)
    np.ndarray((1024,), dtype=np.float32, buffer=small.buf).fill(0.5)
    t_small = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        parent.send((small.name, 1024, "peek"))
        parent.recv()
        t_small = min(t_small, time.perf_counter() - t)

    peek = timed("peek")
    summ = timed("sum")
    parent.send(None)
    p.join()
    del a
    for s in (shm, small):
        s.close()
        s.unlink()
    print(json.dumps({
        "bytes": size,
        "fill_ms": round(fill * 1e3, 1),
        "peek_us": round(peek * 1e6, 1),
        "peek_4KiB_us": round(t_small * 1e6, 1),
        "sum_GBps": round(size / summ / 1e9, 2),
    }))


if __name__ == "__main__":
    main()
