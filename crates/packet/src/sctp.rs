//! SCTP common header (RFC 9260): ports, verification tag, checksum.

use crate::bytes::{u16_at, u32_at};

pub const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sctp {
    pub sport: u16,
    pub dport: u16,
    pub verification_tag: u32,
    pub checksum: u32,
}

pub fn parse(b: &[u8]) -> Option<Sctp> {
    Some(Sctp {
        sport: u16_at(b, 0)?,
        dport: u16_at(b, 2)?,
        verification_tag: u32_at(b, 4)?,
        checksum: u32_at(b, 8)?,
    })
}
