#!/usr/bin/python3
"""Prints each frame of a pcap file as one JSON line, decoded by scapy: the reference the
layer-2 records are checked against. Usage: pcap2json.py FILE."""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import (AH, ARP, IP, SCTP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, rdpcap)

# The Community ID reference implementation (PyPI `communityid`, installed by scripts/deps).
import communityid

CID = communityid.CommunityID(0)
V6_EXT = (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment, AH)


def community_id(f):
    """The reference Community ID of an IP frame: the transport right after the IP header
    (IPv6: after its extension headers), as Suricata reads it."""
    ip = f[IP] if IP in f else f[IPv6]
    src, dst = ip.src, ip.dst
    if IP in f:
        proto, l4 = ip.proto, ip.payload
        if ip.frag > 0:
            l4 = None
    else:
        proto, l4 = ip.nh, ip.payload
        while isinstance(l4, V6_EXT):
            if isinstance(l4, IPv6ExtHdrFragment) and l4.offset > 0:
                proto, l4 = l4.nh, None
                break
            proto, l4 = l4.nh, l4.payload
    raw = bytes(l4) if l4 is not None else b""
    if proto in (6, 17, 132) and isinstance(l4, (TCP, UDP, SCTP)):
        t = communityid.FlowTuple(proto, src, dst, l4.sport, l4.dport)
    elif proto in (1, 58) and len(raw) >= 4:
        # Type and code from the bytes: not every scapy ICMPv6 class names a `code` field.
        make = communityid.FlowTuple.make_icmp if proto == 1 else communityid.FlowTuple.make_icmp6
        t = make(src, dst, raw[0], raw[1])
    elif proto in (1, 6, 17, 58, 132):
        # A port protocol without its header (cut short, a later fragment): the spec has no
        # ID for it.
        return None
    else:
        t = communityid.FlowTuple(proto, src, dst)
    return CID.calc(t)

for f in rdpcap(sys.argv[1]):
    out = {"src": f[Ether].src, "dst": f[Ether].dst, "vlans": [], "type": f[Ether].type}
    layer = f[Ether].payload
    while isinstance(layer, (Dot1Q, Dot1AD)):
        out["vlans"].append(layer.vlan)
        out["type"] = layer.type
        layer = layer.payload
    if ARP in f:
        a = f[ARP]
        out["arp"] = {"hwtype": a.hwtype, "ptype": a.ptype, "op": a.op, "hwsrc": a.hwsrc,
                      "psrc": a.psrc, "hwdst": a.hwdst, "pdst": a.pdst}
    for ip in (IP, IPv6):
        if ip in f:
            out["ip"] = {"src": f[ip].src, "dst": f[ip].dst,
                         "proto": f[ip].proto if ip is IP else f[ip].nh}
            # IPv6 extension headers (and AH) before the transport: its number is not nh.
            if ip is IPv6 and f[ip].nh in (0, 43, 44, 51, 60):
                out["ip"]["proto"] = None
            break
    tunnelled = f.getlayer(IP, 2) is not None or f.getlayer(IPv6, 2) is not None
    if IP in f or IPv6 in f:
        cid = community_id(f)
        if cid:
            out["community_id"] = cid
    for l4 in (TCP, UDP):
        if l4 in f and not tunnelled:
            out["ports"] = [f[l4].sport, f[l4].dport]
            break
    print(json.dumps(out))
