#!/usr/bin/env bash
# NFLOG → JSON lines: Debian's ulogd2 (NFLOG→BASE→IFINDEX→IP2STR→HWHDR→JSON) and nflogd (schema
# "ulogd", the same keys) read the same packets in one run: one nft rule logs each packet to two
# groups, one per daemon. For each offered rate it prints what each logged, what each lost, the
# CPU each spent per event, and nflogd's CPU per event as a fraction of ulogd2's.
#
# usage: sudo bench/nflog.sh [RATES...]   (packets per second; default 25000 50000 100000 150000 250000)
# Traffic stays between two namespaces this script creates (10.201.0.0/24) and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=("${@:-25000 50000 100000 150000 250000}")
read -r -a RATES <<<"${RATES[*]}"
SECONDS_PER_RATE=${SECONDS_PER_RATE:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd -p loadgen
BIN=$CARGO_TARGET_DIR/release
PLUG=/usr/lib/x86_64-linux-gnu/ulogd
A=nflbench$$a B=nflbench$$b
DIR=$(mktemp -d /var/tmp/nflogd-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add va netns "$A" type veth peer vb netns "$B"
ip -n "$A" addr add 10.201.0.1/24 dev va; ip -n "$B" addr add 10.201.0.2/24 dev vb
ip -n "$A" link set va up; ip -n "$B" link set vb up; ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip netns exec "$B" nft -f - <<NFT
table inet bench {
  chain in {
    type filter hook input priority 0; policy drop;
    udp dport 9000 counter log prefix "IPTABLES: DROP " group 21 log prefix "IPTABLES: DROP " group 22
  }
}
NFT
# Warm ARP so no packet waits for resolution.
ip netns exec "$A" ping -c1 -W1 10.201.0.2 >/dev/null 2>&1 || true

cat >"$DIR/ulogd.conf" <<CONF
[global]
logfile="$DIR/ulogd.log"
loglevel=5
plugin="$PLUG/ulogd_inppkt_NFLOG.so"
plugin="$PLUG/ulogd_raw2packet_BASE.so"
plugin="$PLUG/ulogd_filter_IFINDEX.so"
plugin="$PLUG/ulogd_filter_IP2STR.so"
plugin="$PLUG/ulogd_filter_HWHDR.so"
plugin="$PLUG/ulogd_output_JSON.so"
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON
[log1]
group=22
netlink_socket_buffer_size=8388608
netlink_socket_buffer_maxsize=67108864
netlink_qthreshold=64
netlink_qtimeout=1
[json1]
file="$DIR/ulogd.json"
CONF
cat >"$DIR/nflogd.toml" <<CONF
stats_interval = "0s"
[sources.fw]
type = "nflog"
groups = [21]
[sinks.out]
type = "file"
inputs = ["fw"]
path = "$DIR/nflogd.json"
schema = "ulogd"
flush = false
CONF
ip netns exec "$B" ulogd -c "$DIR/ulogd.conf" & PIDS+=($!); UPID=$!
ip netns exec "$B" "$BIN/nflogd" run --config "$DIR/nflogd.toml" 2>"$DIR/nflogd.log" & PIDS+=($!); NPID=$!
sleep 1
# CPU time of every thread of a process, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s+=$1} END{printf "%d\n", s}'; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
counter() { ip netns exec "$B" nft list ruleset | awk '/counter packets/{for(i=1;i<=NF;i++) if($i=="packets") {print $(i+1); exit}}'; }

printf '%-9s %-9s | %-9s %-7s %-8s | %-9s %-7s %-8s | %s\n' offered/s matched ulogd2 lost us/ev nflogd lost us/ev "nflogd CPU/event vs ulogd2"
for rate in "${RATES[@]}"; do
  count=$((rate * SECONDS_PER_RATE))
  m0=$(counter); u0=$(lines "$DIR/ulogd.json"); n0=$(lines "$DIR/nflogd.json")
  uc0=$(cpu_ns $UPID); nc0=$(cpu_ns $NPID)
  read -r sent secs real_rate < <("$BIN/loadgen" "$A" 10.201.0.2:9000 "$rate" "$count")
  sleep 2
  m=$(( $(counter) - m0 )); u=$(( $(lines "$DIR/ulogd.json") - u0 )); n=$(( $(lines "$DIR/nflogd.json") - n0 ))
  uc=$(( $(cpu_ns $UPID) - uc0 )); nc=$(( $(cpu_ns $NPID) - nc0 ))
  awk -v r="$real_rate" -v m="$m" -v u="$u" -v n="$n" -v uc="$uc" -v nc="$nc" 'BEGIN{
    ul = m ? 100*(m-u)/m : 0; nl = m ? 100*(m-n)/m : 0
    uu = u ? uc/u/1000 : 0; nu = n ? nc/n/1000 : 0
    printf "%-9d %-9d | %-9d %5.1f%%  %-8.2f | %-9d %5.1f%%  %-8.2f | %s\n", r, m, u, ul, uu, n, nl, nu, (uu ? sprintf("%.2f (1/%.1f)", nu/uu, uu/nu) : "-")
  }'
done
echo "memory (VmRSS): ulogd2 $(rss_kb $UPID) kB, nflogd $(rss_kb $NPID) kB"
