//! nfnetlink_log (NFLOG): configuration requests and packet messages.
//!
//! Attribute numbers and struct layouts are those of `linux/netfilter/nfnetlink_log.h`.

use crate::attr::Attrs;
use crate::message::{Message, Request, NLM_F_ACK, NLM_F_REQUEST};
use crate::{Error, Result};

pub const NFNL_SUBSYS_ULOG: u8 = 4;
pub const NFULNL_MSG_PACKET: u8 = 0;
pub const NFULNL_MSG_CONFIG: u8 = 1;

mod cfg {
    pub const CMD: u16 = 1;
    pub const MODE: u16 = 2;
    pub const NLBUFSIZ: u16 = 3;
    pub const TIMEOUT: u16 = 4;
    pub const QTHRESH: u16 = 5;
    pub const FLAGS: u16 = 6;
}

mod ula {
    pub const PACKET_HDR: u16 = 1;
    pub const MARK: u16 = 2;
    pub const TIMESTAMP: u16 = 3;
    pub const IFINDEX_INDEV: u16 = 4;
    pub const IFINDEX_OUTDEV: u16 = 5;
    pub const IFINDEX_PHYSINDEV: u16 = 6;
    pub const IFINDEX_PHYSOUTDEV: u16 = 7;
    pub const HWADDR: u16 = 8;
    pub const PAYLOAD: u16 = 9;
    pub const PREFIX: u16 = 10;
    pub const UID: u16 = 11;
    pub const SEQ: u16 = 12;
    pub const SEQ_GLOBAL: u16 = 13;
    pub const GID: u16 = 14;
    pub const HWTYPE: u16 = 15;
    pub const HWHEADER: u16 = 16;
    pub const HWLEN: u16 = 17;
    pub const CT: u16 = 18;
    pub const CT_INFO: u16 = 19;
    pub const VLAN: u16 = 20;
    pub const L2HDR: u16 = 21;
    pub const VLAN_PROTO: u16 = 1;
    pub const VLAN_TCI: u16 = 2;
}

pub const CMD_BIND: u8 = 1;
pub const CMD_UNBIND: u8 = 2;
pub const COPY_NONE: u8 = 0;
pub const COPY_META: u8 = 1;
pub const COPY_PACKET: u8 = 2;
/// Largest copy range the kernel accepts (0xffff minus the attribute header).
pub const COPY_RANGE_MAX: u32 = 0xffff - 4;
pub const FLAG_SEQ: u16 = 0x1;
pub const FLAG_SEQ_GLOBAL: u16 = 0x2;
pub const FLAG_CONNTRACK: u16 = 0x4;
/// Largest batch buffer the kernel accepts.
pub const NLBUFSIZ_MAX: u32 = 131_072;

/// How a group is to be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    pub group: u16,
    pub copy_mode: u8,
    pub copy_range: u32,
    /// Packets per batch before the kernel flushes (`None`: kernel default).
    pub qthreshold: Option<u32>,
    /// Flush timer in 1/100 s (`None`: kernel default).
    pub timeout_cs: Option<u32>,
    pub nlbufsiz: Option<u32>,
    pub flags: u16,
}

fn config_request(group: u16, seq: u32) -> Request {
    Request::nfnl(
        NFNL_SUBSYS_ULOG,
        NFULNL_MSG_CONFIG,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        AF_UNSPEC,
        group,
    )
}

/// The BIND request for a group. Kept separate from the settings so that an EBUSY names the
/// binding itself.
pub fn bind_request(group: u16, seq: u32) -> Vec<u8> {
    config_request(group, seq)
        .attr(cfg::CMD, &[CMD_BIND])
        .finish()
}

pub fn unbind_request(group: u16, seq: u32) -> Vec<u8> {
    config_request(group, seq)
        .attr(cfg::CMD, &[CMD_UNBIND])
        .finish()
}

/// The settings request for an already bound group (mode, timers, flags).
pub fn settings_request(c: &GroupConfig, seq: u32) -> Vec<u8> {
    let mut mode = c.copy_range.min(COPY_RANGE_MAX).to_be_bytes().to_vec();
    mode.extend([c.copy_mode, 0]);
    let mut r = config_request(c.group, seq).attr(cfg::MODE, &mode);
    if let Some(t) = c.timeout_cs {
        r = r.attr(cfg::TIMEOUT, &t.to_be_bytes());
    }
    if let Some(n) = c.nlbufsiz {
        r = r.attr(cfg::NLBUFSIZ, &n.to_be_bytes());
    }
    if let Some(q) = c.qthreshold {
        r = r.attr(cfg::QTHRESH, &q.to_be_bytes());
    }
    r.attr(cfg::FLAGS, &c.flags.to_be_bytes()).finish()
}

const AF_UNSPEC: u8 = 0;

/// One logged packet, borrowing from the receive buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Protocol family of the hook (NFPROTO_*: 2 IPv4, 10 IPv6, 7 bridge, 3 ARP, 5 netdev).
    pub family: u8,
    pub group: u16,
    /// skb->protocol (an ethertype).
    pub hw_protocol: u16,
    pub hook: u8,
    pub mark: Option<u32>,
    /// Kernel timestamp (seconds, microseconds); present for hooks up to FORWARD.
    pub timestamp: Option<(u64, u64)>,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    pub physindev: Option<u32>,
    pub physoutdev: Option<u32>,
    /// Link-layer source address as the device parses it.
    pub hwaddr: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The prefix without its NUL terminator.
    pub prefix: Option<&'a [u8]>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub seq: Option<u32>,
    pub seq_global: Option<u32>,
    pub hwtype: Option<u16>,
    pub hwheader: Option<&'a [u8]>,
    pub hwlen: Option<u16>,
    /// Nested conntrack attributes (see `ctnetlink`).
    pub ct: Option<&'a [u8]>,
    pub ct_info: Option<u32>,
    /// (TPID, TCI) of a hardware-accelerated VLAN tag (bridge and netdev families).
    pub vlan: Option<(u16, u16)>,
    pub l2hdr: Option<&'a [u8]>,
    /// Attributes of types this parser does not know.
    pub unknown_attrs: u32,
}

/// Whether a message is an NFLOG packet.
pub fn is_packet(m: &Message) -> bool {
    m.subsys() == NFNL_SUBSYS_ULOG && m.subtype() == NFULNL_MSG_PACKET
}

/// Parses an NFLOG packet message. A malformed attribute makes the whole message an error.
pub fn parse_packet<'a>(m: &Message<'a>) -> Result<Packet<'a>> {
    let (family, _version, group, attrs) = m.nfgen()?;
    let mut p = Packet {
        family,
        group,
        ..Default::default()
    };
    let mut saw_hdr = false;
    for a in attrs {
        let a = a?;
        match a.kind {
            ula::PACKET_HDR => {
                if a.data.len() < 3 {
                    return Err(Error::Malformed("short NFULA_PACKET_HDR"));
                }
                p.hw_protocol = u16::from_be_bytes([a.data[0], a.data[1]]);
                p.hook = a.data[2];
                saw_hdr = true;
            }
            ula::MARK => p.mark = Some(a.be32()?),
            ula::TIMESTAMP => {
                let b = a
                    .data
                    .get(..16)
                    .ok_or(Error::Malformed("short NFULA_TIMESTAMP"))?;
                let sec = u64::from_be_bytes(
                    b[..8]
                        .try_into()
                        .map_err(|_| Error::Malformed("timestamp"))?,
                );
                let usec = u64::from_be_bytes(
                    b[8..]
                        .try_into()
                        .map_err(|_| Error::Malformed("timestamp"))?,
                );
                p.timestamp = Some((sec, usec));
            }
            ula::IFINDEX_INDEV => p.indev = Some(a.be32()?),
            ula::IFINDEX_OUTDEV => p.outdev = Some(a.be32()?),
            ula::IFINDEX_PHYSINDEV => p.physindev = Some(a.be32()?),
            ula::IFINDEX_PHYSOUTDEV => p.physoutdev = Some(a.be32()?),
            ula::HWADDR => {
                // struct nfulnl_msg_packet_hw { __be16 hw_addrlen; __u16 pad; __u8 hw_addr[8]; }
                let len = a.be16()? as usize;
                p.hwaddr = a.data.get(4..4 + len.min(8));
            }
            ula::PAYLOAD => p.payload = Some(a.data),
            ula::PREFIX => p.prefix = Some(a.cstr()),
            ula::UID => p.uid = Some(a.be32()?),
            ula::GID => p.gid = Some(a.be32()?),
            ula::SEQ => p.seq = Some(a.be32()?),
            ula::SEQ_GLOBAL => p.seq_global = Some(a.be32()?),
            ula::HWTYPE => p.hwtype = Some(a.be16()?),
            ula::HWHEADER => p.hwheader = Some(a.data),
            ula::HWLEN => p.hwlen = Some(a.be16()?),
            ula::CT => p.ct = Some(a.data),
            ula::CT_INFO => p.ct_info = Some(a.be32()?),
            ula::VLAN => {
                let (mut proto, mut tci) = (None, None);
                for v in a.nested() {
                    let v = v?;
                    match v.kind {
                        ula::VLAN_PROTO => proto = Some(v.be16()?),
                        ula::VLAN_TCI => tci = Some(v.be16()?),
                        _ => p.unknown_attrs += 1,
                    }
                }
                if let (Some(proto), Some(tci)) = (proto, tci) {
                    p.vlan = Some((proto, tci));
                }
            }
            ula::L2HDR => p.l2hdr = Some(a.data),
            _ => p.unknown_attrs += 1,
        }
    }
    if !saw_hdr {
        return Err(Error::Malformed("NFLOG packet without NFULA_PACKET_HDR"));
    }
    Ok(p)
}

/// Builds an NFLOG packet message the way the kernel does; for tests and fuzz seeds.
pub fn build_packet(p: &Packet) -> Vec<u8> {
    let mut r = Request::nfnl(NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET, 0, 0, p.family, p.group);
    let mut hdr = p.hw_protocol.to_be_bytes().to_vec();
    hdr.extend([p.hook, 0]);
    r = r.attr(ula::PACKET_HDR, &hdr);
    if let Some(pfx) = p.prefix {
        let mut v = pfx.to_vec();
        v.push(0);
        r = r.attr(ula::PREFIX, &v);
    }
    for (kind, v) in [
        (ula::IFINDEX_INDEV, p.indev),
        (ula::IFINDEX_OUTDEV, p.outdev),
        (ula::IFINDEX_PHYSINDEV, p.physindev),
        (ula::IFINDEX_PHYSOUTDEV, p.physoutdev),
        (ula::MARK, p.mark),
        (ula::UID, p.uid),
        (ula::GID, p.gid),
        (ula::SEQ, p.seq),
        (ula::SEQ_GLOBAL, p.seq_global),
    ] {
        if let Some(v) = v {
            r = r.attr(kind, &v.to_be_bytes());
        }
    }
    if let Some((s, u)) = p.timestamp {
        let mut ts = s.to_be_bytes().to_vec();
        ts.extend(u.to_be_bytes());
        r = r.attr(ula::TIMESTAMP, &ts);
    }
    if let Some(t) = p.hwtype {
        r = r.attr(ula::HWTYPE, &t.to_be_bytes());
    }
    if let Some(l) = p.hwlen {
        r = r.attr(ula::HWLEN, &l.to_be_bytes());
    }
    if let Some(h) = p.hwheader {
        r = r.attr(ula::HWHEADER, h);
    }
    if let Some(pl) = p.payload {
        r = r.attr(ula::PAYLOAD, pl);
    }
    r.finish()
}

/// Iterates the NFLOG packets of one datagram, reporting malformed messages as errors without
/// stopping at them (the framing of the next message is still known).
pub fn packets(buf: &[u8]) -> impl Iterator<Item = Result<Packet<'_>>> {
    crate::message::Messages::new(buf).filter_map(|m| match m {
        Ok(m) if is_packet(&m) => Some(parse_packet(&m)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// Walks attributes only to check them (used by fuzzing).
pub fn check_attrs(buf: &[u8]) -> usize {
    Attrs::new(buf).filter(|a| a.is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip() {
        let payload = [
            0x45u8, 0, 0, 20, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let p = Packet {
            family: 2,
            group: 7,
            hw_protocol: 0x0800,
            hook: 1,
            mark: Some(42),
            timestamp: Some((1_700_000_000, 123_456)),
            indev: Some(3),
            prefix: Some(b"DROP-IN "),
            seq: Some(9),
            hwtype: Some(1),
            hwlen: Some(14),
            hwheader: Some(&[1; 14]),
            payload: Some(&payload),
            ..Default::default()
        };
        let bytes = build_packet(&p);
        let got: Vec<_> = packets(&bytes).collect::<Result<_>>().unwrap();
        assert_eq!(got, vec![p]);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        let p = Packet {
            family: 2,
            hw_protocol: 0x800,
            prefix: Some(b"x"),
            ..Default::default()
        };
        let mut bytes = build_packet(&p);
        let n = bytes.len();
        bytes[20] = 0xff; // first attribute length now runs past the message
        let r: Vec<_> = packets(&bytes).collect();
        assert!(r[0].is_err());
        for cut in 0..n {
            let _ = packets(&bytes[..cut]).count();
        }
    }
}
