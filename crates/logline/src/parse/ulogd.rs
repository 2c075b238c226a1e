//! ulogd2's PRINTPKT/LOGEMU line (see `crate::logemu`) → PacketEvent. Read when a line is not
//! the kernel's: the two share most tokens, and ulogd2's lines that the kernel parser accepts
//! (UDP, ICMP echo) give the same record either way.

use super::{mac, mac_dump, shared_str, Cur, ParseError, Parsed, R};
use crate::LogFlags;
use arrayvec::ArrayVec;
use event::{family, Interface, LinkHeader, PacketEvent, ARPHRD_ETHER};
use packet::arp::{Arp, ArpAddrs};
use packet::icmp::Icmp;
use packet::icmpv6::Icmpv6;
use packet::ipsec::{Ah, Esp};
use packet::ipv4::Ipv4;
use packet::ipv6::{ExtHeader, Ipv6};
use packet::sctp::Sctp;
use packet::tcp::Tcp;
use packet::udp::Udp;
use packet::{ethertype, proto, Headers, Network, Transport};

/// Parses a line body from the prefix on; `start` is where `IN=` begins.
pub(super) fn parse(line: &str, start: usize) -> Result<Parsed, ParseError> {
    let mut c = Cur {
        s: line,
        pos: start,
        flags: LogFlags::default(),
    };
    // PRINTPKT writes `<prefix> `: the prefix is what comes before that one space.
    let raw = &line[..start];
    let mut ev = PacketEvent::with_prefix(shared_str(raw.strip_suffix(' ').unwrap_or(raw)));
    let iface = |n: &str| {
        (!n.is_empty()).then(|| Interface {
            index: None,
            name: shared_str(n),
            hwtype: None,
        })
    };
    ev.indev = iface(c.field("IN=")?);
    ev.outdev = iface(c.field("OUT=")?);
    let at = c.pos;
    let header: ArrayVec<u8, 32> = mac_dump(c.field("MAC=")?).ok_or(ParseError {
        offset: at,
        reason: "MAC=",
    })?;
    if !header.is_empty() {
        ev.link = Some(LinkHeader {
            hwtype: (header.len() == 14).then_some(ARPHRD_ETHER),
            header,
            ..Default::default()
        });
    }
    if c.peek("SRC=") {
        let token = c.tail()[4..].iter().take_while(|&&b| b != b' ');
        let v6 = token.clone().any(|&b| b == b':');
        if v6 {
            ev.family = family::IPV6;
            ev.hw_protocol = ethertype::IPV6;
            let ip = ipv6(&mut c)?;
            ev.payload_len = ip.payload_len as u32 + 40;
            ev.headers.network = Network::Ipv6(ip);
        } else if is_arp(&c) {
            ev.family = family::BRIDGE;
            ev.hw_protocol = ethertype::ARP;
            ev.headers.network = Network::Arp(arp(&mut c)?);
        } else {
            ev.family = family::IPV4;
            ev.hw_protocol = ethertype::IPV4;
            let ip = ipv4(&mut c)?;
            ev.payload_len = ip.total_len as u32;
            ev.headers.network = Network::Ipv4(ip);
        }
    } else if c.peek("LEN=0 TOS=00 ") {
        // An IPv4 header ulogd2 could not read: its zeroed keys.
        ev.family = family::IPV4;
        ev.hw_protocol = ethertype::IPV4;
        ipv4(&mut c)?;
        ev.headers = Headers {
            network: Network::Truncated {
                ethertype: ethertype::IPV4,
            },
            truncated: true,
            ..Headers::default()
        };
    } else if c.peek("PROTO=") {
        // The bridge family with an ethertype ulogd2 does not decode, in decimal.
        let n: u16 = c.num("PROTO=")?;
        ev.family = family::BRIDGE;
        ev.hw_protocol = n;
        ev.headers.network = Network::Other { ethertype: n };
    } else if let Some(l) = &ev.link {
        // ulogd2 prints nothing of the arp and netdev families' packets.
        if l.header.len() == 14 {
            ev.hw_protocol = u16::from_be_bytes([l.header[12], l.header[13]]);
        }
    }
    if c.peek("UID=") {
        ev.uid = Some(c.num("UID=")?);
    }
    if c.peek("GID=") {
        ev.gid = Some(c.num("GID=")?);
    }
    if c.peek("MARK=") {
        ev.mark = c.hex("MARK=", "0x")?;
    }
    if !c.at_end() {
        return c.err("unexpected text after the packet");
    }
    // What the kernel would need flags for, PRINTPKT always prints.
    let mut flags = LogFlags::default();
    if matches!(ev.headers.transport(), Some(Transport::Tcp(_))) {
        flags = flags | LogFlags(LogFlags::TCPSEQ);
    }
    if ev.uid.is_some() {
        flags = flags | LogFlags(LogFlags::UID);
    }
    Ok(Parsed { event: ev, flags })
}

/// `SRC=a DST=b PROTO=ARP`: the bridge family's ARP line.
fn is_arp(c: &Cur) -> bool {
    let r = c.tail();
    let mut spaces = r.iter().enumerate().filter(|(_, &b)| b == b' ');
    match spaces.nth(1) {
        Some((i, _)) => r[i + 1..].starts_with(b"PROTO=ARP "),
        None => false,
    }
}

/// ulogd2's `INCOMPLETE`, which has no space after it when more follows.
fn incomplete(c: &mut Cur) -> bool {
    if c.eat("INCOMPLETE") {
        c.eat(" ");
        true
    } else {
        false
    }
}

fn ipv4(c: &mut Cur) -> R<Ipv4> {
    let (mut src, mut dst) = (
        std::net::Ipv4Addr::UNSPECIFIED,
        std::net::Ipv4Addr::UNSPECIFIED,
    );
    if c.peek("SRC=") {
        src = c.ipv4_addr("SRC=")?;
        dst = c.ipv4_addr("DST=")?;
    }
    let len: u16 = c.num("LEN=")?;
    let tos: u8 = c.hex("TOS=", "")?;
    let prec: u8 = c.hex("PREC=", "0x")?;
    let ttl: u8 = c.num("TTL=")?;
    let id: u16 = c.num("ID=")?;
    let mut frag_field = 0u16;
    for (word, bit) in [("CE ", 0x8000), ("DF ", 0x4000), ("MF ", 0x2000)] {
        if c.eat(word) {
            frag_field |= bit;
        }
    }
    if c.peek("FRAG:") {
        frag_field |= c.num::<u16>("FRAG:")? & 0x1fff;
    }
    let mut ip = Ipv4 {
        src,
        dst,
        ihl: 5,
        tos: tos | prec,
        total_len: len,
        id,
        frag_field,
        ttl,
        protocol: 0,
        checksum: 0,
        options: ArrayVec::new(),
        options_truncated: false,
        transport: Transport::None,
    };
    let name = c.field("PROTO=")?;
    let later_fragment = ip.is_later_fragment();
    ip.protocol = match name {
        "ICMP" => {
            ip.transport = icmp4(c)?;
            proto::ICMP
        }
        _ => {
            let at = c.pos;
            let p = protocol(name).ok_or(ParseError {
                offset: at,
                reason: "PROTO=",
            })?;
            ip.transport = transport(c, p)?;
            p
        }
    };
    if later_fragment && matches!(ip.transport, Transport::Incomplete { .. }) {
        ip.transport = Transport::Fragment;
    }
    Ok(ip)
}

/// A protocol as PRINTPKT names it: by name for those it decodes, else by number.
fn protocol(name: &str) -> Option<u8> {
    Some(match name {
        "TCP" => proto::TCP,
        "UDP" => proto::UDP,
        "SCTP" => proto::SCTP,
        "ESP" => proto::ESP,
        "AH" => proto::AH,
        "ICMPv6" => proto::ICMPV6,
        n => n.parse().ok()?,
    })
}

/// printpkt_proto's part: TCP, UDP, SCTP, ESP, AH; anything else has nothing after PROTO=.
fn transport(c: &mut Cur, p: u8) -> R<Transport> {
    if !matches!(
        p,
        proto::TCP | proto::UDP | proto::SCTP | proto::ESP | proto::AH
    ) {
        return Ok(Transport::Other);
    }
    if incomplete(c) {
        return Ok(Transport::Incomplete { available: 0 });
    }
    Ok(match p {
        proto::TCP => {
            let sport = c.num("SPT=")?;
            let dport = c.num("DPT=")?;
            let seq = c.num("SEQ=")?;
            let ack = c.num("ACK=")?;
            let window = c.num("WINDOW=")?;
            use packet::tcp::flag::*;
            let mut flags = 0;
            for (word, bit) in [
                ("URG ", URG),
                ("ACK ", ACK),
                ("PSH ", PSH),
                ("RST ", RST),
                ("SYN ", SYN),
                ("FIN ", FIN),
            ] {
                if c.eat(word) {
                    flags |= bit;
                }
            }
            Transport::Tcp(Tcp {
                sport,
                dport,
                seq,
                ack,
                data_offset: 5,
                flags,
                window,
                checksum: 0,
                urgent: c.num("URGP=")?,
                options: ArrayVec::new(),
                options_truncated: false,
            })
        }
        proto::UDP => Transport::Udp(Udp {
            sport: c.num("SPT=")?,
            dport: c.num("DPT=")?,
            length: c.num("LEN=")?,
            checksum: 0,
        }),
        proto::SCTP => Transport::Sctp(Sctp {
            sport: c.num("SPT=")?,
            dport: c.num("DPT=")?,
            verification_tag: 0,
            checksum: 0,
        }),
        proto::ESP => Transport::Esp(Esp {
            spi: c.hex("SPI=", "0x")?,
            seq: 0,
        }),
        _ => Transport::Ah(Ah {
            next_header: 0,
            header_len: 0,
            spi: c.hex("SPI=", "0x")?,
            seq: 0,
        }),
    })
}

fn icmp4(c: &mut Cur) -> R<Transport> {
    if incomplete(c) {
        return Ok(Transport::Incomplete { available: 0 });
    }
    let mut m = Icmp {
        icmp_type: c.num("TYPE=")?,
        code: c.num("CODE=")?,
        checksum: 0,
        rest: [0; 4],
        available: 8,
        quoted: None,
    };
    // ulogd2 picks these by the code; they carry the packet's values only where the type
    // gave them (see crate::logemu).
    if c.peek("ID=") {
        let id: u16 = c.num("ID=")?;
        let seq: u16 = c.num("SEQ=")?;
        if m.is_echo() {
            m.rest[..2].copy_from_slice(&id.to_be_bytes());
            m.rest[2..].copy_from_slice(&seq.to_be_bytes());
        }
    } else if c.peek("PARAMETER=") {
        // Both types fill ulogd2's gateway key, from which it prints the parameter.
        let p: u8 = c.num("PARAMETER=")?;
        if matches!(
            m.icmp_type,
            packet::icmp::PARAMETER_PROBLEM | packet::icmp::REDIRECT
        ) {
            m.rest[0] = p;
        }
    } else if c.peek("GATEWAY=") {
        let g = c.ipv4_addr("GATEWAY=")?;
        if matches!(
            m.icmp_type,
            packet::icmp::PARAMETER_PROBLEM | packet::icmp::REDIRECT
        ) {
            let mut o = g.octets();
            o.reverse();
            m.rest = o;
        }
    } else if c.peek("MTU=") {
        m.rest[2..].copy_from_slice(&c.num::<u16>("MTU=")?.to_be_bytes());
    }
    Ok(Transport::Icmp(m))
}

fn ipv6(c: &mut Cur) -> R<Ipv6> {
    let mut ip = super::ipv6_fixed(c)?;
    if c.peek("FRAG: ") {
        let offset: u16 = c.num("FRAG: ")?;
        let id: u32 = c.hex("ID: ", "")?;
        ip.ext.push(ExtHeader::Fragment {
            offset,
            more: false,
            id,
        });
        ip.next_header = proto::FRAGMENT;
    }
    let name = c.field("PROTO=")?;
    let at = c.pos;
    let p = protocol(name).ok_or(ParseError {
        offset: at,
        reason: "PROTO=",
    })?;
    ip.protocol = p;
    if ip.ext.is_empty() {
        ip.next_header = p;
    }
    ip.transport = if p == proto::ICMPV6 {
        if incomplete(c) {
            Transport::Incomplete { available: 0 }
        } else {
            let mut m = Icmpv6 {
                icmp_type: c.num("TYPE=")?,
                code: c.num("CODE=")?,
                checksum: 0,
                rest: [0; 4],
                available: 8,
                quoted: None,
            };
            if c.peek("ID=") {
                m.rest[..2].copy_from_slice(&c.num::<u16>("ID=")?.to_be_bytes());
                m.rest[2..].copy_from_slice(&c.num::<u16>("SEQ=")?.to_be_bytes());
            }
            Transport::Icmpv6(m)
        }
    } else {
        transport(c, p)?
    };
    if ip.is_later_fragment() && matches!(ip.transport, Transport::Incomplete { .. }) {
        ip.transport = Transport::Fragment;
    }
    Ok(ip)
}

fn arp(c: &mut Cur) -> R<Arp> {
    let sender_ip = c.ipv4_addr("SRC=")?;
    let target_ip = c.ipv4_addr("DST=")?;
    c.expect("PROTO=ARP ")?;
    let opcode = if c.eat("REQUEST ") {
        1
    } else if c.eat("REPLY ") {
        2
    } else if c.eat("NAK ") {
        10
    } else {
        c.num("CODE=")?
    };
    let mut sender_mac = [0; 6];
    if c.peek("REPLY_MAC=") {
        let at = c.pos;
        sender_mac = mac(c.field("REPLY_MAC=")?).ok_or(ParseError {
            offset: at,
            reason: "REPLY_MAC=",
        })?;
    }
    Ok(Arp {
        htype: 1,
        ptype: ethertype::IPV4,
        hlen: 6,
        plen: 4,
        opcode,
        addrs: Some(ArpAddrs {
            sender_mac,
            sender_ip,
            target_mac: [0; 6],
            target_ip,
        }),
        available_after_header: 20,
    })
}
