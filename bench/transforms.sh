#!/usr/bin/env bash
# The cost per event of nflogd's transforms (Community ID, GeoIP, filter) on 200 000 records
# parsed from bench/corpus.py's lines, against the reference implementations run on the same
# tuples and addresses in the same run: PyPI's `communityid` (the spec's Python
# implementation) and Debian's python3-maxminddb (libmaxminddb's C reader behind Python).
# The peers pay Python's interpreter per call; the ratio says what a user would see moving from
# such a script to nflogd, not what libmaxminddb itself costs.
#
# usage: bench/transforms.sh [LINES]   (default 200000; installs python3-maxminddb if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
dpkg -s python3-maxminddb >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends python3-maxminddb >/dev/null
[ -d /var/tmp/nflogd-py/communityid ] || scripts/deps test >/dev/null
cargo build --release -q -p transforms-bench
DIR=$(mktemp -d /var/tmp/nflogd-transforms.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
python3 bench/corpus.py "$N" >"$DIR/kern.log"
# Databases covering the corpus's public IPv4 space (/16 networks of its ten first octets),
# as GeoLite2's City and ASN would: 2 560 networks each.
PYTHONPATH=/var/tmp/nflogd-py /usr/bin/python3 - "$DIR" <<'PY'
import json, subprocess, sys
d = sys.argv[1]
city, asn = {}, {}
for a in [23, 45, 61, 77, 89, 103, 141, 185, 193, 203]:
    for b in range(256):
        net = f"{a}.{b}.0.0/16"
        city[net] = {"continent": {"code": "EU", "names": {"en": "Europe", "de": "Europa", "fr": "Europe"}},
                     "country": {"iso_code": "DE", "names": {"en": "Germany", "de": "Deutschland", "fr": "Allemagne"}},
                     "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
                     "city": {"names": {"en": f"City {a}-{b}", "de": f"Stadt {a}-{b}"}},
                     "postal": {"code": f"{b:05d}"},
                     "location": {"latitude": 52.5 + b / 1000, "longitude": 13.4, "time_zone": "Europe/Berlin", "accuracy_radius": 100}}
        asn[net] = {"autonomous_system_number": 64512 + b, "autonomous_system_organization": f"Network {a}-{b}"}
for name, kind, spec in [("city", "GeoLite2-City", city), ("asn", "GeoLite2-ASN", asn)]:
    json.dump(spec, open(f"{d}/{name}.json", "w"))
    subprocess.run(["/usr/bin/python3", "crates/nflogd/tests/lab/mmdb.py", f"{d}/{name}.mmdb", kind, f"@{d}/{name}.json"], check=True)
PY
echo "== nflogd (Rust, one core)"
"$CARGO_TARGET_DIR/release/transforms-bench" "$DIR/kern.log" "$DIR/city.mmdb" "$DIR/asn.mmdb" 5 | tee "$DIR/ours.txt"
echo "== reference implementations (Python, one core)"
PYTHONPATH=/var/tmp/nflogd-py /usr/bin/python3 - "$DIR" <<'PY' | tee "$DIR/peers.txt"
import ipaddress, re, sys, time
import communityid, maxminddb
d = sys.argv[1]
pat = re.compile(r"SRC=(\S+) DST=(\S+) .*?PROTO=(\S+)(?: SPT=(\d+) DPT=(\d+))?(?: TYPE=(\d+) CODE=(\d+))?")
tuples = []
for line in open(f"{d}/kern.log"):
    m = pat.search(line)
    if not m:
        continue
    src, dst, proto = str(ipaddress.ip_address(m[1])), str(ipaddress.ip_address(m[2])), m[3]
    if proto == "TCP":
        tuples.append(communityid.FlowTuple.make_tcp(src, dst, int(m[4]), int(m[5])))
    elif proto == "UDP":
        tuples.append(communityid.FlowTuple.make_udp(src, dst, int(m[4]), int(m[5])))
    elif proto == "ICMP":
        tuples.append(communityid.FlowTuple.make_icmp(src, dst, int(m[6]), int(m[7])))
cid = communityid.CommunityID(0)
best = min((lambda t0: ([cid.calc(t) for t in tuples], time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
print(f"community_id {len(tuples)} records: best {best / len(tuples) * 1e9:.0f} ns per record")
addrs = [ip for t in tuples for ip in (t.saddr, t.daddr)]
addrs = [str(ipaddress.ip_address(a)) for a in addrs]
public = [a for a in addrs if ipaddress.ip_address(a).is_global]
readers = [maxminddb.open_database(f"{d}/{n}.mmdb", maxminddb.MODE_MMAP_EXT) for n in ("city", "asn")]
def run():
    t0 = time.perf_counter()
    for a in public:
        for r in readers:
            r.get(a)
    return time.perf_counter() - t0
best = min(run() for _ in range(3))
print(f"geoip {len(public)} public addresses, city+asn: best {best / len(public) * 1e9:.0f} ns per address")
PY
awk 'NR==FNR && /^community_id/ {for(i=1;i<=NF;i++) if($i=="median") o=$(i+1); next}
     /^community_id/ {for(i=1;i<=NF;i++) if($i=="best") p=$(i+1)}
     END {printf "Community ID: nflogd %s ns vs the reference %s ns per record: %.0fx\n", o, p, p/o}' "$DIR/ours.txt" "$DIR/peers.txt"
for kind in cold warm; do
  awk -v kind="$kind" 'NR==FNR && $0 ~ "^geoip " kind {for(i=1;i<=NF;i++) if($i=="address" && $(i+1)=="at") o=$(i-3); next}
       /^geoip/ {for(i=1;i<=NF;i++) if($i=="best") p=$(i+1)}
       END {printf "GeoIP (city+asn, nflogd %s): nflogd %s ns vs python3-maxminddb %s ns per address: %.0fx\n", kind, o, p, p/o}' "$DIR/ours.txt" "$DIR/peers.txt"
done
