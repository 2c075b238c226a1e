//! GRE header (RFC 2784, key and sequence from RFC 2890; version 1 is PPTP's).

use crate::bytes::{u16_at, u32_at};

pub const HEADER_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gre {
    /// The first 16 bits: C, K, S flags and the version.
    pub flags_version: u16,
    /// Ethertype of the payload.
    pub protocol: u16,
    pub key: Option<u32>,
}

impl Gre {
    pub fn version(&self) -> u8 {
        (self.flags_version & 0x7) as u8
    }
}

pub fn parse(b: &[u8]) -> Option<Gre> {
    let flags_version = u16_at(b, 0)?;
    let protocol = u16_at(b, 2)?;
    let checksum_present = flags_version & 0x8000 != 0;
    let key_present = flags_version & 0x2000 != 0;
    let key = if key_present {
        u32_at(b, if checksum_present { 8 } else { 4 })
    } else {
        None
    };
    Some(Gre {
        flags_version,
        protocol,
        key,
    })
}
