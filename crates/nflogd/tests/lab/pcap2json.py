#!/usr/bin/python3
"""Prints each frame of a pcap file as one JSON line, decoded by scapy: the reference the
layer-2 records are checked against. Usage: pcap2json.py FILE."""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import ARP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, rdpcap

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
    for l4 in (TCP, UDP):
        if l4 in f and not tunnelled:
            out["ports"] = [f[l4].sport, f[l4].dport]
            break
    print(json.dumps(out))
