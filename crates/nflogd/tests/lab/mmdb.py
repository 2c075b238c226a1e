#!/usr/bin/python3
"""Writes a MaxMind-format database for the GeoIP tests with PyPI's mmdb-writer (installed by
scripts/deps). Usage: mmdb.py OUT TYPE JSON, where TYPE is the metadata's database_type
(GeoLite2-City, GeoLite2-ASN, ...) and JSON maps networks to their records (@FILE: read it
from FILE)."""
import json
import sys

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

out, kind, arg = sys.argv[1], sys.argv[2], sys.argv[3]
spec = json.load(open(arg[1:])) if arg.startswith("@") else json.loads(arg)
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind, languages=["en"],
               description="nflogd test database")
for net, record in spec.items():
    if "autonomous_system_number" in record:
        record = dict(record, autonomous_system_number=MmdbU32(record["autonomous_system_number"]))
    w.insert_network(IPSet([net]), record)
w.to_db_file(out)
