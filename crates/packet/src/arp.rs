//! ARP (RFC 826) header and, for Ethernet/IPv4, its addresses.

use crate::bytes::{array_at, u16_at, u8_at};
use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpAddrs {
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub opcode: u16,
    /// Present for Ethernet/IPv4 ARP when the 20 address bytes are there.
    pub addrs: Option<ArpAddrs>,
    /// Bytes after the fixed header (the kernel prints them when the addresses are cut short).
    pub available_after_header: u32,
}

impl Arp {
    /// Whether the header announces Ethernet/IPv4 addresses (the only kind the kernel decodes).
    pub fn is_ether_ipv4(&self) -> bool {
        self.htype == 1 && self.hlen == 6 && self.plen == 4
    }
}

pub fn parse(b: &[u8]) -> Option<Arp> {
    let htype = u16_at(b, 0)?;
    let ptype = u16_at(b, 2)?;
    let hlen = u8_at(b, 4)?;
    let plen = u8_at(b, 5)?;
    let opcode = u16_at(b, 6)?;
    let mut arp = Arp {
        htype,
        ptype,
        hlen,
        plen,
        opcode,
        addrs: None,
        available_after_header: (b.len() - HEADER_LEN) as u32,
    };
    if arp.is_ether_ipv4() {
        arp.addrs = (|| {
            Some(ArpAddrs {
                sender_mac: array_at(b, 8)?,
                sender_ip: Ipv4Addr::from(array_at::<4>(b, 14)?),
                target_mac: array_at(b, 18)?,
                target_ip: Ipv4Addr::from(array_at::<4>(b, 24)?),
            })
        })();
    }
    Some(arp)
}
