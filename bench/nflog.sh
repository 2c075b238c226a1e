#!/usr/bin/env bash
# NFLOG → JSON lines: Debian's ulogd2 (NFLOG→BASE→IFINDEX→IP2STR→HWHDR→JSON) and nflogd (schema
# "ulogd", the same keys) on the same input in one run: one nft rule logs each packet to two
# groups, one per daemon, and each daemon in turn is offered the same rising rates while it has
# the machine to itself: the sender (and the kernel's receive path, which builds the NFLOG
# messages in its softirq) is pinned to CPU 0, the daemon to CPU 1, so each daemon is charged
# only for its own work. For each rate it
# prints what each logged, what each lost, the CPU each spent per event, and nflogd's CPU per
# event as a fraction of ulogd2's.
#
# usage: sudo bench/nflog.sh [RATES...]   (packets per second; default 25000 50000 100000 150000 250000)
#        TRANSFORMS=1: nflogd writes ECS through a filter and GeoIP (see below)
#        LOGEMU=1: Debian's default stack (PRINTPKT → LOGEMU text lines) against `logemu`
# Traffic stays between two namespaces this script creates (10.201.0.0/24) and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RATES=("${@:-25000 50000 100000 150000 250000}")
read -r -a RATES <<<"${RATES[*]}"
SECONDS_PER_RATE=${SECONDS_PER_RATE:-2}
bench_begin nflbench
veth_pair "$A" "$B" 10.201.0
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

if [ -n "${LOGEMU:-}" ]; then
  # Debian's default stack instead: ulogd2's PRINTPKT line through LOGEMU, against nflogd's
  # `logemu` schema (the same lines).
  cat >"$DIR/ulogd.conf" <<CONF
[global]
logfile="$DIR/ulogd.log"
loglevel=5
plugin="$PLUG/ulogd_inppkt_NFLOG.so"
plugin="$PLUG/ulogd_raw2packet_BASE.so"
plugin="$PLUG/ulogd_filter_IFINDEX.so"
plugin="$PLUG/ulogd_filter_IP2STR.so"
plugin="$PLUG/ulogd_filter_PRINTPKT.so"
plugin="$PLUG/ulogd_output_LOGEMU.so"
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
[log1]
group=22
netlink_socket_buffer_size=8388608
netlink_socket_buffer_maxsize=67108864
netlink_qthreshold=64
netlink_qtimeout=1
[emu1]
file="$DIR/ulogd.json"
CONF
else
{
  ulogd_nflog_conf JSON 22
  cat <<CONF
netlink_qthreshold=64
netlink_qtimeout=1
[json1]
file="$DIR/ulogd.json"
CONF
} >"$DIR/ulogd.conf"
fi
if [ -n "${TRANSFORMS:-}" ]; then
  # With transforms on: ECS records (Community ID in each) through a filter and GeoIP (City
  # and ASN databases written here; the lab's addresses are private, so the GeoIP cost is its
  # address check), against ulogd2 as before.
  PYTHONPATH=/var/tmp/nflogd-py /usr/bin/python3 crates/nflogd/tests/lab/mmdb.py "$DIR/city.mmdb" GeoLite2-City \
    '{"81.2.69.0/24": {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}}}'
  PYTHONPATH=/var/tmp/nflogd-py /usr/bin/python3 crates/nflogd/tests/lab/mmdb.py "$DIR/asn.mmdb" GeoLite2-ASN \
    '{"81.2.69.0/24": {"autonomous_system_number": 64500, "autonomous_system_organization": "X"}}'
  PIPELINE="[transforms.keep]
type = \"filter\"
inputs = [\"fw\"]
protocols = [\"udp\"]
[transforms.geo]
type = \"geoip\"
inputs = [\"keep\"]
databases = [\"$DIR/city.mmdb\", \"$DIR/asn.mmdb\"]"
  INPUT=geo SCHEMA=ecs
elif [ -n "${LOGEMU:-}" ]; then
  PIPELINE="" INPUT=fw SCHEMA=logemu
else
  PIPELINE="" INPUT=fw SCHEMA=ulogd
fi
cat >"$DIR/nflogd.toml" <<CONF
stats_interval = "0s"
[sources.fw]
type = "nflog"
groups = [21]
$PIPELINE
[sinks.out]
type = "file"
inputs = ["$INPUT"]
path = "$DIR/nflogd.json"
schema = "$SCHEMA"
flush = false
CONF
counter() { ip netns exec "$B" nft list ruleset | awk '/counter packets/{for(i=1;i<=NF;i++) if($i=="packets") {print $(i+1); exit}}'; }

# One phase per daemon, each alone on the machine, each offered the same rates and counts.
# Prints "rate matched logged cpu_ns" per rate, then "rss KB".
phase() {
  local pid=$1 out=$2
  for rate in "${RATES[@]}"; do
    local count=$((rate * SECONDS_PER_RATE)) m0 l0 c0 sent secs real
    m0=$(counter); l0=$(lines "$out"); c0=$(cpu_ns "$pid")
    read -r sent secs real < <(taskset -c 0 "$BIN/loadgen" "$A" 10.201.0.2:9000 "$rate" "$count")
    sleep 2
    echo "$real $(( $(counter) - m0 )) $(( $(lines "$out") - l0 )) $(( $(cpu_ns "$pid") - c0 ))"
  done
  echo "rss $(rss_kb "$pid")"
}

ulogd_then_nflogd "$DIR/ulogd.json" "$DIR/nflogd.json"

compare_with_ulogd offered/s matched "$DIR/ulogd.res" "$DIR/nflogd.res"
