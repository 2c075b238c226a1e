#!/usr/bin/python3
"""Sends the lab's crafted packet set: every protocol and edge the LOG format and the decoders
care about. Usage: craft.py IFACE DST4 DST6. Run inside the sender namespace."""
import struct
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import (AH, ARP, ESP, GRE, Dot1AD, Dot1Q, ICMP, IP, SCTP, TCP, UDP, Ether, ICMPv6DestUnreach,
                       ICMPv6EchoRequest, ICMPv6MLReport, ICMPv6ND_NS, ICMPv6PacketTooBig,
                       ICMPv6ParamProblem, ICMPv6TimeExceeded, IPOption, IPOption_LSRR,
                       IPOption_Router_Alert, IPOption_RR, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, Raw, conf, fragment, fragment6, get_if_hwaddr,
                       getmacbyip, getmacbyip6, sendp)

iface, dst4, dst6 = sys.argv[1], sys.argv[2], sys.argv[3]
conf.verb = 0
src4, src6 = "10.200.0.1", "fd00:200::1"
mac = get_if_hwaddr(iface)
dmac4 = getmacbyip(dst4) or "ff:ff:ff:ff:ff:ff"
dmac6 = getmacbyip6(dst6) or "33:33:00:00:00:01"
e4 = Ether(src=mac, dst=dmac4)
e6 = Ether(src=mac, dst=dmac6)
v4 = lambda **kw: IP(src=src4, dst=dst4, ttl=99, **kw)
v6 = lambda **kw: IPv6(src=src6, dst=dst6, hlim=99, **kw)
quoted4 = IP(src=dst4, dst="10.200.0.66", ttl=5, id=4242)
quoted6 = IPv6(src=dst6, dst="fd00:200::66", hlim=3)
syn_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)]

pkts = [
    # IPv4 TCP: SYN with options, every flag and reserved bit, data with timestamps.
    e4 / v4(id=1) / TCP(sport=1111, dport=22, seq=1, flags="S", options=syn_opts),
    e4 / v4(id=2) / TCP(sport=1111, dport=2222, seq=1, ack=2, flags=0x1FF, reserved=7, urgptr=7, window=1000),
    e4 / v4(id=3) / TCP(sport=1234, dport=80, seq=100, ack=200, flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / Raw(b"GET / HTTP/1.0\r\n"),
    e4 / v4(id=4, proto=6) / Raw(b"\x04\x57\x00"),
    e4 / v4(id=5) / TCP(sport=1234, dport=80, flags="S", dataofs=15),
    # IPv4 UDP, UDP-Lite, header flags, options, TOS, fragments.
    e4 / v4(id=6) / UDP(sport=5353, dport=5353) / Raw(b"hello"),
    e4 / v4(id=7, proto=17) / Raw(b"\x1a\x0a\x00\x35"),
    e4 / v4(id=8, proto=136) / Raw(struct.pack("!HHHH", 3333, 4444, 12, 0) + b"abcd"),
    e4 / v4(id=9, options=[IPOption_RR()]) / UDP(sport=7777, dport=8888),
    # Decoded IPv4 options: router alert, a loose source route, timestamps (two of three taken).
    e4 / v4(id=32, options=[IPOption_Router_Alert()]) / UDP(sport=7777, dport=8888),
    e4 / v4(id=33, options=[IPOption_LSRR(routers=["10.200.0.7", "10.200.0.8"])]) / UDP(sport=7777, dport=8888),
    e4 / v4(id=34, options=[IPOption(b"\x44\x10\x0d\x00" + struct.pack("!III", 1000, 2000, 0))]) / UDP(sport=7777, dport=8888),
    # TCP selective acknowledgement blocks.
    e4 / v4(id=35) / TCP(sport=1234, dport=80, seq=5, ack=6, flags="A", options=[("NOP", None), ("NOP", None), ("SAck", (100, 200, 300, 400))]),
    e4 / v4(id=10, flags="evil") / UDP(sport=7, dport=7),
    e4 / v4(id=11, tos=0xB9) / UDP(sport=8, dport=8),
    *[e4 / f for f in fragment(v4(id=777) / UDP(sport=9999, dport=9999) / Raw(b"x" * 3000), fragsize=1480)],
    # ICMP: echo, errors quoting a header, redirect, parameter problem, short and odd ones.
    e4 / v4(id=12) / ICMP(type=8, id=9, seq=9),
    e4 / v4(id=13) / ICMP(type=3, code=3) / quoted4 / UDP(sport=5555, dport=53) / Raw(b"12345678"),
    e4 / v4(id=14) / ICMP(type=3, code=4, nexthopmtu=1280) / quoted4 / ICMP(type=8, id=5, seq=6),
    e4 / v4(id=15) / ICMP(type=11, code=0) / quoted4 / TCP(sport=40000, dport=443, flags="S"),
    e4 / v4(id=16) / ICMP(type=5, code=1, gw="10.200.0.3") / quoted4 / UDP(sport=5555, dport=53),
    e4 / v4(id=17) / ICMP(type=12, code=0, ptr=20) / quoted4 / UDP(sport=1, dport=2),
    e4 / v4(id=18) / ICMP(type=4, code=0) / quoted4 / UDP(sport=5555, dport=53),
    e4 / v4(id=19) / ICMP(type=3, code=1) / IP(src=dst4, dst="10.200.0.66", len=1500, proto=6) / Raw(b"\x00\x01\x00\x02\x00\x00\x00\x00"),
    e4 / v4(id=20, proto=1) / Raw(b"\x08\x00\x00"),
    e4 / v4(id=21) / ICMP(type=13, code=0),
    e4 / v4(id=22) / ICMP(type=14, code=0) / Raw(b"\x00" * 12),
    e4 / v4(id=23, options=[IPOption_RR()]) / ICMP(type=8, id=7, seq=1),
    e4 / v4(id=24) / ICMP(type=3, code=2) / quoted4 / ESP(spi=0x1234, seq=1),
    # IPv4 IPsec, SCTP, GRE, unknown protocol.
    e4 / v4(id=25) / ESP(spi=0x1234, seq=1) / Raw(b"\x00" * 16),
    e4 / v4(id=26) / AH(spi=0xDEADBEEF, seq=1, nh=17, payloadlen=4, icv=b"\x00" * 12) / UDP(sport=1, dport=2),
    e4 / v4(id=27) / SCTP(sport=3868, dport=3868, tag=0xAABBCCDD),
    e4 / v4(id=28) / GRE(key_present=1, key=0x42, proto=0x0800) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(),
    e4 / v4(id=29, proto=253) / Raw(b"\x01\x02"),
    # IPv6: TCP with TC and flow label, UDP, echo, extension headers, fragments, IPsec.
    e6 / v6(tc=0xB8, fl=0x12345) / TCP(sport=1111, dport=22, flags="S", options=syn_opts),
    e6 / v6() / UDP(sport=5353, dport=5353) / Raw(b"hello"),
    e6 / v6() / ICMPv6EchoRequest(id=77, seq=3),
    e6 / v6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / TCP(sport=1, dport=2, flags="S"),
    *[e6 / f for f in fragment6(v6() / IPv6ExtHdrFragment(id=0xABCDEF01) / UDP(sport=4000, dport=4001) / Raw(b"y" * 2000), 1280)],
    e6 / v6() / AH(spi=0x1001, nh=6, payloadlen=4, icv=b"\x00" * 12) / TCP(sport=3, dport=4, flags="S"),
    e6 / v6() / ESP(spi=0x2002, seq=1) / Raw(b"\x00" * 16),
    # ICMPv6 errors with the quoted packet, MLD, neighbour solicitation, short and odd ones.
    e6 / v6() / ICMPv6DestUnreach(code=4) / quoted6 / UDP(sport=40003, dport=9),
    e6 / v6() / ICMPv6PacketTooBig(mtu=1280) / quoted6 / ICMPv6EchoRequest(id=1, seq=1),
    e6 / v6() / ICMPv6TimeExceeded() / quoted6 / UDP(sport=1, dport=2),
    e6 / v6() / ICMPv6ParamProblem(ptr=40) / quoted6 / UDP(sport=1, dport=2),
    e6 / v6() / ICMPv6MLReport(),
    e6 / v6() / ICMPv6ND_NS(tgt="fd00:200::99"),
    e6 / v6(nh=6) / Raw(b"\x00\x01\x00"),
    e6 / v6(nh=58) / Raw(b"\x80"),
    e6 / v6() / SCTP(sport=1, dport=2),
    # Layer 2 (seen by ingress/bridge hooks): ARP, 802.1Q with priority, QinQ, LLDP.
    Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=src4, pdst=dst4),
    Ether(src=mac, dst=dmac4) / Dot1Q(vlan=7, prio=5) / v4(id=30) / UDP(sport=1000, dport=2000),
    Ether(src=mac, dst=dmac4) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / v4(id=31) / UDP(sport=1000, dport=2000),
    Ether(src=mac, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 20),
]
sendp(pkts, iface=iface, inter=0.002)
print(len(pkts))
