//! UDP (RFC 768) and UDP-Lite (RFC 3828) header: same layout, the length field of UDP-Lite is the
//! checksum coverage.

use crate::bytes::u16_at;

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    pub length: u16,
    pub checksum: u16,
}

pub fn parse(b: &[u8]) -> Option<Udp> {
    Some(Udp {
        sport: u16_at(b, 0)?,
        dport: u16_at(b, 2)?,
        length: u16_at(b, 4)?,
        checksum: u16_at(b, 6)?,
    })
}
