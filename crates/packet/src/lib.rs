//! Zero-copy decoding of the packets netfilter hands to user space.
//!
//! Guarantees:
//! - No function in this crate panics on any input; every read is bounds-checked.
//! - A packet cut short (NFLOG snaplen, a quoted header inside an ICMP error) yields every field
//!   that is present, marks what is missing (`Transport::Incomplete`, `Headers::truncated`) and
//!   never fails as a whole.
//! - Unknown protocol numbers are values (`Transport::Other`), not errors.
//!
//! One file per protocol: `ethernet`, `arp`, `ipv4`, `ipv6` (with its extension headers),
//! `tcp`, `udp` (and UDP-Lite), `icmp`, `icmpv6`, `sctp`, `gre`, `ipsec` (ESP and AH).
//! `decode` ties them together from a network-layer payload as NFLOG delivers it.
//!
//! Hand-written rather than `etherparse`: rendering the kernel's LOG line byte for byte needs
//! what the kernel sees (bytes left after a short header, raw option bytes, the exact IPv6
//! extension-header walk), SCTP/GRE/ESP/AH are not covered there, and fixed-offset reads are an
//! order of magnitude cheaper (shared/research/rust-deps.md §2).

pub mod arp;
mod bytes;
pub mod decode;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod icmpv6;
pub mod ipsec;
pub mod ipv4;
pub mod ipv4_options;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use decode::{decode, decode_ethertype, Headers, Network, Transport};

/// IP protocol numbers this crate decodes.
pub mod proto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;

    /// A protocol by number or by the name `name` gives it (any case; "icmpv6" too).
    pub fn by_name(s: &str) -> Option<u8> {
        if let Ok(n) = s.parse::<u8>() {
            return Some(n);
        }
        let lower = s.to_ascii_lowercase();
        let lower = if lower == "icmpv6" {
            "ipv6-icmp"
        } else {
            &lower
        };
        (0..=255u8).find(|&p| name(p) == Some(lower))
    }

    /// The lower-case name IANA and ECS use (`network.transport`), if the protocol has one here.
    pub fn name(p: u8) -> Option<&'static str> {
        Some(match p {
            ICMP => "icmp",
            TCP => "tcp",
            UDP => "udp",
            GRE => "gre",
            ESP => "esp",
            AH => "ah",
            ICMPV6 => "ipv6-icmp",
            SCTP => "sctp",
            UDPLITE => "udplite",
            2 => "igmp",
            4 => "ipv4",
            41 => "ipv6",
            33 => "dccp",
            103 => "pim",
            112 => "vrrp",
            _ => return None,
        })
    }
}

/// Ethertypes used here.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const QINQ: u16 = 0x88a8;
}
