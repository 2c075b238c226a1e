#!/usr/bin/env bash
# Kernel LOG lines → structured records: syslog-ng's iptables-parser() (Debian syslog-ng 3.38,
# kv-parser into .iptables.* name-value pairs, written as JSON) and `nflogd parse` (every field,
# written as ECS JSON, and as the kernel's text again) on the same 1M-line kern.log of diverse
# lines (bench/corpus.py) in one run.
# Prints lines per second and CPU seconds of each, and the ratio.
#
# usage: bench/loglines.sh [LINES]   (default 1000000)
# syslog-ng conflicts with rsyslog in Debian (the tests use rsyslog): when it is not installed,
# its packages are unpacked into /var/tmp/nflogd-syslog-ng and run from there.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/nflogd
# Both outputs go to tmpfs when there is room (about 2 GB in all), so that neither side's CPU
# time includes the disk's writeback; the input too, so both read it from memory.
BASE=/var/tmp
[ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -gt 4000000 ] 2>/dev/null && BASE=/dev/shm
DIR=$(mktemp -d "$BASE/nflogd-lines.XXXXXX")
SNG=
cleanup() { [ -n "$SNG" ] && kill "$SNG" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

# The input: N lines of a firewall's diversity (bench/corpus.py: many addresses, ports,
# interfaces, hosts and prefixes, TCP/UDP/ICMP over IPv4 and IPv6) in a syslog file, 1000 lines
# per second, as rsyslog writes kern.log. (It used to repeat 100 real lines, which flattered
# nflogd's caches of prefixes and interface names.)
python3 bench/corpus.py "$N" >"$DIR/kern.log"

# nflogd's runs are short next to syslog-ng's, and this VM's neighbours come and go: each
# schema is run twice before syslog-ng and three times after it, and the median of the five is
# kept.
once() { /usr/bin/time -f "%e %U %S" "$BIN" parse --schema "$1" "$DIR/kern.log" 2>&1 >"$DIR/out.$1" | tail -1; }
median() { awk '{print $2 + $3, $0}' "$DIR/times.$1" | sort -n | sed -n 3p | cut -d' ' -f2-; }
: >"$DIR/times.ecs"; : >"$DIR/times.text"
for _ in 1 2; do once ecs >>"$DIR/times.ecs"; once text >>"$DIR/times.text"; done
SNG_BIN=syslog-ng SNG_ARGS=() SCL=/usr/share/syslog-ng/include/scl
if ! command -v syslog-ng >/dev/null; then
  R=/var/tmp/nflogd-syslog-ng
  if [ ! -x "$R/usr/sbin/syslog-ng" ]; then
    mkdir -p "$R/debs"
    chown _apt "$R/debs" 2>/dev/null || true
    (cd "$R/debs" && apt-get download -q syslog-ng-core syslog-ng-scl libivykis0 libnet1 >/dev/null)
    for d in "$R"/debs/*.deb; do dpkg-deb -x "$d" "$R"; done
  fi
  export LD_LIBRARY_PATH="$R/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu):$R/usr/lib/syslog-ng"
  SNG_BIN=$R/usr/sbin/syslog-ng SNG_ARGS=(--module-path="$R/usr/lib/syslog-ng/3.38") SCL=$R/usr/share/syslog-ng/include/scl
fi
cat >"$DIR/sng.conf" <<CONF
@version: 3.38
@include "$SCL/iptables/iptables.conf"
options { stats-freq(0); };
source s { file("$DIR/kern.log" follow-freq(1) log-fetch-limit(10000)); };
parser p { iptables-parser(); };
destination d { file("$DIR/sng.json" template("\$(format-json --scope dot-nv-pairs --scope rfc5424)\n")); };
log { source(s); parser(p); destination(d); };
CONF
start=$(date +%s.%N)
"$SNG_BIN" "${SNG_ARGS[@]}" -F -f "$DIR/sng.conf" --persist-file="$DIR/persist" --pidfile="$DIR/pid" --control="$DIR/ctl" >"$DIR/sng.log" 2>&1 & SNG=$!
for _ in $(seq 1 3000); do
  [ -f "$DIR/sng.json" ] && [ "$(wc -l <"$DIR/sng.json")" -ge "$N" ] && break
  kill -0 "$SNG" 2>/dev/null || { cat "$DIR/sng.log"; exit 1; }
  sleep 0.1
done
end=$(date +%s.%N)
sng_cpu=$(awk '{printf "%.2f", ($14+$15)/100}' /proc/$SNG/stat)
kill "$SNG"; wait "$SNG" 2>/dev/null || true; SNG=
sng_wall=$(echo "$end - $start" | bc)
for _ in 1 2 3; do once ecs >>"$DIR/times.ecs"; once text >>"$DIR/times.text"; done
read -r ew eu es < <(median ecs)
read -r tw tu ts < <(median text)

awk -v n="$N" -v sw="$sng_wall" -v sc="$sng_cpu" -v ew="$ew" -v ec="$(echo "$eu + $es" | bc)" -v tw="$tw" -v tc="$(echo "$tu + $ts" | bc)" 'BEGIN{
  printf "%-38s %10s %10s %12s\n", "", "CPU s", "wall s", "lines/s (CPU)"
  printf "%-38s %10.2f %10.2f %12.0f\n", "syslog-ng iptables-parser() → JSON", sc, sw, n/sc
  printf "%-38s %10.2f %10.2f %12.0f   %.1fx syslog-ng\n", "nflogd parse → ECS JSON", ec, ew, n/ec, sc/ec
  printf "%-38s %10.2f %10.2f %12.0f   %.1fx syslog-ng\n", "nflogd parse → kernel text", tc, tw, n/tc, sc/tc
}'
echo "outputs: syslog-ng $(wc -l <"$DIR/sng.json") lines, nflogd ECS $(wc -l <"$DIR/out.ecs") lines, text $(wc -l <"$DIR/out.text") lines"
echo "nflogd's five runs, CPU s: ECS $(awk '{printf "%.2f ", $2 + $3}' "$DIR/times.ecs")| text $(awk '{printf "%.2f ", $2 + $3}' "$DIR/times.text")"
