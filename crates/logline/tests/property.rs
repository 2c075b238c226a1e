//! Property: for any packet the decoder produces — including truncated, mutated and nonsense
//! ones — rendering the kernel LOG line, parsing it, and rendering again gives the same line.
//! Deterministic pseudo-random cases (xorshift), so a failure reproduces.

use event::{family, Interface, LinkHeader, PacketEvent};
use logline::{parse, render, LogFlags};
use std::sync::Arc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(l4);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(rest);
    let len = rest.len() as u16;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p
}

fn templates() -> Vec<(u8, Vec<u8>)> {
    let tcp = [
        0x04, 0x57, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0x20, 0, 0, 0, 0, 0, 2, 4, 5,
        0xb4,
    ];
    let udp = [0x13, 0x88, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4];
    let echo = [8, 0, 0, 0, 0, 7, 0, 1];
    let err4 = [&[3u8, 4, 0, 0, 0, 0, 5, 0xdc][..], &ipv4(17, &udp)[..]].concat();
    let echo6 = [128, 0, 0, 0, 0, 7, 0, 1];
    let err6 = [&[2u8, 0, 0, 0, 0, 0, 5, 0xdc][..], &ipv6(17, &udp)[..]].concat();
    let frag6 = [&[17u8, 0, 0x04, 0xd1, 0xab, 0xcd, 0xef, 0x01][..], &udp[..]].concat();
    let hbh = [&[6u8, 0, 1, 4, 0, 0, 0, 0][..], &tcp[..]].concat();
    let ah6 = [
        &[
            6u8, 4, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
        &tcp[..],
    ]
    .concat();
    let arp = [
        0u8, 1, 8, 0, 6, 4, 0, 1, 2, 2, 2, 2, 2, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];
    vec![
        (family::IPV4, ipv4(6, &tcp)),
        (family::IPV4, ipv4(17, &udp)),
        (family::IPV4, ipv4(136, &udp)),
        (family::IPV4, ipv4(1, &echo)),
        (family::IPV4, ipv4(1, &err4)),
        (family::IPV4, ipv4(50, &[0, 0, 0x12, 0x34, 0, 0, 0, 1])),
        (
            family::IPV4,
            ipv4(
                51,
                &[17, 4, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0],
            ),
        ),
        (
            family::IPV4,
            ipv4(132, &[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        (family::IPV6, ipv6(6, &tcp)),
        (family::IPV6, ipv6(58, &echo6)),
        (family::IPV6, ipv6(58, &err6)),
        (family::IPV6, ipv6(44, &frag6)),
        (family::IPV6, ipv6(0, &hbh)),
        (family::IPV6, ipv6(51, &ah6)),
        (family::IPV6, ipv6(50, &[0, 0, 0x20, 0x02, 0, 0, 0, 1])),
        (family::ARP, arp.to_vec()),
    ]
}

#[test]
fn render_parse_render_is_stable() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = templates();
    let prefixes = [
        "",
        "IPTABLES: DROP ",
        "IPTables/Dropped: ",
        "[UFW BLOCK] ",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Shorewall:net2fw:DROP:",
        "TRACE: raw:PREROUTING:policy:2 ",
        "x y z ",
    ];
    let names = ["eth0", "vb", "br0", "eth0.90", "wg-home", "lo"];
    let mut failures = Vec::new();
    for case in 0..30_000 {
        let (fam, base) = rng.pick(&t).clone();
        let mut bytes = base.clone();
        // Mutate a few bytes, sometimes cut the packet short.
        for _ in 0..rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            let cut = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(cut);
        }
        let ethertype: u16 = match fam {
            family::IPV4 => 0x0800,
            family::IPV6 => 0x86dd,
            _ => 0x0806,
        };
        let flags = LogFlags((rng.next() as u8) & 0x2f);
        let mut link = LinkHeader {
            hwtype: Some(1),
            ..Default::default()
        };
        for _ in 0..12 {
            link.header.push(rng.next() as u8);
        }
        link.header.extend(ethertype.to_be_bytes());
        let has_in = rng.below(4) != 0;
        let iface = |n: &&str| Interface {
            index: None,
            name: Arc::from(*n),
            hwtype: Some(1),
        };
        let ev = PacketEvent {
            family: fam,
            hw_protocol: ethertype,
            prefix: Arc::from(*rng.pick(&prefixes)),
            indev: has_in.then(|| iface(rng.pick(&names))),
            outdev: (!has_in || rng.below(2) == 0).then(|| iface(rng.pick(&names))),
            link: has_in.then_some(link),
            mark: if rng.below(2) == 0 {
                0
            } else {
                rng.next() as u32
            },
            uid: Some(1000),
            gid: Some(1000),
            payload_len: bytes.len() as u32,
            headers: packet::decode_ethertype(ethertype, &bytes),
            ..Default::default()
        };
        let mut first = Vec::new();
        render(&ev, flags, &mut first);
        let line = String::from_utf8(first).unwrap();
        match parse(&line) {
            Ok(p) => {
                let mut again = Vec::new();
                render(&p.event, p.flags, &mut again);
                let again = String::from_utf8(again).unwrap();
                if again != line {
                    failures.push(format!(
                        "case {case}:\n  line:  {line:?}\n  again: {again:?}"
                    ));
                }
            }
            Err(e) => failures.push(format!("case {case}: {e}\n  line: {line:?}")),
        }
        if failures.len() >= 10 {
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
