//! The endpoints of a packet or flow, as filters and flow hashes (Community ID) read them:
//! addresses, IP protocol, and ports or ICMP type and code.

use crate::{FlowEvent, PacketEvent};
use packet::{Network, Transport};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// TCP, UDP, UDP-Lite, SCTP.
    pub ports: Option<(u16, u16)>,
    /// ICMP and ICMPv6: type and code.
    pub icmp: Option<(u8, u8)>,
}

impl PacketEvent {
    /// The packet's endpoints; None when it carries no IP header (ARP, other ethertypes).
    pub fn key(&self) -> Option<FlowKey> {
        let (src, dst, protocol, t): (IpAddr, IpAddr, u8, &Transport) = match &self.headers.network
        {
            Network::Ipv4(ip) => (ip.src.into(), ip.dst.into(), ip.protocol, &ip.transport),
            Network::Ipv6(ip) => (ip.src.into(), ip.dst.into(), ip.protocol, &ip.transport),
            _ => return None,
        };
        let icmp = match t {
            Transport::Icmp(i) => Some((i.icmp_type, i.code)),
            Transport::Icmpv6(i) => Some((i.icmp_type, i.code)),
            _ => None,
        };
        Some(FlowKey {
            src,
            dst,
            protocol,
            ports: t.ports(),
            icmp,
        })
    }
}

impl FlowEvent {
    /// The flow's original direction.
    pub fn key(&self) -> Option<FlowKey> {
        let o = &self.ct.orig;
        Some(FlowKey {
            src: o.src?,
            dst: o.dst?,
            protocol: o.protocol,
            ports: o.sport.zip(o.dport),
            icmp: o.icmp_type.zip(o.icmp_code),
        })
    }
}
