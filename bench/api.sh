#!/usr/bin/env bash
# The dashboard's slowest questions: a day's top dropped sources, top dropped ports and that
# day's timeline, on a SQLite store of N packets (default 10 000 000) spread evenly over 10
# days, asked over nflogd's HTTP API (which reads the store's running totals, store/rollup.rs),
# against the plain GROUP BY over the rows run by the sqlite3 shell on the same file (what a
# store without them costs). Five answers each, the median printed, and the ratio.
#
# 30 % of the packets come from 20 loud scanners, the rest from SOURCES quiet addresses (default
# 20 000; 200 000 is a distributed scan, the worst case for a top of sources).
#
# usage: bench/api.sh [ROWS [SOURCES]]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
SOURCES=${2:-20000}
DAYS=10
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/nflogd
DIR=$(mktemp -d /var/tmp/nflogd-api.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT INT TERM

# The store as nflogd makes it (its schema and indexes), filled by SQLite itself: a firewall's
# mix of a few loud scanners and many quiet sources, mostly drops, in time order.
END=$(date -u -d 'today 00:00' +%s)
START=$((END - DAYS * 86400))
echo "filling $DIR/n.db with $N packets over $DAYS days…" >&2
# The schema is marked as version 3 (before the running totals): nflogd counts the rows into
# them at its start, as it does when it upgrades a store.
"$BIN" schema sqlite | sed 's/^INSERT INTO nflogd_schema VALUES ([0-9]*,/INSERT INTO nflogd_schema VALUES (3,/' | sqlite3 "$DIR/n.db"
sqlite3 "$DIR/n.db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO packets (time, host, family, hook, nflog_group, prefix, action, in_iface, src_ip, dst_ip,
                     protocol, src_port, dst_port, length, ttl)
SELECT strftime('%Y-%m-%dT%H:%M:%f', $START + i * ($DAYS * 86400.0 / $N), 'unixepoch') || '000Z',
       'gw', 'ipv4', 'input', 1,
       CASE WHEN r % 10 < 8 THEN 'DROP ' ELSE 'ACCEPT ' END,
       CASE WHEN r % 10 < 6 THEN 'drop' WHEN r % 10 < 8 THEN 'reject' ELSE 'accept' END,
       'eth0',
       CASE WHEN r % 100 < 30 THEN '203.0.113.' || (r / 100 % 20)
            ELSE '198.' || (18 + r / 7 % $SOURCES / 65536) || '.' || (r / 7 % $SOURCES / 256 % 256) || '.' || (r / 7 % $SOURCES % 256) END,
       '192.0.2.1', 6, 1024 + r / 3 % 60000,
       CASE r / 11 % 8 WHEN 0 THEN 22 WHEN 1 THEN 23 WHEN 2 THEN 80 WHEN 3 THEN 443
                       WHEN 4 THEN 3389 ELSE 1 + r / 19 % 1024 END,
       60, 50
FROM (SELECT i, abs(random()) AS r FROM n);
SQL
ls -l "$DIR/n.db" >&2

touch "$DIR/empty.log"
PORT=19377
cat >"$DIR/c.toml" <<CONF
stats_interval = "0s"
http_address = "127.0.0.1:$PORT"
[sources.none]
type = "file"
path = "$DIR/empty.log"
state_file = "$DIR/pos"
[sinks.store]
type = "sqlite"
inputs = ["none"]
path = "$DIR/n.db"
retention = "3650d"
max_size = "10000GiB"
CONF
"$BIN" run --config "$DIR/c.toml" 2>"$DIR/log" & PID=$!
# Ready once the store is open (and its totals counted): "nflogd running".
started=$(date +%s.%N)
until grep -q "nflogd running" "$DIR/log"; do
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/log"; exit 1; }
  sleep 0.1
done
awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "start with the schema upgrade (totals counted from the rows): %.1f s\n", e-s}'
curl -sf "http://127.0.0.1:$PORT/api/status" >/dev/null

# The last whole day of the store.
DAY_FROM=$(date -u -d "@$((END - 86400))" +%Y-%m-%dT%H:%M:%SZ)
DAY_TO=$(date -u -d "@$END" +%Y-%m-%dT%H:%M:%SZ)
median() { sort -n | sed -n 3p; }
api() { # path → median seconds of 5 answers
  for _ in 1 2 3 4 5; do curl -sf -o "$DIR/answer.json" -w '%{time_total}\n' "http://127.0.0.1:$PORT/api/$1"; done | median
}
shell() { # SQL → median seconds of 5 runs of the sqlite3 shell (start-up included, as the API's connection is)
  for _ in 1 2 3 4 5; do
    s=$(date +%s.%N); sqlite3 "$DIR/n.db" "$1" >"$DIR/shell.out"; e=$(date +%s.%N)
    echo "$s $e" | awk '{printf "%.6f\n", $2 - $1}'
  done | median
}
TOP_API=$(api "top/sources?since=$DAY_FROM&until=$DAY_TO&action=drop,reject&limit=10")
head -c 300 "$DIR/answer.json"; echo
TOP_SQL=$(shell "SELECT src_ip, count(*) AS packets FROM packets WHERE time >= '${DAY_FROM/Z/.000000Z}' AND time < '${DAY_TO/Z/.000000Z}' AND action IN ('drop', 'reject') GROUP BY src_ip ORDER BY packets DESC, src_ip LIMIT 10")
head -3 "$DIR/shell.out"
PORTS_API=$(api "top/dropped-ports?since=$DAY_FROM&until=$DAY_TO&limit=10")
PORTS_SQL=$(shell "SELECT protocol, dst_port, count(*) AS packets FROM packets WHERE time >= '${DAY_FROM/Z/.000000Z}' AND time < '${DAY_TO/Z/.000000Z}' AND action IN ('drop', 'reject') GROUP BY 1, 2 ORDER BY packets DESC, 1, 2 LIMIT 10")
# A day's window that is not a calendar day (the dashboard's "24 hours"): noon to noon.
NOON_FROM=$(date -u -d "@$((END - 86400 - 43200))" +%Y-%m-%dT%H:%M:%SZ)
NOON_TO=$(date -u -d "@$((END - 43200))" +%Y-%m-%dT%H:%M:%SZ)
ROLL_API=$(api "top/sources?since=$NOON_FROM&until=$NOON_TO&action=drop,reject&limit=10")
ROLL_SQL=$(shell "SELECT src_ip, count(*) AS packets FROM packets WHERE time >= '${NOON_FROM/Z/.000000Z}' AND time < '${NOON_TO/Z/.000000Z}' AND action IN ('drop', 'reject') GROUP BY src_ip ORDER BY packets DESC, src_ip LIMIT 10")
TL_API=$(api "timeline?since=$DAY_FROM&until=$DAY_TO")
TL_SQL=$(shell "SELECT substr(time, 1, 15), coalesce(action, ''), count(*) FROM packets WHERE time >= '${DAY_FROM/Z/.000000Z}' AND time < '${DAY_TO/Z/.000000Z}' GROUP BY 1, 2 ORDER BY 1, 2")
ROWS_DAY=$(sqlite3 "$DIR/n.db" "SELECT count(*) FROM packets WHERE time >= '${DAY_FROM/Z/.000000Z}' AND time < '${DAY_TO/Z/.000000Z}'")
SRC_DAY=$(sqlite3 "$DIR/n.db" "SELECT count(DISTINCT src_ip) FROM packets WHERE time >= '${DAY_FROM/Z/.000000Z}' AND time < '${DAY_TO/Z/.000000Z}'")
printf '\n%s packets in the store, %s in the day asked about (%s), from %s sources\n' "$N" "$ROWS_DAY" "$DAY_FROM" "$SRC_DAY"
printf '%-34s %12s %14s %8s\n' question "nflogd API" "GROUP BY rows" ratio
awk -v a="$TOP_API" -v s="$TOP_SQL" 'BEGIN{printf "%-34s %9.0f ms %11.0f ms %8.2f\n", "top 10 dropped sources of a day", a*1000, s*1000, a/s}'
awk -v a="$ROLL_API" -v s="$ROLL_SQL" 'BEGIN{printf "%-34s %9.0f ms %11.0f ms %8.2f\n", "top 10 dropped sources, noon to noon", a*1000, s*1000, a/s}'
awk -v a="$PORTS_API" -v s="$PORTS_SQL" 'BEGIN{printf "%-34s %9.0f ms %11.0f ms %8.2f\n", "top 10 dropped ports of a day", a*1000, s*1000, a/s}'
awk -v a="$TL_API" -v s="$TL_SQL" 'BEGIN{printf "%-34s %9.0f ms %11.0f ms %8.2f\n", "that day in 10-minute buckets", a*1000, s*1000, a/s}'
