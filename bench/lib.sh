# Shared by the benchmark scripts (sourced): measuring a process, two namespaces joined by a
# veth pair, and the side-by-side table of nflogd against ulogd2.

# CPU time of every thread of process $1, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s+=$1} END{printf "%.0f\n", s}'; }
# Resident memory of process $1, in kB.
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# Lines in file $1 (0 before it exists).
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# Namespaces $1 (NET.1, veth va) and $2 (NET.2, veth vb), NET being three octets like 10.201.0.
veth_pair() {
  local a=$1 b=$2 net=$3
  ip netns add "$a"; ip netns add "$b"
  ip link add va netns "$a" type veth peer vb netns "$b"
  ip -n "$a" addr add "$net.1/24" dev va; ip -n "$b" addr add "$net.2/24" dev vb
  ip -n "$a" link set va up; ip -n "$b" link set vb up
  ip -n "$a" link set lo up; ip -n "$b" link set lo up
}

# Runs the script's `phase PID OUTPUT` against ulogd2 ($DIR/ulogd.conf, output $1) and then
# nflogd ($DIR/nflogd.toml, output $2), each alone on CPU 1 in namespace $B; the results go to
# $DIR/ulogd.res and $DIR/nflogd.res, nflogd's log to $DIR/nflogd.log.
ulogd_then_nflogd() {
  local pid
  # Each phase starts with nothing left to write back to disk (the build's files, the other
  # daemon's output): writeback during a phase slowed that daemon's own writes.
  sync
  taskset -c 1 ip netns exec "$B" ulogd -c "$DIR/ulogd.conf" & pid=$!; PIDS+=($pid)
  sleep 1
  phase "$pid" "$1" >"$DIR/ulogd.res"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  sync
  taskset -c 1 ip netns exec "$B" "$BIN/nflogd" run --config "$DIR/nflogd.toml" 2>"$DIR/nflogd.log" & pid=$!; PIDS+=($pid)
  sleep 1
  phase "$pid" "$2" >"$DIR/nflogd.res"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# Prints the table from two result files with lines "rate expected written cpu_ns" (ulogd2's,
# then nflogd's) and a last line "rss KB". $1 names the rate column, $2 the expected column.
compare_with_ulogd() {
  local rate_col=$1 expected_col=$2 ures=$3 nres=$4
  printf '%-10s | %-9s %-9s %-7s %-8s | %-9s %-9s %-7s %-8s | %s\n' "$rate_col" ulogd2 "$expected_col" lost us/ev nflogd "$expected_col" lost us/ev "nflogd CPU/event vs ulogd2"
  paste -d' ' <(grep -v rss "$ures") <(grep -v rss "$nres") | awk '{
    ul = $2 ? 100*($2-$3)/$2 : 0; nl = $6 ? 100*($6-$7)/$6 : 0
    uu = $3 ? $4/$3/1000 : 0; nu = $7 ? $8/$7/1000 : 0
    printf "%-10d | %-9d %-9d %5.1f%%  %-8.2f | %-9d %-9d %5.1f%%  %-8.2f | %s\n", $1, $3, $2, ul, uu, $7, $6, nl, nu, (uu && nu ? sprintf("%.2f (1/%.1f)", nu/uu, uu/nu) : "-")
  }'
  echo "memory (VmRSS at the end): ulogd2 $(awk '/rss/{print $2}' "$ures") kB, nflogd $(awk '/rss/{print $2}' "$nres") kB"
}

# A PostgreSQL server of the benchmark's own in $1 on 127.0.0.1:$2 of namespace $3 (Debian's
# binaries, trust authentication, fsync on as in production). pg_down stops it.
pg_up() {
  local dir=$1 port=$2 ns=$3 bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  mkdir -p "$dir"; chown postgres "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  ip netns exec "$ns" runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" >/dev/null
}
pg_down() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  runuser -u postgres -- "$bin/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

# A ClickHouse server of the benchmark's own in $1, HTTP on 127.0.0.1:$2 of namespace $3;
# its PID in $1/pid. ch_down ends it.
ch_up() {
  local dir=$1 port=$2 ns=$3
  mkdir -p "$dir"
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default/></profiles><quotas><default/></quotas><users><default><password></password>
<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users></yandex>
XML
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex><logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/error.log</errorlog><console>0</console></logger>
<http_port>$port</http_port><tcp_port>$((port + 1))</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$dir/data/</path><tmp_path>$dir/tmp/</tmp_path><users_config>$dir/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database><mark_cache_size>268435456</mark_cache_size></yandex>
XML
  ip netns exec "$ns" /usr/sbin/clickhouse-server --config-file="$dir/config.xml" >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 100); do
    ip netns exec "$ns" curl -sf "http://127.0.0.1:$port/?query=SELECT%201" >/dev/null && return 0
    sleep 0.2
  done
  echo "clickhouse-server did not start" >&2; return 1
}
ch_down() { [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null; sleep 1; }

# The common start of a kernel-lab benchmark: builds nflogd and loadgen (BIN), makes a directory
# (DIR), names two namespaces after $1 (A, B), and on exit ends the processes in PIDS, runs the
# script's own `bench_cleanup` if it has one, and removes the namespaces and DIR.
bench_begin() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release -q -p nflogd -p loadgen
  BIN=$CARGO_TARGET_DIR/release
  PLUG=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/ulogd
  A=$1$$a B=$1$$b
  DIR=$(mktemp -d /var/tmp/nflogd-bench.XXXXXX)
  PIDS=()
  trap bench_end EXIT INT TERM
}
bench_end() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$DIR"
}

# ulogd2's configuration for an NFLOG stack (NFLOG→BASE→IFINDEX→IP2STR→HWHDR→$1) reading group
# $2, its log in $DIR; the caller appends the output plugin's section.
ulogd_nflog_conf() {
  local out=$1 group=$2 lower
  lower=$(echo "$out" | tr '[:upper:]' '[:lower:]')
  cat <<CONF
[global]
logfile="$DIR/ulogd.log"
loglevel=5
plugin="$PLUG/ulogd_inppkt_NFLOG.so"
plugin="$PLUG/ulogd_raw2packet_BASE.so"
plugin="$PLUG/ulogd_filter_IFINDEX.so"
plugin="$PLUG/ulogd_filter_IP2STR.so"
plugin="$PLUG/ulogd_filter_HWHDR.so"
plugin="$PLUG/ulogd_output_$out.so"
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,${lower}1:$out
[log1]
group=$group
netlink_socket_buffer_size=8388608
netlink_socket_buffer_maxsize=67108864
CONF
}
