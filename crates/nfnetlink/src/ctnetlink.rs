//! ctnetlink attributes (`linux/netfilter/nfnetlink_conntrack.h`): the conntrack entry NFLOG
//! attaches with NFULNL_CFG_F_CONNTRACK, and the body of conntrack events.

use crate::attr::Attrs;
use crate::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod cta {
    pub const TUPLE_ORIG: u16 = 1;
    pub const TUPLE_REPLY: u16 = 2;
    pub const STATUS: u16 = 3;
    pub const PROTOINFO: u16 = 4;
    pub const TIMEOUT: u16 = 7;
    pub const MARK: u16 = 8;
    pub const COUNTERS_ORIG: u16 = 9;
    pub const COUNTERS_REPLY: u16 = 10;
    pub const USE: u16 = 11;
    pub const ID: u16 = 12;
    pub const ZONE: u16 = 18;
    pub const TIMESTAMP: u16 = 20;
    pub const LABELS: u16 = 22;
    pub const TUPLE_IP: u16 = 1;
    pub const TUPLE_PROTO: u16 = 2;
    pub const IP_V4_SRC: u16 = 1;
    pub const IP_V4_DST: u16 = 2;
    pub const IP_V6_SRC: u16 = 3;
    pub const IP_V6_DST: u16 = 4;
    pub const PROTO_NUM: u16 = 1;
    pub const PROTO_SRC_PORT: u16 = 2;
    pub const PROTO_DST_PORT: u16 = 3;
    pub const PROTO_ICMP_ID: u16 = 4;
    pub const PROTO_ICMP_TYPE: u16 = 5;
    pub const PROTO_ICMP_CODE: u16 = 6;
    pub const PROTO_ICMPV6_ID: u16 = 7;
    pub const PROTO_ICMPV6_TYPE: u16 = 8;
    pub const PROTO_ICMPV6_CODE: u16 = 9;
    pub const COUNTERS_PACKETS: u16 = 1;
    pub const COUNTERS_BYTES: u16 = 2;
    pub const TIMESTAMP_START: u16 = 1;
    pub const TIMESTAMP_STOP: u16 = 2;
    pub const PROTOINFO_TCP: u16 = 1;
    pub const PROTOINFO_TCP_STATE: u16 = 1;
}

/// Status bits (`IPS_*`).
pub mod status {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
}

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuple {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub protocol: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub icmp_id: Option<u16>,
    /// GRE: the source and destination keys (PPTP call ids), which ctnetlink carries in the
    /// port attributes; GRE has no ports.
    pub gre_keys: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A conntrack entry as ctnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conntrack {
    pub orig: Tuple,
    pub reply: Tuple,
    pub status: Option<u32>,
    pub mark: Option<u32>,
    pub id: Option<u32>,
    pub zone: Option<u16>,
    pub timeout: Option<u32>,
    pub use_count: Option<u32>,
    pub tcp_state: Option<u8>,
    pub counters_orig: Option<Counters>,
    pub counters_reply: Option<Counters>,
    /// Start and stop, nanoseconds since the epoch.
    pub start_ns: Option<u64>,
    pub stop_ns: Option<u64>,
    pub labels: Option<u128>,
}

fn ip(data: &[u8]) -> Result<IpAddr> {
    match data.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        ))),
        16 => {
            let a: [u8; 16] = data
                .try_into()
                .map_err(|_| Error::Malformed("ipv6 address"))?;
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(Error::Malformed("address attribute of odd length")),
    }
}

/// Parses a tuple into `t` (a default one), in place like `parse_into`.
fn tuple_into(attrs: Attrs, t: &mut Tuple) -> Result<()> {
    for a in attrs {
        let a = a?;
        match a.kind {
            cta::TUPLE_IP => {
                for i in a.nested() {
                    let i = i?;
                    match i.kind {
                        cta::IP_V4_SRC | cta::IP_V6_SRC => t.src = Some(ip(i.data)?),
                        cta::IP_V4_DST | cta::IP_V6_DST => t.dst = Some(ip(i.data)?),
                        _ => {}
                    }
                }
            }
            cta::TUPLE_PROTO => {
                for p in a.nested() {
                    let p = p?;
                    match p.kind {
                        cta::PROTO_NUM => t.protocol = p.u8()?,
                        cta::PROTO_SRC_PORT => t.sport = Some(p.be16()?),
                        cta::PROTO_DST_PORT => t.dport = Some(p.be16()?),
                        cta::PROTO_ICMP_ID | cta::PROTO_ICMPV6_ID => t.icmp_id = Some(p.be16()?),
                        cta::PROTO_ICMP_TYPE | cta::PROTO_ICMPV6_TYPE => {
                            t.icmp_type = Some(p.u8()?)
                        }
                        cta::PROTO_ICMP_CODE | cta::PROTO_ICMPV6_CODE => {
                            t.icmp_code = Some(p.u8()?)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if t.protocol == GRE {
        t.gre_keys = Some((t.sport.take().unwrap_or(0), t.dport.take().unwrap_or(0)));
    }
    Ok(())
}

const GRE: u8 = 47;

fn counters(attrs: Attrs) -> Result<Counters> {
    let mut c = Counters::default();
    for a in attrs {
        let a = a?;
        match a.kind {
            cta::COUNTERS_PACKETS => c.packets = a.be64()?,
            cta::COUNTERS_BYTES => c.bytes = a.be64()?,
            _ => {}
        }
    }
    Ok(c)
}

/// Parses a list of CTA_* attributes.
pub fn parse(attrs: Attrs) -> Result<Conntrack> {
    let mut ct = Conntrack::default();
    parse_into(attrs, &mut ct)?;
    Ok(ct)
}

/// Parses a list of CTA_* attributes into `ct`, which starts as `Conntrack::default()`: where
/// the entry is to end up, so that a busy reader does not copy it there.
pub fn parse_into(attrs: Attrs, ct: &mut Conntrack) -> Result<()> {
    for a in attrs {
        let a = a?;
        match a.kind {
            cta::TUPLE_ORIG => tuple_into(a.nested(), &mut ct.orig)?,
            cta::TUPLE_REPLY => tuple_into(a.nested(), &mut ct.reply)?,
            cta::STATUS => ct.status = Some(a.be32()?),
            cta::MARK => ct.mark = Some(a.be32()?),
            cta::ID => ct.id = Some(a.be32()?),
            cta::ZONE => ct.zone = Some(a.be16()?),
            cta::TIMEOUT => ct.timeout = Some(a.be32()?),
            cta::USE => ct.use_count = Some(a.be32()?),
            cta::COUNTERS_ORIG => ct.counters_orig = Some(counters(a.nested())?),
            cta::COUNTERS_REPLY => ct.counters_reply = Some(counters(a.nested())?),
            cta::TIMESTAMP => {
                for t in a.nested() {
                    let t = t?;
                    match t.kind {
                        cta::TIMESTAMP_START => ct.start_ns = Some(t.be64()?),
                        cta::TIMESTAMP_STOP => ct.stop_ns = Some(t.be64()?),
                        _ => {}
                    }
                }
            }
            cta::PROTOINFO => {
                for p in a.nested() {
                    let p = p?;
                    if p.kind == cta::PROTOINFO_TCP {
                        for s in p.nested() {
                            let s = s?;
                            if s.kind == cta::PROTOINFO_TCP_STATE {
                                ct.tcp_state = Some(s.u8()?);
                            }
                        }
                    }
                }
            }
            cta::LABELS if a.data.len() == 16 => {
                let b: [u8; 16] = a.data.try_into().map_err(|_| Error::Malformed("labels"))?;
                ct.labels = Some(u128::from_le_bytes(b));
            }
            _ => {}
        }
    }
    Ok(())
}

pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
const IPCTNL_MSG_CT_NEW: u8 = 0;
const IPCTNL_MSG_CT_GET: u8 = 1;
const IPCTNL_MSG_CT_DELETE: u8 = 2;
const NLM_F_CREATE: u16 = 0x400;
/// Multicast groups of conntrack events.
pub const GROUP_NEW: u32 = 1;
pub const GROUP_UPDATE: u32 = 2;
pub const GROUP_DESTROY: u32 = 3;

/// What a conntrack event message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    New,
    Update,
    Destroy,
}

/// Parses a conntrack event (or dump) message: its kind, layer-3 family and entry. `Ok(None)`
/// for messages of other subsystems or types.
pub fn parse_event(m: &crate::Message) -> Result<Option<(EventKind, u8, Conntrack)>> {
    let Some((kind, family, attrs)) = event_parts(m)? else {
        return Ok(None);
    };
    Ok(Some((kind, family, parse(attrs)?)))
}

/// A conntrack event (or dump) message's kind, layer-3 family and attributes, to be parsed with
/// `parse_into`. `Ok(None)` for messages of other subsystems or types.
pub fn event_parts<'a>(m: &crate::Message<'a>) -> Result<Option<(EventKind, u8, Attrs<'a>)>> {
    if m.subsys() != NFNL_SUBSYS_CTNETLINK {
        return Ok(None);
    }
    let kind = match m.subtype() {
        IPCTNL_MSG_CT_NEW if m.flags & NLM_F_CREATE != 0 => EventKind::New,
        IPCTNL_MSG_CT_NEW => EventKind::Update,
        IPCTNL_MSG_CT_DELETE => EventKind::Destroy,
        _ => return Ok(None),
    };
    let (family, _, _, attrs) = m.nfgen()?;
    Ok(Some((kind, family, attrs)))
}

/// Name of a TCP conntrack state, as `conntrack -E` prints it.
pub fn tcp_state_name(s: u8) -> &'static str {
    match s {
        0 => "NONE",
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        _ => "UNKNOWN",
    }
}

/// Name of an `ip_conntrack_info` value (NFULA_CT_INFO).
pub fn ctinfo_name(i: u32) -> &'static str {
    match i {
        0 => "established",
        1 => "related",
        2 => "new",
        3 => "established_reply",
        4 => "related_reply",
        _ => "unknown",
    }
}

/// The whole conntrack table of the socket's namespace, every family: (family, entry) pairs and
/// the number of entries that did not parse. `sock` must be a socket of its own (the replies are
/// unicast to it), not one that also receives events.
pub fn dump(
    sock: &mut crate::NetlinkSocket,
    buf: &mut [u8],
) -> Result<(Vec<(u8, Conntrack)>, u64)> {
    let (mut entries, mut malformed) = (Vec::new(), 0u64);
    crate::socket::dump(
        sock,
        buf,
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_GET,
        |m| match parse_event(m) {
            Ok(Some((_, family, ct))) => entries.push((family, ct)),
            Ok(None) => {}
            Err(_) => malformed += 1,
        },
    )?;
    Ok((entries, malformed))
}
