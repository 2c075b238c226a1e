//! From a network-layer payload to typed headers.

use crate::arp::{self, Arp};
use crate::bytes::u16_at;
use crate::ethernet::Vlan;
use crate::gre::{self, Gre};
use crate::icmp::{self, Icmp};
use crate::icmpv6::{self, Icmpv6};
use crate::ipsec::{self, Ah, Esp};
use crate::ipv4::{self, Ipv4};
use crate::ipv6::{self, Ipv6};
use crate::sctp::{self, Sctp};
use crate::tcp::{self, Tcp};
use crate::udp::{self, Udp};
use crate::{ethertype, proto};

/// The transport layer of an IP packet. The protocol number itself is on the IP header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Transport {
    /// Nothing follows (no next header, or the extension-header walk ended).
    #[default]
    None,
    /// A non-first fragment: no transport header in this packet.
    Fragment,
    /// The transport header was cut short; `available` bytes of it were present.
    Incomplete {
        available: u32,
    },
    Tcp(Tcp),
    /// UDP or UDP-Lite (see the IP protocol number).
    Udp(Udp),
    Icmp(Icmp),
    Icmpv6(Icmpv6),
    Sctp(Sctp),
    Gre(Gre),
    Esp(Esp),
    Ah(Ah),
    /// A protocol this crate does not decode.
    Other,
}

impl Transport {
    /// Source and destination ports, for the protocols that have them.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self {
            Transport::Tcp(t) => Some((t.sport, t.dport)),
            Transport::Udp(u) => Some((u.sport, u.dport)),
            Transport::Sctp(s) => Some((s.sport, s.dport)),
            _ => None,
        }
    }
}

/// Decodes the transport header at `b`. `ipv6` selects the kernel's IPv6 rules (ICMPv6, no AH
/// header decode: the IPv6 walk already did it).
pub(crate) fn transport(
    protocol: u8,
    b: &[u8],
    later_fragment: bool,
    nested: bool,
    ipv6: bool,
) -> Transport {
    if later_fragment {
        return Transport::Fragment;
    }
    let incomplete = || Transport::Incomplete {
        available: b.len() as u32,
    };
    match protocol {
        proto::TCP => tcp::parse(b).map_or_else(incomplete, Transport::Tcp),
        proto::UDP | proto::UDPLITE => udp::parse(b).map_or_else(incomplete, Transport::Udp),
        proto::ICMP if !ipv6 => icmp::parse(b, nested).map_or_else(incomplete, Transport::Icmp),
        proto::ICMPV6 if ipv6 => {
            icmpv6::parse(b, nested).map_or_else(incomplete, Transport::Icmpv6)
        }
        proto::SCTP => sctp::parse(b).map_or_else(incomplete, Transport::Sctp),
        proto::GRE => gre::parse(b).map_or_else(incomplete, Transport::Gre),
        proto::ESP if b.len() >= ipsec::ESP_HEADER_LEN => {
            ipsec::parse_esp(b).map_or_else(incomplete, Transport::Esp)
        }
        proto::AH if b.len() >= ipsec::AH_HEADER_LEN => {
            ipsec::parse_ah(b).map_or_else(incomplete, Transport::Ah)
        }
        proto::ESP | proto::AH => incomplete(),
        _ => Transport::Other,
    }
}

/// The network layer of a logged packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// No payload was copied (metadata-only logging).
    #[default]
    None,
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Arp(Arp),
    /// The payload is too short for the network header its protocol announces.
    Truncated {
        ethertype: u16,
    },
    /// A protocol this crate does not decode.
    Other {
        ethertype: u16,
    },
}

/// Everything decoded from one packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// 802.1Q/802.1ad tags at the start of the payload, outermost first (on receive the kernel
    /// moves only the outermost tag out of the packet; a second one stays in the payload).
    pub vlans: [Option<Vlan>; 2],
    pub network: Network,
    /// The packet's own length fields announce more bytes than were captured (snaplen).
    pub truncated: bool,
}

impl Headers {
    pub fn transport(&self) -> Option<&Transport> {
        match &self.network {
            Network::Ipv4(ip) => Some(&ip.transport),
            Network::Ipv6(ip) => Some(&ip.transport),
            _ => None,
        }
    }
    /// IP protocol number of the transport.
    pub fn protocol(&self) -> Option<u8> {
        match &self.network {
            Network::Ipv4(ip) => Some(ip.protocol),
            Network::Ipv6(ip) => Some(ip.protocol),
            _ => None,
        }
    }
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.transport().and_then(Transport::ports)
    }
}

/// Decodes a payload that starts at the network header, choosing the decoder by ethertype
/// (NFLOG's `hw_protocol`).
pub fn decode_ethertype(mut ethertype: u16, mut payload: &[u8]) -> Headers {
    if payload.is_empty() {
        return Headers::default();
    }
    let mut vlans = [None, None];
    for slot in vlans.iter_mut() {
        if ethertype != ethertype::VLAN && ethertype != ethertype::QINQ {
            break;
        }
        let (Some(tci), Some(next)) = (u16_at(payload, 0), u16_at(payload, 2)) else {
            break;
        };
        *slot = Some(Vlan {
            tpid: ethertype,
            tci,
        });
        ethertype = next;
        payload = &payload[4..];
    }
    let network = match ethertype {
        ethertype::IPV4 => ipv4::parse(payload, false).map(Network::Ipv4),
        ethertype::IPV6 => ipv6::parse(payload, false).map(Network::Ipv6),
        ethertype::ARP | ethertype::RARP => arp::parse(payload).map(Network::Arp),
        other => Some(Network::Other { ethertype: other }),
    }
    .unwrap_or(Network::Truncated { ethertype });
    let truncated = match &network {
        Network::Ipv4(ip) => (payload.len() as u64) < ip.total_len as u64,
        Network::Ipv6(ip) => payload.len() < ipv6::HEADER_LEN + ip.payload_len as usize,
        Network::Truncated { .. } => true,
        Network::Arp(a) => a.is_ether_ipv4() && a.addrs.is_none(),
        _ => false,
    };
    Headers {
        vlans,
        network,
        truncated,
    }
}

/// Decodes a payload that starts at the network header when only the IP version is known:
/// the version nibble picks IPv4 or IPv6.
pub fn decode(payload: &[u8]) -> Headers {
    match payload.first().map(|b| b >> 4) {
        Some(4) => decode_ethertype(ethertype::IPV4, payload),
        Some(6) => decode_ethertype(ethertype::IPV6, payload),
        Some(_) => Headers {
            network: Network::Other { ethertype: 0 },
            ..Headers::default()
        },
        None => Headers::default(),
    }
}
