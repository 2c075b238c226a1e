#!/usr/bin/env python3
"""Writes N kernel LOG lines in kern.log form with the diversity of a real firewall: many source
addresses (IPv4 and IPv6), ports, interfaces, prefixes and protocols, 1000 lines a second.
The same seed gives the same file, so both sides of a benchmark read the same input.

usage: bench/corpus.py N [SEED] > kern.log
"""
import random
import sys

n = int(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
ifaces = [f"eth{i}" for i in range(4)] + [f"enp{i}s0" for i in range(8)] + [f"vlan{i}" for i in range(100, 140)] + ["wg0", "ppp0", "br-lan"]
prefixes = ["IPTABLES: DROP ", "IPTABLES: ACCEPT ", "IPTables/Dropped: ", "[UFW BLOCK] ", "[UFW AUDIT] ", "FW-IN-DROP: ",
            "FW-FWD-ACCEPT: ", "nft-drop-inbound ", "REJECT-SSH ", "INVALID ", "[WAN_IN-default-D]", "[LAN_LOCAL-2000-A]"]
prefixes += [f"rule{i:03d}: " for i in range(40)]
hosts = [f"fw{i}" for i in range(1, 9)]


def mac():
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def v4(private=False):
    if private:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{rng.choice([23, 45, 61, 77, 89, 103, 141, 185, 193, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def v6():
    # The kernel prints IPv6 addresses in full (%pI6): eight groups of four digits.
    return "2001:0db8:" + ":".join(f"{rng.randrange(65536):04x}" for _ in range(6))


def transport(proto):
    if proto == "TCP":
        flags = rng.choice(["SYN ", "ACK ", "ACK PSH ", "ACK FIN ", "RST ", "ACK SYN "])
        return (f"PROTO=TCP SPT={rng.randrange(1024, 65536)} DPT={rng.choice([22, 80, 443, 3389, 8080, 25, 53] + [rng.randrange(1, 65536)])} "
                f"WINDOW={rng.randrange(65536)} RES=0x00 {flags}URGP=0 ")
    if proto == "UDP":
        return f"PROTO=UDP SPT={rng.randrange(1024, 65536)} DPT={rng.choice([53, 123, 161, 500, 1900, rng.randrange(1, 65536)])} LEN={rng.randrange(8, 1400)} "
    return f"PROTO=ICMP TYPE=8 CODE=0 ID={rng.randrange(65536)} SEQ={rng.randrange(65536)} "


out = sys.stdout
for i in range(n):
    s = i // 1000
    head = f"Nov 23 {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d} {rng.choice(hosts)} kernel: [{1000 + s}.{i % 1000000:06d}] "
    iface = rng.choice(ifaces)
    proto = rng.choices(["TCP", "UDP", "ICMP"], [6, 3, 1])[0]
    if rng.random() < 0.15:
        body = (f"IN={iface} OUT= MAC={mac()}:{mac()}:86:dd SRC={v6()} DST={v6()} LEN={rng.randrange(40, 1500)} TC=0 "
                f"HOPLIMIT={rng.randrange(1, 256)} FLOWLBL={rng.randrange(1 << 20)} "
                + transport("TCP" if proto == "ICMP" else proto))
    else:
        df = "DF " if rng.random() < 0.6 else ""
        body = (f"IN={iface} OUT= MAC={mac()}:{mac()}:08:00 SRC={v4()} DST={v4(True)} LEN={rng.randrange(28, 1500)} "
                f"TOS=0x00 PREC=0x00 TTL={rng.randrange(1, 256)} ID={rng.randrange(65536)} {df}" + transport(proto))
    out.write(head + rng.choice(prefixes) + body + "\n")
