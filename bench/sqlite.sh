#!/usr/bin/env bash
# What nflogd's SQLite store takes when it is the bottleneck: a backlog of N kernel LOG lines of
# a firewall's diversity (bench/corpus.py: many addresses, ports, interfaces, prefixes), read
# from the start of a file and stored in the default sink's shape. Prints rows/s over the whole
# run (the parse runs on the other core) for three runs and their median. The side-by-side
# comparison with ulogd2's SQLITE3 plugin, on NFLOG packets, is in bench/store.sh: ulogd2 has
# no way to read lines.
#
# usage: bench/sqlite.sh [LINES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/nflogd
DIR=$(mktemp -d /var/tmp/nflogd-sqlite.XXXXXX)
trap 'rm -rf "$DIR"' EXIT INT TERM
python3 bench/corpus.py "$N" >"$DIR/kern.log"
for run in 1 2 3; do
  rm -f "$DIR"/n.db* "$DIR/pos"
  cat >"$DIR/c.toml" <<CONF
stats_interval = "0s"
[sources.k]
type = "file"
path = "$DIR/kern.log"
start = "beginning"
state_file = "$DIR/pos"
[sinks.store]
type = "sqlite"
inputs = ["k"]
path = "$DIR/n.db"
spool.dir = "$DIR/spool"
CONF
  sync
  start=$(date +%s.%N)
  "$BIN" run --config "$DIR/c.toml" 2>"$DIR/log" & pid=$!
  # Done when the position file names the end of the input and every row is in.
  while :; do
    rows=$(sqlite3 -cmd ".timeout 2000" "$DIR/n.db" "SELECT count(*) FROM packets" 2>/dev/null || echo 0)
    [ "$rows" -ge "$N" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$DIR/log"; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v n="$N" -v s="$start" -v e="$end" -v r="$run" 'BEGIN{printf "run %d: %d rows in %.2f s, %.0f rows/s\n", r, n, e-s, n/(e-s)}'
done | tee "$DIR/runs"
sort -t, -k1 "$DIR/runs" | awk '{print $(NF-1)}' | sort -n | sed -n 2p | awk '{printf "median: %.0f rows/s\n", $1}'
