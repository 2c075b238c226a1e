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
    macproto: Option<u16>,
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

/// A MAC as ether_ntoa() writes it (xtables-monitor): no leading zeros, `2:42:ac:11:0:3`.
fn short_mac(v: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = v.split(':');
    for o in out.iter_mut() {
        let p = parts.next().filter(|p| (1..=2).contains(&p.len()))?;
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_none() {
        *slot = v;
    }
}

/// `start` is where `IN=` begins; the prefix is the text before it (less the one space
/// PRINTPKT adds, with `printpkt_space`).
pub(super) fn parse(line: &str, start: usize, printpkt_space: bool) -> Result<Parsed, ParseError> {
    parse_fields(line, start, printpkt_space, false)
}

/// The packet of an `xtables-monitor --trace` `PACKET:` line, from its first `KEY=value` on:
/// `SPORT=`/`DPORT=` and no protocol. A packet with ports is TCP when TCP flags are shown and
/// UDP otherwise (SCTP, DCCP and UDP-Lite are printed alike, so they read as UDP); not partial.
pub fn parse_xtables_packet(fields: &str) -> Result<Parsed, ParseError> {
    let mut p = parse_fields(fields, 0, false, true)?;
    p.event.partial = false;
    // xtables-monitor prints an IPv6 packet's LEN as its payload plus 20 (an IPv4 header's
    // size), not 40.
    if let Network::Ipv6(ip) = &mut p.event.headers.network {
        let len = fields
            .split(' ')
            .find_map(|t| t.strip_prefix("LEN=")?.parse::<u32>().ok());
        if let Some(len) = len {
            ip.payload_len = len.saturating_sub(20).min(u16::MAX as u32) as u16;
            p.event.payload_len = ip.payload_len as u32 + 40;
        }
    }
    Ok(p)
}

fn parse_fields(
    line: &str,
    start: usize,
    printpkt_space: bool,
    guess_protocol: bool,
) -> Result<Parsed, ParseError> {
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
            "MACSRC" => set(&mut f.macsrc, mac(v).or_else(|| short_mac(v))),
            "MACDST" => set(&mut f.macdst, mac(v).or_else(|| short_mac(v))),
            "MACPROTO" => set(&mut f.macproto, hex(v).and_then(|n| u16::try_from(n).ok())),
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
            "SPT" | "SPORT" => set(&mut f.sport, v.parse().ok()),
            "DPT" | "DPORT" => set(&mut f.dport, v.parse().ok()),
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
        if let Some(t) = f.macproto {
            header.extend(t.to_be_bytes());
        }
    }
    if !header.is_empty() {
        ev.link = Some(LinkHeader {
            hwtype: (header.len() >= 12).then_some(ARPHRD_ETHER),
            header,
            ..Default::default()
        });
    }
    if guess_protocol && f.protocol.is_none() && f.sport.is_some() {
        f.protocol = Some(if f.tcp_flags != 0 { "TCP" } else { "UDP" });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtables_monitor_packets_read_with_their_quirks() {
        // ether_ntoa's MACs without leading zeros; TCP known by its flags.
        let p = parse_xtables_packet("IN=eth0 MACSRC=2:42:ac:11:0:3 MACDST=a6:a9:ac:3f:72:49 MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x0 TTL=64 ID=9604 DF SPORT=47530 DPORT=22 SYN ").unwrap().event;
        assert!(!p.partial);
        assert_eq!(p.headers.protocol(), Some(proto::TCP));
        assert_eq!(p.headers.ports(), Some((47530, 22)));
        let eth = p.link.as_ref().and_then(|l| l.ethernet()).unwrap();
        assert_eq!(eth.src, [2, 0x42, 0xac, 0x11, 0, 3]);
        assert_eq!(eth.ethertype, 0x0800);
        // IPv6: LEN is the payload plus 20; ports without flags read as UDP.
        let p = parse_xtables_packet(
            "OUT=lo SRC=fd00::1 DST=fd00::2 LEN=28 TC=0 HOPLIMIT=64 FLOWLBL=5 SPORT=1000 DPORT=53 ",
        )
        .unwrap()
        .event;
        let Network::Ipv6(ip) = &p.headers.network else {
            panic!()
        };
        assert_eq!(ip.payload_len, 8);
        assert_eq!(ip.flow_label, 5);
        assert_eq!(p.headers.protocol(), Some(proto::UDP));
        assert!(parse_xtables_packet("IN=eth0 NH=0001").is_err());
    }
}
