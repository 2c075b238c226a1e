#!/usr/bin/env bash
# NFLOG → databases. First PostgreSQL: Debian's ulogd2 PGSQL plugin (NFLOG→BASE→IFINDEX→IP2STR→HWHDR→PGSQL with
# procedure INSERT_PACKET_FULL into its shipped pgsql-ulogd2.sql schema, as its example pgsql1)
# and nflogd's postgres sink (binary COPY into its own tables) on the same packets: one nft
# rule logs each packet to two groups, one per daemon, and each daemon in turn, alone on the
# machine, writes into its own database of one PostgreSQL server started here (fsync on) on
# the loopback of the daemons' namespace.
# Then SQLite: ulogd2's SQLITE3 plugin (the same stack, into a table of the same columns as
# nflogd's `packets`, indexed by time as nflogd's is, a transaction per 1000 rows) and nflogd's
# sqlite sink, each in turn. Then nflogd alone into ClickHouse (Debian's 18.16, started here too).
# Offered each time: COUNT UDP packets at RATE per second. For each run it prints the rows
# stored, the packets lost, and rows per second from the first row to the last; then nflogd's
# PostgreSQL rate against ulogd2's.
#
# usage: sudo bench/store.sh [RATE [COUNT]]   (default 200000 pps, 600000 packets)
# Traffic stays between two namespaces this script creates (10.203.0.0/24) and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RATE=${1:-200000}
COUNT=${2:-600000}
bench_begin nflpgb
chmod 755 "$DIR" # the server runs as postgres
PORT=$((20000 + $$ % 10000))
bench_cleanup() {
  pg_down "$DIR/pg"
  ch_down "$DIR/ch"
}
# Say why, when a daemon wrote nothing.
logs() { tail -5 "$DIR/ulogd.log" "$DIR"/*.toml.log 2>/dev/null || true; }
veth_pair "$A" "$B" 10.203.0
pg_up "$DIR/pg" "$PORT" "$B"
PSQL=(ip netns exec "$B" psql -X -q -At -h 127.0.0.1 -p "$PORT" -U postgres)
"${PSQL[@]}" -c "CREATE DATABASE ulogd" -c "CREATE DATABASE nflogd"
zcat /usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz | "${PSQL[@]}" -d ulogd >/dev/null 2>&1
ch_up "$DIR/ch" $((PORT + 1)) "$B"
ip netns exec "$B" nft -f - <<NFT
table inet bench {
  chain in {
    type filter hook input priority 0; policy drop;
    iifname "lo" accept
    udp dport 9000 counter log prefix "IPTABLES: DROP " group 31 log prefix "IPTABLES: DROP " group 32
  }
}
NFT
ip netns exec "$A" ping -c1 -W1 10.203.0.2 >/dev/null 2>&1 || true

{
  ulogd_nflog_conf PGSQL 32
  cat <<CONF
[pgsql1]
db="ulogd"
host="127.0.0.1"
port=$PORT
user="postgres"
pass=""
table="ulog"
procedure="INSERT_PACKET_FULL"
CONF
} >"$DIR/ulogd.conf"
# nflogd with one store sink: $1 is its type and settings.
nflogd_conf() {
  printf 'stats_interval = "0s"\n[sources.fw]\ntype = "nflog"\ngroups = [31]\n[sinks.db]\ninputs = ["fw"]\n%s\n' "$1"
}
nflogd_conf "type = \"postgres\"
url = \"host=127.0.0.1 port=$PORT user=postgres dbname=nflogd sslmode=disable\"
spool.dir = \"$DIR/spool-pg\"" >"$DIR/pg.toml"
nflogd_conf "type = \"sqlite\"
path = \"$DIR/nflogd.db\"
spool.dir = \"$DIR/spool-lite\"" >"$DIR/sqlite.toml"
# ulogd2's SQLITE3 output takes the columns the table has, by key name (ip_saddr_str is the key
# ip.saddr.str).
sqlite3 "$DIR/ulogd.db" <<SQL
CREATE TABLE ulog_pkt (oob_time_sec INTEGER, oob_time_usec INTEGER, oob_prefix TEXT, oob_hook INTEGER,
  oob_family INTEGER, oob_in TEXT, oob_out TEXT, mac_saddr_str TEXT, mac_daddr_str TEXT,
  ip_saddr_str TEXT, ip_daddr_str TEXT, ip_protocol INTEGER, udp_sport INTEGER, udp_dport INTEGER,
  tcp_sport INTEGER, tcp_dport INTEGER, ip_totlen INTEGER, ip_ttl INTEGER, icmp_type INTEGER,
  icmp_code INTEGER, oob_mark INTEGER, oob_uid INTEGER, oob_gid INTEGER, raw_pktlen INTEGER);
CREATE INDEX ulog_pkt_time ON ulog_pkt (oob_time_sec);
SQL
{
  ulogd_nflog_conf SQLITE3 32
  printf '[sqlite31]\ndb="%s"\ntable="ulog_pkt"\nbuffer=1000\n' "$DIR/ulogd.db"
} >"$DIR/ulogd-sqlite.conf"
nflogd_conf "type = \"clickhouse\"
url = \"http://127.0.0.1:$((PORT + 1))\"
spool.dir = \"$DIR/spool-ch\"" >"$DIR/ch.toml"

now() { date +%s.%N; }
rows_pg() { "${PSQL[@]}" -d "$1" -c "SELECT count(*) FROM $2" 2>/dev/null || echo 0; }
rows_sqlite() { sqlite3 -cmd ".timeout 2000" "$DIR/nflogd.db" "SELECT count(*) FROM packets" 2>/dev/null || echo 0; }
# ulogd2 keeps SQLite's rollback journal: while it writes, a reader may not get in at all, and
# then prints nothing (the poll below skips it) rather than a count of 0.
rows_ulogd_sqlite() { sqlite3 -cmd ".timeout 500" "$DIR/ulogd.db" "SELECT count(*) FROM ulog_pkt" 2>/dev/null || true; }
rows_ch() { ip netns exec "$B" curl -sf "http://127.0.0.1:$((PORT + 1))/" --data-binary "SELECT count() FROM nflogd.packets" 2>/dev/null || echo 0; }

# Offers the packets, then polls the row count (command "$@") until it has not moved for 3 s
# (at most 120 s). Prints "rows seconds_from_first_to_last_row".
phase() {
  local n last=0 first_t="" last_t changed
  taskset -c 0 "$BIN/loadgen" "$A" 10.203.0.2:9000 "$RATE" "$COUNT" >/dev/null &
  local gen=$! start; start=$(now); changed=$start
  while :; do
    n=$("$@")
    if [ -z "$n" ]; then sleep 0.1; continue; fi
    if [ "$n" -gt 0 ] && [ -z "$first_t" ]; then first_t=$(now); fi
    if [ "$n" != "$last" ]; then last=$n; last_t=$(now); changed=$last_t; fi
    if awk -v a="$(now)" -v b="$changed" -v s="$start" 'BEGIN{exit !(a-b > 3 || a-s > 120)}'; then break; fi
    sleep 0.1
  done
  wait "$gen"
  echo "$last $(awk -v a="${last_t:-0}" -v b="${first_t:-${last_t:-0}}" 'BEGIN{printf "%.2f", a-b}')"
}

taskset -c 1 ip netns exec "$B" ulogd -c "$DIR/ulogd.conf" & UPID=$!; PIDS+=($UPID)
sleep 1
phase rows_pg ulogd ulog2 >"$DIR/res"; read -r urows usecs <"$DIR/res"
kill "$UPID"; wait "$UPID" 2>/dev/null || true

# nflogd runs in the same namespace, one store at a time; prints "rows seconds".
nflogd_phase() {
  local conf=$1; shift
  local log="$conf.log"
  taskset -c 1 ip netns exec "$B" "$BIN/nflogd" run --config "$conf" 2>"$log" & NPID=$!; PIDS+=($NPID)
  sleep 1
  phase "$@"
  kill "$NPID" 2>/dev/null || tail -5 "$log" >&2
  wait "$NPID" 2>/dev/null || true
  grep -a -o "final stats.*" "$log" >&2 || true
}
# (Through a file: each phase must have ended, its nflogd gone, before the next starts.)
nflogd_phase "$DIR/pg.toml" rows_pg nflogd packets >"$DIR/res"; read -r nrows nsecs <"$DIR/res"
sync
taskset -c 1 ip netns exec "$B" ulogd -c "$DIR/ulogd-sqlite.conf" & UPID=$!; PIDS+=($UPID)
sleep 1
phase rows_ulogd_sqlite >"$DIR/res"; read -r ulrows ulsecs <"$DIR/res"
kill "$UPID"; wait "$UPID" 2>/dev/null || true
nflogd_phase "$DIR/sqlite.toml" rows_sqlite >"$DIR/res"; read -r srows ssecs <"$DIR/res"
nflogd_phase "$DIR/ch.toml" rows_ch >"$DIR/res"; read -r crows csecs <"$DIR/res"

[ "$urows" -gt 0 ] && [ "$nrows" -gt 0 ] || logs
echo "offered: $COUNT UDP packets at $RATE/s"
awk -v c="$COUNT" -v ur="$urows" -v us="$usecs" -v nr="$nrows" -v ns="$nsecs" \
    -v sr="$srows" -v ss="$ssecs" -v cr="$crows" -v cs="$csecs" -v ulr="$ulrows" -v uls="$ulsecs" 'BEGIN {
  rate = "%-22s %9d %6.1f%% %12.0f\n"
  urate = us > 0 ? ur/us : ur; nrate = ns > 0 ? nr/ns : nr
  printf "%-22s %9s %7s %12s\n", "", "rows", "lost", "rows/s"
  printf rate, "ulogd2 → PostgreSQL", ur, 100*(c-ur)/c, urate
  printf rate, "nflogd → PostgreSQL", nr, 100*(c-nr)/c, nrate
  printf rate, "ulogd2 → SQLite", ulr, 100*(c-ulr)/c, (uls > 0 ? ulr/uls : ulr)
  printf rate, "nflogd → SQLite", sr, 100*(c-sr)/c, (ss > 0 ? sr/ss : sr)
  printf rate, "nflogd → ClickHouse", cr, 100*(c-cr)/c, (cs > 0 ? cr/cs : cr)
  printf "nflogd rows/s into PostgreSQL vs ulogd2: %.1fx\n", nrate/urate
  ulrate = uls > 0 ? ulr/uls : ulr
  if (ulrate > 0) printf "nflogd rows stored into SQLite vs ulogd2: %.1fx (rows/s %.1fx)\n", sr/ulr, (ss > 0 ? sr/ss : sr)/ulrate
}'
