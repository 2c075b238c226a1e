#!/usr/bin/python3
"""Writes a MaxMind-format database for the GeoIP tests with PyPI's mmdb-writer (installed by
scripts/deps). Usage: mmdb.py OUT TYPE JSON, where TYPE is the metadata's database_type
(GeoLite2-City, GeoLite2-ASN, ...) and JSON maps networks to their records."""
import json
import sys

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

out, kind, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind, languages=["en"],
               description="nflogd test database")
for net, record in spec.items():
    if "autonomous_system_number" in record:
        record = dict(record, autonomous_system_number=MmdbU32(record["autonomous_system_number"]))
    w.insert_network(IPSet([net]), record)
w.to_db_file(out)
