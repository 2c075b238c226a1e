#!/usr/bin/env bash
# Conntrack events → JSON lines: Debian's ulogd2 (NFCT → IP2STR → JSON, hash_enable=0 so it
# writes NEW and DESTROY as they come) and nflogd (conntrack source, schema "ulogd", the same
# keys, with its open-flow table on as by default) on the same flows. Each daemon in turn has
# the machine to itself (sender on CPU 0, daemon on CPU 1) and is offered the same rounds: COUNT
# new UDP flows at a rate, then `conntrack -F`, which ends them all at once (a burst of DESTROY
# events). For each rate it prints the events each wrote of the 2×COUNT the kernel sent, the CPU
# each spent per event, and nflogd's CPU per event as a fraction of ulogd2's. Both get the same
# receive buffer: 32 MiB, growing to 128 MiB on an overrun (nflogd's defaults).
#
# usage: sudo bench/conntrack.sh [RATES...]   (new flows per second; default 10000 25000 50000)
# Traffic stays between two namespaces this script creates (10.202.0.0/24) and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RATES=("${@:-10000 25000 50000}")
read -r -a RATES <<<"${RATES[*]}"
SECONDS_PER_RATE=${SECONDS_PER_RATE:-2}
bench_begin nflctb
veth_pair "$A" "$B" 10.202.0
# A conntrack rule makes the namespace track (an entry exists only for a packet accepted).
ip netns exec "$B" nft -f - <<NFT
table inet bench {
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 10000-60000 ct state new counter
  }
}
NFT
ip netns exec "$B" sysctl -qw net.netfilter.nf_conntrack_acct=1 net.netfilter.nf_conntrack_timestamp=1
ip netns exec "$A" ping -c1 -W1 10.202.0.2 >/dev/null 2>&1 || true

cat >"$DIR/ulogd.conf" <<CONF
[global]
logfile="$DIR/ulogd.log"
loglevel=5
plugin="$PLUG/ulogd_inpflow_NFCT.so"
plugin="$PLUG/ulogd_filter_IP2STR.so"
plugin="$PLUG/ulogd_output_JSON.so"
stack=ct1:NFCT,ip2str1:IP2STR,json1:JSON
[ct1]
hash_enable=0
event_mask=5
netlink_socket_buffer_size=33554432
netlink_socket_buffer_maxsize=134217728
[json1]
file="$DIR/ulogd.json"
CONF
cat >"$DIR/nflogd.toml" <<CONF
stats_interval = "0s"
[sources.ct]
type = "conntrack"
[sinks.out]
type = "file"
inputs = ["ct"]
path = "$DIR/nflogd.json"
schema = "ulogd"
flush = false
CONF

# Prints "rate events_sent logged cpu_ns" per rate, then "rss KB".
phase() {
  local pid=$1 out=$2
  for rate in "${RATES[@]}"; do
    local count=$((rate * SECONDS_PER_RATE)) l0 c0 sent secs real listed
    ip netns exec "$B" conntrack -F 2>/dev/null; sleep 1
    l0=$(lines "$out"); c0=$(cpu_ns "$pid")
    read -r sent secs real < <(taskset -c 0 "$BIN/loadgen" "$A" 10.202.0.2:10000 "$rate" "$count" 18 50000)
    listed=$(ip netns exec "$B" conntrack -C)
    taskset -c 0 ip netns exec "$B" conntrack -F 2>/dev/null
    sleep 3
    echo "$real $((2 * listed)) $(( $(lines "$out") - l0 )) $(( $(cpu_ns "$pid") - c0 ))"
  done
  echo "rss $(rss_kb "$pid")"
}

ulogd_then_nflogd "$DIR/ulogd.json" "$DIR/nflogd.json"

compare_with_ulogd flows/s events "$DIR/ulogd.res" "$DIR/nflogd.res"
grep 'final stats' "$DIR/nflogd.log" | tail -1 | sed 's/.*final stats/nflogd final stats/'
