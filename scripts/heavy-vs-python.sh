#!/usr/bin/env bash
# The HEAVY zone beside Python's multiprocessing.shared_memory (Debian's
# python3-numpy), on this machine, in one run: handing a 1 GiB F32 tensor
# to a worker process that reads one element, and that worker summing it.
# Installs python3-numpy with apt-get when it is missing (needs root).
# Usage: scripts/heavy-vs-python.sh [bytes]   (default 1073741824)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
py=/usr/bin/python3
if ! "$py" -c 'import numpy' 2>/dev/null; then
  apt-get install -y python3-numpy >/dev/null
fi
pyout=$("$py" scripts/peers/shm_handoff.py "$size" 20)
goout=$(THEUS_BENCH_TENSOR=$size go test ./supervisor -run '^$' -bench 'HeavyHandoff|HeavySum' -benchtime 20x -count 1 | grep '^Benchmark')
echo "$goout"
echo "python: $pyout"
echo
PY="$pyout" GO="$goout" "$py" - <<'PYEOF'
import json, os, re
py = json.loads(os.environ["PY"])
go = {}
for line in os.environ["GO"].splitlines():
    f = line.split()
    for v, unit in zip(f[2::2], f[3::2]):
        go[unit] = float(v)
rows = [
    ("peek one element of the big tensor, from another process (us)", py["peek_us"], go["peek-1GiB-µs"], go["dispatch-peek-1GiB-µs"]),
    ("peek one element of a 4 KiB tensor (us)", py["peek_4KiB_us"], go["peek-4KiB-µs"], None),
    ("sum of the big tensor in the other process (GB/s)", py["sum_GBps"], go["sum-GB/s"], None),
]
print("%-64s %10s %14s %14s" % ("", "python", "theus client", "theus dispatch"))
for name, p, c, d in rows:
    print("%-64s %10.1f %14.1f %14s" % (name, p, c, "%.1f" % d if d else "-"))
print("\npython attaches by name (shm_open + mmap) and faults pages in as it reads;")
print("theus workers map every slab once, pre-faulted, and read in place.")
PYEOF
