#!/usr/bin/env bash
# The guard against fail2ban and sshguard, in one run.
#
# 1. Lines/s: the same auth.log (bench/authlog.py: N lines, half of them sshd failures from
#    25 000 addresses) through fail2ban-regex with Debian's sshd filter, sshguard's parser
#    (sshg-parser), and nflogd (stdin → guard in dry_run → decisions file).
# 2. Bans/s into the kernel, in a namespace of its own: fail2ban's nftables action (a shell and
#    an `nft add element` per ban, as its actionban does) for 500 bans, against nflogd banning
#    BANS distinct attackers as it reads them (one netlink batch per batch of lines).
# 3. Restoring BANS bans at a start (nflogd's state file → its table, one batch).
#
# usage: bench/guard.sh [LINES] [BANS]   (defaults 1000000, 100000)
# fail2ban and sshguard are unpacked from Debian's packages into /var/tmp/nflogd-guard-peers
# (installed, they would start their own daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
BANS=${2:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/nflogd
BASE=/var/tmp
[ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -gt 2000000 ] 2>/dev/null && BASE=/dev/shm
DIR=$(mktemp -d "$BASE/nflogd-guard.XXXXXX")
NS=nflogd-guard-bench-$$
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

P=/var/tmp/nflogd-guard-peers
if [ ! -x "$P/usr/bin/fail2ban-regex" ] || [ ! -x "$P/usr/libexec/sshguard/sshg-parser" ]; then
  mkdir -p "$P/debs"
  (cd "$P/debs" && apt-get download -q fail2ban sshguard >/dev/null)
  for d in "$P"/debs/*.deb; do dpkg-deb -x "$d" "$P"; done
fi
F2B_PY=$(dirname "$(find "$P/usr/lib" -path '*/fail2ban/__init__.py' | head -1)")/..

python3 bench/authlog.py "$N" >"$DIR/auth.log"
secs() { /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1; }

echo "== lines: $N-line auth.log, $(grep -c sshd "$DIR/auth.log") sshd lines"
read -r fw fu fs < <(secs env PYTHONPATH="$F2B_PY" python3 "$P/usr/bin/fail2ban-regex" "$DIR/auth.log" "$P/etc/fail2ban/filter.d/sshd.conf")
read -r sw su ss < <(secs sh -c "'$P/usr/libexec/sshguard/sshg-parser' < '$DIR/auth.log'")
cat >"$DIR/lines.toml" <<CONF
stats_interval = "0s"
[sources.auth]
type = "stdin"
[transforms.guard]
type = "guard"
inputs = ["auth"]
dry_run = true
state_file = "$DIR/dry.json"
control_socket = "$DIR/dry.sock"
[transforms.guard.detectors.sshd]
[sinks.decisions]
type = "file"
inputs = ["guard"]
path = "$DIR/decisions.json"
CONF
read -r nw nu ns < <(secs sh -c "'$BIN' run --config '$DIR/lines.toml' < '$DIR/auth.log' 2>'$DIR/lines.log'")
echo "nflogd decided $(wc -l <"$DIR/decisions.json") bans (dry run)"
awk -v n="$N" -v fw="$fw" -v fc="$(echo "$fu + $fs" | bc)" -v sw="$sw" -v sc="$(echo "$su + $ss" | bc)" -v nw="$nw" -v nc="$(echo "$nu + $ns" | bc)" 'BEGIN{
  printf "%-34s %8s %8s %12s\n", "", "wall s", "cpu s", "lines/s"
  printf "%-34s %8.2f %8.2f %12.0f\n", "fail2ban-regex (sshd filter)", fw, fc, n/fw
  printf "%-34s %8.2f %8.2f %12.0f\n", "sshguard sshg-parser", sw, sc, n/sw
  printf "%-34s %8.2f %8.2f %12.0f   %.1fx fail2ban, %.1fx sshguard\n", "nflogd guard (stdin, dry run)", nw, nc, n/nw, fw/nw, sw/nw
}'

echo "== bans into the kernel (namespace $NS)"
ip netns add "$NS"
ip netns exec "$NS" nft -f - <<'NFT'
table inet f2b-table {
  set addr-set-sshd { type ipv4_addr; flags interval; }
  chain f2b-chain { type filter hook input priority -1; ip saddr @addr-set-sshd reject; }
}
NFT
F2B_BANS=500
start=$(date +%s.%N)
for i in $(seq 1 $F2B_BANS); do
  ip netns exec "$NS" sh -c "nft add element inet f2b-table addr-set-sshd { 10.9.$((i / 256)).$((i % 256)) }"
done
f2b_wall=$(echo "$(date +%s.%N) - $start" | bc)
python3 bench/authlog.py "$((BANS * 2))" --distinct | grep sshd >"$DIR/attackers.log"
cat >"$DIR/bans.toml" <<CONF
stats_interval = "0s"
[sources.auth]
type = "stdin"
[transforms.guard]
type = "guard"
inputs = ["auth"]
table = "bench_guard"
ban_time = "1h"
state_file = "$DIR/bans.json"
control_socket = "$DIR/bans.sock"
[transforms.guard.detectors.sshd]
max_retry = 1
[sinks.decisions]
type = "file"
inputs = ["guard"]
path = "$DIR/bans.out"
CONF
start=$(date +%s.%N)
ip netns exec "$NS" "$BIN" run --config "$DIR/bans.toml" <"$DIR/attackers.log" 2>"$DIR/bans.log"
n_wall=$(echo "$(date +%s.%N) - $start" | bc)
in_kernel=$(ip netns exec "$NS" nft list table inet bench_guard | grep -o 'expires' | wc -l)
made=$(grep -o 'transform.guard: [^;]*' "$DIR/bans.log" | tail -1 | grep -o ' bans=[0-9]*' | cut -d= -f2)
# A start with an empty state file, then one that restores what the run above saved.
mv "$DIR/bans.json" "$DIR/saved.json"
ip netns exec "$NS" nft delete table inet bench_guard
start=$(date +%s.%N)
ip netns exec "$NS" "$BIN" run --config "$DIR/bans.toml" </dev/null 2>"$DIR/empty.log"
empty_wall=$(echo "$(date +%s.%N) - $start" | bc)
mv "$DIR/saved.json" "$DIR/bans.json"
ip netns exec "$NS" nft delete table inet bench_guard
start=$(date +%s.%N)
ip netns exec "$NS" "$BIN" run --config "$DIR/bans.toml" </dev/null 2>"$DIR/restore.log"
restore_wall=$(echo "$(date +%s.%N) - $start" | bc)
restored=$(ip netns exec "$NS" nft list table inet bench_guard | grep -o 'expires' | wc -l)
awk -v fb="$F2B_BANS" -v fw="$f2b_wall" -v nb="$made" -v nw="$n_wall" -v k="$in_kernel" -v rw="$restore_wall" -v ew="$empty_wall" -v r="$restored" 'BEGIN{
  printf "%-44s %8d bans %7.2f s %10.0f bans/s\n", "fail2ban nftables action (nft per ban)", fb, fw, fb/fw
  printf "%-44s %8d bans %7.2f s %10.0f bans/s   %.0fx fail2ban (%d elements in the kernel)\n", "nflogd guard, banning as it reads", nb, nw, nb/nw, (nb/nw)/(fb/fw), k
  printf "%-44s %8d bans %7.2f s (a start with no bans: %.2f s; %d elements in the kernel)\n", "nflogd start restoring its state file", r, rw - ew, ew, r
}'
