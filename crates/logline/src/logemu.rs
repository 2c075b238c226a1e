//! ulogd2's own LOG-style line: what its PRINTPKT filter builds and its LOGEMU output writes
//! (Debian's default stack), as ulogd2 2.0.8 prints it — not the kernel's line. It differs from
//! the kernel's in ways SIEM parsers were written against: `TOS=00` without `0x`, `SEQ=`/`ACK=`
//! always, no `RES=` and no options, `MARK=0x…` always, IPv6 addresses compressed, a space after
//! the prefix (a prefix ending in one gives two), and `INCOMPLETE` with no space after it.
//!
//! The quirks that are part of that text are kept, so a drop-in writes what ulogd2 wrote:
//! the ICMP extras are chosen by the *code* (`ID=`/`SEQ=` for codes 0 and 8, `PARAMETER=` for
//! 12, `GATEWAY=` for 5, never `MTU=`), ESP and AH are `INCOMPLETE` (ulogd2 never decodes the
//! SPI), and so is SCTP over IPv6. The one ulogd2 bug not copied: it reads ports out of the
//! payload of a non-first IPv4 fragment; here that packet is `INCOMPLETE` too.

use event::{family, PacketEvent};
use packet::{ethertype, icmp, icmpv6, proto, Network, Transport};
use std::io::Write;

/// The header LOGEMU writes before the line: `Nov  3 14:03:57 host ` (local time, ctime's
/// layout, the host name up to its first dot).
pub fn header(local: &chrono::DateTime<chrono::FixedOffset>, host: &str, out: &mut Vec<u8>) {
    let short = host.split('.').next().unwrap_or(host);
    let _ = write!(out, "{} {short} ", local.format("%b %e %H:%M:%S"));
}

/// The line without its header and without the newline.
pub fn render(ev: &PacketEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(ev.prefix.as_bytes());
    out.push(b' ');
    let name = |i: &Option<event::Interface>| i.as_ref().map(|i| i.name.clone());
    let _ = write!(
        out,
        "IN={} OUT={} ",
        name(&ev.indev).as_deref().unwrap_or(""),
        name(&ev.outdev).as_deref().unwrap_or("")
    );
    out.extend_from_slice(b"MAC=");
    match ev.link.as_ref().filter(|l| !l.header.is_empty()) {
        Some(l) => {
            for (i, b) in l.header.iter().enumerate() {
                let sep = if i + 1 == l.header.len() { ' ' } else { ':' };
                let _ = write!(out, "{b:02x}{sep}");
            }
        }
        None => out.push(b' '),
    }
    match ev.family {
        family::IPV4 => ipv4(ev, out),
        family::IPV6 => ipv6(ev, out),
        family::BRIDGE => match ev.hw_protocol {
            ethertype::IPV4 => ipv4(ev, out),
            ethertype::IPV6 => ipv6(ev, out),
            ethertype::ARP => arp(ev, out),
            p => {
                let _ = write!(out, "PROTO={p} ");
            }
        },
        _ => {}
    }
    if let Some(u) = ev.uid {
        let _ = write!(out, "UID={u} ");
    }
    if let Some(g) = ev.gid {
        let _ = write!(out, "GID={g} ");
    }
    let _ = write!(out, "MARK=0x{:x} ", ev.mark);
}

fn ipv4(ev: &PacketEvent, out: &mut Vec<u8>) {
    let Network::Ipv4(ip) = &ev.headers.network else {
        // ulogd2 prints its zeroed keys for an IP header it could not read.
        out.extend_from_slice(b"LEN=0 TOS=00 PREC=0x00 TTL=0 ID=0 PROTO=0 ");
        return;
    };
    let _ = write!(
        out,
        "SRC={} DST={} LEN={} TOS={:02X} PREC=0x{:02X} TTL={} ID={} ",
        ip.src,
        ip.dst,
        ip.total_len,
        ip.tos & 0x1e,
        ip.tos & 0xe0,
        ip.ttl,
        ip.id
    );
    for (bit, word) in [(0x8000, "CE "), (0x4000, "DF "), (0x2000, "MF ")] {
        if ip.frag_field & bit != 0 {
            out.extend_from_slice(word.as_bytes());
        }
    }
    if ip.frag_offset() != 0 {
        let _ = write!(out, "FRAG:{} ", ip.frag_offset());
    }
    match ip.protocol {
        proto::TCP | proto::UDP | proto::SCTP | proto::ESP | proto::AH => {
            transport(ip.protocol, &ip.transport, false, out)
        }
        proto::ICMP => {
            out.extend_from_slice(b"PROTO=ICMP ");
            let Transport::Icmp(m) = &ip.transport else {
                out.extend_from_slice(b"INCOMPLETE");
                return;
            };
            let _ = write!(out, "TYPE={} CODE={} ", m.icmp_type, m.code);
            // ulogd2 switches on the code where it means the type; the keys it reads are
            // zero unless the type set them.
            let gateway = match m.icmp_type {
                icmp::REDIRECT | icmp::PARAMETER_PROBLEM => u32::from_be_bytes(m.rest),
                _ => 0,
            };
            match m.code {
                icmp::ECHO | icmp::ECHO_REPLY => {
                    let (id, seq) = if m.is_echo() {
                        (m.echo_id(), m.echo_seq())
                    } else {
                        (0, 0)
                    };
                    let _ = write!(out, "ID={id} SEQ={seq} ");
                }
                icmp::PARAMETER_PROBLEM => {
                    let _ = write!(out, "PARAMETER={} ", gateway >> 24);
                }
                // A host-order value handed to inet_ntop: the octets come out reversed.
                icmp::REDIRECT => {
                    let _ = write!(
                        out,
                        "GATEWAY={} ",
                        std::net::Ipv4Addr::from(gateway.swap_bytes())
                    );
                }
                _ => {}
            }
        }
        p => {
            let _ = write!(out, "PROTO={p} ");
        }
    }
}

fn ipv6(ev: &PacketEvent, out: &mut Vec<u8>) {
    let Network::Ipv6(ip) = &ev.headers.network else {
        out.extend_from_slice(b"PROTO=0 ");
        return;
    };
    let _ = write!(
        out,
        "SRC={} DST={} LEN={} TC={} HOPLIMIT={} FLOWLBL={} ",
        ip.src,
        ip.dst,
        ip.payload_len as u32 + 40,
        ip.traffic_class,
        ip.hop_limit,
        ip.flow_label
    );
    if let Some((offset, _, id)) = ip.fragment() {
        let _ = write!(out, "FRAG: {offset} ID: {id:08x} ");
    }
    // A walk cut short leaves ulogd2's next-header key unset (zero).
    let truncated = ip.ext.last().is_some_and(|e| {
        matches!(
            e,
            packet::ipv6::ExtHeader::Truncated | packet::ipv6::ExtHeader::FragmentTruncated
        )
    });
    let next = if truncated { 0 } else { ip.protocol };
    match next {
        proto::TCP | proto::UDP | proto::SCTP | proto::ESP | proto::AH => {
            transport(next, &ip.transport, true, out)
        }
        proto::ICMPV6 => {
            out.extend_from_slice(b"PROTO=ICMPv6 ");
            let Transport::Icmpv6(m) = &ip.transport else {
                out.extend_from_slice(b"INCOMPLETE");
                return;
            };
            let _ = write!(out, "TYPE={} CODE={} ", m.icmp_type, m.code);
            if matches!(m.icmp_type, icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY) {
                let _ = write!(out, "ID={} SEQ={} ", m.echo_id(), m.echo_seq());
            }
        }
        p => {
            let _ = write!(out, "PROTO={p} ");
        }
    }
}

/// printpkt_proto: TCP, UDP, SCTP, ESP and AH.
fn transport(protocol: u8, t: &Transport, ipv6: bool, out: &mut Vec<u8>) {
    let name = match protocol {
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::SCTP => "SCTP",
        // ulogd2 names it from the IP protocol key, which its IPv6 walk leaves unset at ESP.
        proto::ESP if !ipv6 => "ESP",
        _ => "AH",
    };
    let _ = write!(out, "PROTO={name} ");
    match t {
        Transport::Tcp(t) if protocol == proto::TCP => {
            let _ = write!(
                out,
                "SPT={} DPT={} SEQ={} ACK={} WINDOW={} ",
                t.sport, t.dport, t.seq, t.ack, t.window
            );
            use packet::tcp::flag::*;
            for (f, w) in [
                (URG, "URG "),
                (ACK, "ACK "),
                (PSH, "PSH "),
                (RST, "RST "),
                (SYN, "SYN "),
                (FIN, "FIN "),
            ] {
                if t.has(f) {
                    out.extend_from_slice(w.as_bytes());
                }
            }
            let _ = write!(out, "URGP={} ", t.urgent);
        }
        Transport::Udp(u) if protocol == proto::UDP => {
            let _ = write!(out, "SPT={} DPT={} LEN={} ", u.sport, u.dport, u.length);
        }
        // ulogd2 decodes SCTP over IPv4 only.
        Transport::Sctp(s) if !ipv6 => {
            let _ = write!(out, "SPT={} DPT={} ", s.sport, s.dport);
        }
        _ => out.extend_from_slice(b"INCOMPLETE"),
    }
}

fn arp(ev: &PacketEvent, out: &mut Vec<u8>) {
    // ulogd2 reads nothing of an ARP packet shorter than Ethernet/IPv4 ARP's 28 bytes.
    let a = match &ev.headers.network {
        Network::Arp(a) if a.addrs.is_some() => Some(a),
        _ => None,
    };
    if let Some(addrs) = a.and_then(|a| a.addrs.as_ref()) {
        let _ = write!(out, "SRC={} DST={} ", addrs.sender_ip, addrs.target_ip);
    }
    out.extend_from_slice(b"PROTO=ARP ");
    let Some(a) = a else { return };
    match a.opcode {
        1 => out.extend_from_slice(b"REQUEST "),
        2 => out.extend_from_slice(b"REPLY "),
        10 => out.extend_from_slice(b"NAK "),
        c => {
            let _ = write!(out, "CODE={c} ");
        }
    }
    if let (2, Some(addrs)) = (a.opcode, a.addrs.as_ref()) {
        let m = addrs.sender_mac;
        let _ = write!(
            out,
            "REPLY_MAC={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
    }
}
