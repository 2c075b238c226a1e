#!/usr/bin/env bash
# The syslog sink and its spool: N kernel lines (a file source) shipped as RFC 5424 over TLS to
# rsyslog on loopback (imtcp + gtls, certificates made here). Three phases in one run:
#   1. receiver up: events per second delivered end to end;
#   2. receiver down: events per second written into the spool;
#   3. receiver back: events per second replayed from the spool;
# with nflogd's CPU and resident memory. usage: bench/syslog.sh [N]   (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-300000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nflogd
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/nflogd   # absolute: the script changes directory
DIR=$(mktemp -d /var/tmp/nflogd-syslog.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM
cd "$DIR"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=bench-ca -days 1 -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out srv.pem 2>/dev/null
PORT=$((20000 + RANDOM % 20000)); MPORT=$((PORT + 1))
cat >rsyslog.conf <<CONF
global(workDirectory="$DIR" defaultNetstreamDriverCAFile="$DIR/ca.pem" defaultNetstreamDriverCertFile="$DIR/srv.pem" defaultNetstreamDriverKeyFile="$DIR/srv.key")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$PORT" ruleset="r" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="m" type="string" string="%msg%\n")
ruleset(name="r") { action(type="omfile" file="$DIR/got.log" template="m" asyncWriting="on" ioBufferSize="256k") }
CONF
rsyslog_up() { rsyslogd -n -f "$DIR/rsyslog.conf" -i "$DIR/rsyslog.pid" & RPID=$!; PIDS+=($RPID); sleep 1; }
# A sink metric of sink `s` from nflogd's /metrics.
metric() { exec 3<>/dev/tcp/127.0.0.1/$MPORT; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; sleep 0.01; awk -v k="$1" 'index($1, k"{") == 1 && index($1, "component=\"s\"") {print $2}' <&3; exec 3>&-; }
now() { date +%s.%N; }
gen() { awk -v n="$1" -v o="$2" 'BEGIN{c=0} {l[c++]=$0} END{for(i=0;i<n;i++) print l[(i+o)%c]}' "$OLDPWD/crates/logline/tests/kernel-lines.txt"; }
cat >n.toml <<CONF
stats_interval = "0s"
metrics_address = "127.0.0.1:$MPORT"
[sources.f]
type = "file"
path = "$DIR/in.log"
start = "beginning"
state_file = "$DIR/pos"
poll_interval = "50ms"
[sinks.s]
type = "syslog"
inputs = ["f"]
address = "localhost:$PORT"
transport = "tls"
ca_file = "$DIR/ca.pem"
[sinks.s.spool]
dir = "$DIR/spool"
[sinks.s.structured_data."SEKOIA@53288"]
intake_key = "bench"
CONF
: >in.log
rsyslog_up
"$BIN" run --config n.toml 2>n.log & NPID=$!; PIDS+=($NPID); sleep 1

# 1. Receiver up.
c0=$(cpu_ns $NPID); t0=$(now); gen "$N" 0 >>in.log
for _ in $(seq 1 1200); do [ "$(lines got.log)" -ge "$N" ] && break; sleep 0.1; done
t1=$(now); c1=$(cpu_ns $NPID)
[ "$(lines got.log)" -ge "$N" ] || { echo "phase 1 incomplete: $(lines got.log) of $N; sent $(metric nflogd_sent_total), pending $(metric nflogd_spool_pending)"; tail -5 n.log; }
echo "delivered over TLS:  $N events in $(echo "$t1 - $t0" | bc) s = $(echo "$N / ($t1 - $t0)" | bc) events/s; nflogd CPU $(echo "($c1 - $c0) / 1000 / $N" | bc -l | cut -c1-5) µs/event"

# Plain TLS has no acknowledgement: the sink confirms what the receiver has read from what the
# socket shows (nothing left unacknowledged, the window open again, for a second). The spool is
# empty only then; a receiver stopped earlier would get the unconfirmed part again.
t2=$(now)
for _ in $(seq 1 600); do [ "$(metric nflogd_spool_pending)" -eq 0 ] && break; sleep 0.05; done
echo "confirmed (spool empty) $(echo "$(now) - $t2" | bc) s after the last event arrived; pending $(metric nflogd_spool_pending)"

# 2. Receiver down: into the spool.
kill "$RPID"; wait "$RPID" 2>/dev/null || true; sleep 0.5
t0=$(now); gen "$N" 7 >>in.log
for _ in $(seq 1 2400); do [ "$(metric nflogd_spool_pending)" -ge "$N" ] && break; sleep 0.05; done
t1=$(now)
echo "spooled (receiver down): $N events in $(echo "$t1 - $t0" | bc) s = $(echo "$N / ($t1 - $t0)" | bc) events/s; spool $(du -sh spool | cut -f1)"

# 3. Receiver back: replay.
before=$(lines got.log); t0=$(now); rsyslog_up
for _ in $(seq 1 1200); do [ "$(lines got.log)" -ge $((before + N)) ] && break; sleep 0.1; done
t1=$(now)
echo "replayed from the spool: $N events in $(echo "$t1 - $t0" | bc) s = $(echo "$N / ($t1 - $t0)" | bc) events/s (including rsyslog's start)"
for _ in $(seq 1 600); do [ "$(metric nflogd_spool_pending)" -eq 0 ] && break; sleep 0.05; done
echo "nflogd VmRSS: $(awk '/VmRSS/{print $2}' /proc/$NPID/status) kB; pending after the replay $(metric nflogd_spool_pending); rsyslog got $(lines got.log) lines for $((2 * N)) events"
