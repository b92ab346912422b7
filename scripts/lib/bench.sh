# Helpers for the load-test scripts (sourced, not run).

# build_bench DIR: builds cmd/theus-bench into DIR and sets $bench.
build_bench() {
  mkdir -p "$1"
  go build -o "$1/theus-bench" ./cmd/theus-bench
  bench="$1/theus-bench"
}

# apt_install PKG...: installs the Debian packages that are missing (as
# root, or with sudo when there is one).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} with apt-get" >&2
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_redis DIR PORT: a Redis on loopback, no persistence, stopped by
# stop_peers through its pid.
start_redis() {
  mkdir -p "$1"
  redis-server --port "$2" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$1/redis.pid" --logfile "$1/redis.log" --dir "$1"
  for _ in $(seq 50); do
    port_open "$2" && return 0
    sleep 0.1
  done
  echo "redis did not start: see $1/redis.log" >&2
  return 1
}

# start_etcd DIR CLIENT_PORT PEER_PORT: a one-member etcd on loopback,
# data under DIR (on disk: it fsyncs every commit, as theus does in sync
# mode), stopped by stop_peers through its pid.
start_etcd() {
  mkdir -p "$1"
  etcd --name bench --data-dir "$1/data" --listen-client-urls "http://127.0.0.1:$2" \
    --advertise-client-urls "http://127.0.0.1:$2" --listen-peer-urls "http://127.0.0.1:$3" \
    --initial-advertise-peer-urls "http://127.0.0.1:$3" --initial-cluster "bench=http://127.0.0.1:$3" \
    --log-level error >"$1/etcd.log" 2>&1 &
  echo $! >"$1/etcd.pid"
  for _ in $(seq 100); do
    port_open "$2" && return 0
    sleep 0.1
  done
  echo "etcd did not start: see $1/etcd.log" >&2
  return 1
}

# stop_peers DIR...: stops every peer whose pid file is under DIR.
stop_peers() {
  for d in "$@"; do
    for f in "$d"/*/*.pid; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
  done
}

# mem_available_gib: the memory the kernel says is available, in GiB.
mem_available_gib() { awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo; }

# awk_median is an awk function for the scripts' programs (prepend it):
# median(a, k) is the median of a[1..k], which it sorts in place.
# shellcheck disable=SC2034 # used by the scripts that source this file
awk_median='function median(a, k,   i, j, t) {
  for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
  return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
'

# host_times: the machine's CPU times from /proc/stat's cpu line, as
# "busy idle steal" (clock ticks); pass two readings to host_share.
host_times() {
  # %.0f: mawk prints a number past 2^31 as 2.2e+09 with print
  awk '$1 == "cpu" { printf "%.0f %.0f %.0f\n", $2 + $3 + $4 + $7 + $8, $5 + $6, $9; exit }' /proc/stat
}

# host_share "BEFORE" "AFTER": the shares of the CPUs' time between two
# host_times readings, busy, idle and stolen by the hypervisor (a
# virtual machine's vCPU that was ready to run and did not): with steal
# the machine was shared, and its speed was the neighbours' as much as
# ours (docs/BENCHMARKS.md, "Stolen time").
host_share() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    busy = y[1] - x[1]; idle = y[2] - x[2]; steal = y[3] - x[3]; t = busy + idle + steal
    if (t <= 0) { print "host CPU: unknown"; exit }
    printf "host CPU over the run: busy %.0f%%, idle %.0f%%, steal %.0f%%\n", 100 * busy / t, 100 * idle / t, 100 * steal / t
  }'
}

# await_socket SOCK PID LOG [TENTHS]: waits up to TENTHS tenths of a
# second (default 600) for the supervisor PID to make its socket SOCK;
# if the supervisor exits first, prints its LOG and fails.
await_socket() {
  for _ in $(seq "${4:-600}"); do
    [ -S "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; return 1; }
    sleep 0.1
  done
}
