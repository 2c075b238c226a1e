#!/usr/bin/env bash
# nf_tables trace events: `nft monitor trace` (the peer, text to a file) and nflogd's `nftrace`
# source (one ECS record per packet with its path, to a file) on the same traffic in one run.
# A ruleset in namespace B sets the trace flag on UDP to port 9000 and sends each packet through
# a jump and an accept: four trace events per packet (the flag's rule, prerouting's policy, the
# jump, the accept). Each reader in turn has CPU 1 to itself (the sender is pinned to CPU 0)
# and is offered the same rising rates; it prints, per rate, the events each decoded, the CPU
# each spent per event, and nflogd's CPU per event as a fraction of nft's.
#
# usage: sudo bench/trace.sh [RATES...]   (packets per second; default 2000 5000 10000 20000)
# Traffic stays between two namespaces this script creates (10.203.0.0/24) and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RATES=("${@:-2000 5000 10000 20000}")
read -r -a RATES <<<"${RATES[*]}"
SECONDS_PER_RATE=${SECONDS_PER_RATE:-2}
EVENTS_PER_PACKET=4
bench_begin trbench
veth_pair "$A" "$B" 10.203.0
ip netns exec "$B" nft -f - <<NFT
table inet bench {
  chain pre {
    type filter hook prerouting priority -300;
    udp dport 9000 meta nftrace set 1
  }
  chain in {
    type filter hook input priority 0; policy drop;
    udp dport 9000 jump c
  }
  chain c {
    udp dport 9000 counter accept
  }
}
NFT
ip netns exec "$A" ping -c1 -W1 10.203.0.2 >/dev/null 2>&1 || true
cat >"$DIR/nflogd.toml" <<CONF
stats_interval = "0s"
[sources.t]
type = "nftrace"
[sinks.f]
type = "file"
inputs = ["t"]
path = "$DIR/nflogd.json"
CONF

# Events a reader wrote: nft prints a line per event (and a `packet:` line per hook); nflogd a
# record per packet whose path has a step per event.
nft_events() { if [ -f "$1" ]; then grep -vc 'packet:' "$1" || true; else echo 0; fi; }
nflogd_events() { if [ -f "$1" ]; then { grep -o '"verdict"' "$1" || true; } | wc -l; else echo 0; fi; }

# `phase PID OUTPUT COUNTER`: per rate, "rate expected written cpu_ns"; then "rss KB".
phase() {
  local pid=$1 out=$2 count_fn=$3
  for rate in "${RATES[@]}"; do
    local count=$((rate * SECONDS_PER_RATE)) e0 c0 sent secs real
    e0=$($count_fn "$out"); c0=$(cpu_ns "$pid")
    read -r sent secs real < <(taskset -c 0 "$BIN/loadgen" "$A" 10.203.0.2:9000 "$rate" "$count")
    sleep 2
    echo "$real $((sent * EVENTS_PER_PACKET)) $(( $($count_fn "$out") - e0 )) $(( $(cpu_ns "$pid") - c0 ))"
  done
  echo "rss $(rss_kb "$pid")"
}

sync
taskset -c 1 ip netns exec "$B" nft monitor trace >"$DIR/nft.txt" 2>/dev/null & pid=$!; PIDS+=($pid)
sleep 1
phase "$pid" "$DIR/nft.txt" nft_events >"$DIR/nft.res"
kill "$pid"; wait "$pid" 2>/dev/null || true
sync
taskset -c 1 ip netns exec "$B" "$BIN/nflogd" run --config "$DIR/nflogd.toml" 2>"$DIR/nflogd.log" & pid=$!; PIDS+=($pid)
sleep 1
phase "$pid" "$DIR/nflogd.json" nflogd_events >"$DIR/nflogd.res"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "nf_tables trace events ($EVENTS_PER_PACKET per packet): nft monitor trace vs nflogd nftrace → ECS file"
printf '%-8s | %-9s %-9s %-7s %-8s | %-9s %-9s %-7s %-8s | %s\n' pkts/s nft events lost us/ev nflogd events lost us/ev "nflogd CPU/event vs nft"
paste -d' ' <(grep -v rss "$DIR/nft.res") <(grep -v rss "$DIR/nflogd.res") | awk '{
  ul = $2 ? 100*($2-$3)/$2 : 0; nl = $6 ? 100*($6-$7)/$6 : 0
  uu = $3 ? $4/$3/1000 : 0; nu = $7 ? $8/$7/1000 : 0
  printf "%-8d | %-9d %-9d %5.1f%%  %-8.2f | %-9d %-9d %5.1f%%  %-8.2f | %s\n", $1, $3, $2, ul, uu, $7, $6, nl, nu, (uu && nu ? sprintf("%.2f (1/%.1f)", nu/uu, uu/nu) : "-")
}'
echo "events decoded per CPU-second at the highest rate: nft $(tail -2 "$DIR/nft.res" | head -1 | awk '{printf "%.0f", $4 ? $3/($4/1e9) : 0}'), nflogd $(tail -2 "$DIR/nflogd.res" | head -1 | awk '{printf "%.0f", $4 ? $3/($4/1e9) : 0}')"
echo "memory (VmRSS at the end): nft $(awk '/rss/{print $2}' "$DIR/nft.res") kB, nflogd $(awk '/rss/{print $2}' "$DIR/nflogd.res") kB"
