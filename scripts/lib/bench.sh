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
