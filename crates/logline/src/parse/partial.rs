//! The last resort for a netfilter line that is neither the kernel's nor ulogd2's layout (a
//! device's own variant, an older version, a line cut short): every `KEY=value` token that can
//! be read is taken, in any order, and the record is marked partial. Addresses are required;
//! everything else is kept when present and readable.

use super::{mac, mac_dump, shared_str, ParseError, Parsed};
use crate::LogFlags;
use arrayvec::ArrayVec;
use event::{family, Interface, LinkHeader, PacketEvent, ARPHRD_ETHER};
use packet::icmp::Icmp;
use packet::icmpv6::Icmpv6;
use packet::ipv4::Ipv4;
use packet::ipv6::Ipv6;
use packet::sctp::Sctp;
use packet::tcp::Tcp;
use packet::udp::Udp;
use packet::{ethertype, proto, Network, Transport};
use std::net::IpAddr;

/// What the tokens said; each field is the first readable value of its key.
#[derive(Default)]
struct Fields<'a> {
    indev: Option<&'a str>,
    outdev: Option<&'a str>,
    mac: Option<ArrayVec<u8, 32>>,
    macsrc: Option<[u8; 6]>,
    macdst: Option<[u8; 6]>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    len: Option<u32>,
    l4_len: Option<u16>,
    tos: Option<u8>,
    prec: Option<u8>,
    tc: Option<u8>,
    ttl: Option<u8>,
    id: Option<u16>,
    flow: Option<u32>,
    frag: u16,
    protocol: Option<&'a str>,
    sport: Option<u16>,
    dport: Option<u16>,
    seq: Option<u32>,
    ack: Option<u32>,
    window: Option<u16>,
    urgp: Option<u16>,
    tcp_flags: u16,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_id: Option<u16>,
    icmp_seq: Option<u16>,
    uid: Option<u32>,
    gid: Option<u32>,
    mark: Option<u32>,
}

fn hex(v: &str) -> Option<u64> {
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u64::from_str_radix(v, 16).ok()
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_none() {
        *slot = v;
    }
}

/// `start` is where `IN=` begins; the prefix is the text before it (less the one space
/// PRINTPKT adds, with `printpkt_space`).
pub(super) fn parse(line: &str, start: usize, printpkt_space: bool) -> Result<Parsed, ParseError> {
    let mut f = Fields::default();
    let body = &line[start..];
    for token in body.split(' ').filter(|t| !t.is_empty()) {
        let Some((key, v)) = token.split_once('=') else {
            use packet::tcp::flag::*;
            match token {
                "SYN" => f.tcp_flags |= SYN,
                "ACK" => f.tcp_flags |= ACK,
                "FIN" => f.tcp_flags |= FIN,
                "RST" => f.tcp_flags |= RST,
                "PSH" => f.tcp_flags |= PSH,
                "URG" => f.tcp_flags |= URG,
                "ECE" => f.tcp_flags |= ECE,
                "CWR" => f.tcp_flags |= CWR,
                "DF" => f.frag |= 0x4000,
                "MF" => f.frag |= 0x2000,
                "CE" => f.frag |= 0x8000,
                _ => {}
            }
            continue;
        };
        let after_proto = f.protocol.is_some();
        match key {
            "IN" => set(&mut f.indev, Some(v)),
            "OUT" => set(&mut f.outdev, Some(v)),
            "MAC" => set(&mut f.mac, mac_dump(v)),
            "MACSRC" => set(&mut f.macsrc, mac(v)),
            "MACDST" => set(&mut f.macdst, mac(v)),
            // The first SRC/DST pair is the packet's; later ones belong to a quoted header.
            "SRC" => set(&mut f.src, v.parse().ok()),
            "DST" => set(&mut f.dst, v.parse().ok()),
            "LEN" if after_proto => set(&mut f.l4_len, v.parse().ok()),
            "LEN" => set(&mut f.len, v.parse().ok()),
            "TOS" => set(&mut f.tos, hex(v).and_then(|n| u8::try_from(n).ok())),
            "PREC" => set(&mut f.prec, hex(v).and_then(|n| u8::try_from(n).ok())),
            "TC" => set(&mut f.tc, v.parse().ok()),
            "TTL" | "HOPLIMIT" => set(&mut f.ttl, v.parse().ok()),
            "ID" if after_proto => set(&mut f.icmp_id, v.parse().ok()),
            "ID" => set(&mut f.id, v.parse().ok()),
            "FLOWLBL" => set(&mut f.flow, v.parse().ok()),
            "FRAG" => f.frag |= v.parse::<u16>().map_or(0, |n| n & 0x1fff),
            "PROTO" => set(&mut f.protocol, Some(v)),
            "SPT" => set(&mut f.sport, v.parse().ok()),
            "DPT" => set(&mut f.dport, v.parse().ok()),
            "SEQ" if f.protocol.is_some_and(|p| p.starts_with("ICMP")) => {
                set(&mut f.icmp_seq, v.parse().ok())
            }
            "SEQ" => set(&mut f.seq, v.parse().ok()),
            "ACK" => set(&mut f.ack, v.parse().ok()),
            "WINDOW" => set(&mut f.window, v.parse().ok()),
            "URGP" => set(&mut f.urgp, v.parse().ok()),
            "TYPE" => set(&mut f.icmp_type, v.parse().ok()),
            "CODE" => set(&mut f.icmp_code, v.parse().ok()),
            "UID" => set(&mut f.uid, v.parse().ok()),
            "GID" => set(&mut f.gid, v.parse().ok()),
            "MARK" => set(&mut f.mark, hex(v).and_then(|n| u32::try_from(n).ok())),
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (f.src, f.dst) else {
        return Err(ParseError {
            offset: start,
            reason: "no readable SRC= and DST=",
        });
    };
    let mut raw = &line[..start];
    if printpkt_space {
        raw = raw.strip_suffix(' ').unwrap_or(raw);
    }
    let mut ev = PacketEvent::with_prefix(shared_str(raw));
    ev.partial = true;
    let iface = |n: Option<&str>| {
        n.filter(|n| !n.is_empty() && n.len() <= 15)
            .map(|n| Interface {
                index: None,
                name: shared_str(n),
                hwtype: None,
            })
    };
    ev.indev = iface(f.indev);
    ev.outdev = iface(f.outdev);
    ev.uid = f.uid;
    ev.gid = f.gid;
    ev.mark = f.mark.unwrap_or(0);
    let mut header: ArrayVec<u8, 32> = f.mac.clone().unwrap_or_default();
    if let (true, Some(s), Some(d)) = (header.is_empty(), f.macsrc, f.macdst) {
        header.extend(d);
        header.extend(s);
    }
    if !header.is_empty() {
        ev.link = Some(LinkHeader {
            hwtype: (header.len() >= 12).then_some(ARPHRD_ETHER),
            header,
            ..Default::default()
        });
    }
    let name = f.protocol.unwrap_or("");
    let protocol = match name {
        "ICMPv6" | "ICMPV6" => proto::ICMPV6,
        n => proto::by_name(n).unwrap_or(0),
    };
    let transport = transport(&f, protocol);
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            ev.family = family::IPV4;
            ev.hw_protocol = ethertype::IPV4;
            let total_len = f.len.unwrap_or(0).min(u16::MAX as u32) as u16;
            ev.payload_len = total_len as u32;
            ev.headers.network = Network::Ipv4(Ipv4 {
                src,
                dst,
                ihl: 5,
                tos: f.tos.unwrap_or(0) | f.prec.unwrap_or(0),
                total_len,
                id: f.id.unwrap_or(0),
                frag_field: f.frag,
                ttl: f.ttl.unwrap_or(0),
                protocol,
                checksum: 0,
                options: ArrayVec::new(),
                options_truncated: false,
                transport,
            });
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            ev.family = family::IPV6;
            ev.hw_protocol = ethertype::IPV6;
            let payload_len = f.len.unwrap_or(40).saturating_sub(40).min(u16::MAX as u32) as u16;
            ev.payload_len = payload_len as u32 + 40;
            ev.headers.network = Network::Ipv6(Ipv6 {
                src,
                dst,
                payload_len,
                traffic_class: f.tc.unwrap_or(0),
                flow_label: f.flow.unwrap_or(0),
                hop_limit: f.ttl.unwrap_or(0),
                next_header: protocol,
                ext: ArrayVec::new(),
                protocol,
                transport,
            });
        }
        _ => {
            return Err(ParseError {
                offset: start,
                reason: "SRC= and DST= of different families",
            })
        }
    }
    Ok(Parsed {
        event: ev,
        flags: LogFlags::default(),
    })
}

fn transport(f: &Fields, protocol: u8) -> Transport {
    let incomplete = Transport::Incomplete { available: 0 };
    let ports = f.sport.zip(f.dport);
    match protocol {
        proto::TCP => match ports {
            Some((sport, dport)) => Transport::Tcp(Tcp {
                sport,
                dport,
                seq: f.seq.unwrap_or(0),
                ack: f.ack.unwrap_or(0),
                data_offset: 5,
                flags: f.tcp_flags,
                window: f.window.unwrap_or(0),
                checksum: 0,
                urgent: f.urgp.unwrap_or(0),
                options: ArrayVec::new(),
                options_truncated: false,
            }),
            None => incomplete,
        },
        proto::UDP | proto::UDPLITE => match ports {
            Some((sport, dport)) => Transport::Udp(Udp {
                sport,
                dport,
                length: f.l4_len.unwrap_or(0),
                checksum: 0,
            }),
            None => incomplete,
        },
        proto::SCTP => match ports {
            Some((sport, dport)) => Transport::Sctp(Sctp {
                sport,
                dport,
                verification_tag: 0,
                checksum: 0,
            }),
            None => incomplete,
        },
        proto::ICMP | proto::ICMPV6 => match (f.icmp_type, f.icmp_code) {
            (Some(t), c) => {
                let mut rest = [0; 4];
                if let (Some(id), Some(seq)) = (f.icmp_id, f.icmp_seq) {
                    rest[..2].copy_from_slice(&id.to_be_bytes());
                    rest[2..].copy_from_slice(&seq.to_be_bytes());
                }
                if protocol == proto::ICMP {
                    Transport::Icmp(Icmp {
                        icmp_type: t,
                        code: c.unwrap_or(0),
                        checksum: 0,
                        rest,
                        available: 8,
                        quoted: None,
                    })
                } else {
                    Transport::Icmpv6(Icmpv6 {
                        icmp_type: t,
                        code: c.unwrap_or(0),
                        checksum: 0,
                        rest,
                        available: 8,
                        quoted: None,
                    })
                }
            }
            _ => incomplete,
        },
        0 => Transport::None,
        _ => Transport::Other,
    }
}
