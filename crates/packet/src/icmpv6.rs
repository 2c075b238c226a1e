//! ICMPv6 (RFC 4443): type, code, the type-specific word, and the quoted packet of errors.

use crate::bytes::{array_at, u16_at, u8_at};
use crate::ipv6::{self, Ipv6};

pub const HEADER_LEN: usize = 8;

pub const DEST_UNREACH: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6 {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: u16,
    pub rest: [u8; 4],
    pub available: u32,
    pub quoted: Option<Box<Ipv6>>,
}

impl Icmpv6 {
    pub fn is_echo(&self) -> bool {
        matches!(self.icmp_type, ECHO_REQUEST | ECHO_REPLY)
    }
    pub fn is_error(&self) -> bool {
        matches!(
            self.icmp_type,
            DEST_UNREACH | PACKET_TOO_BIG | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }
    pub fn echo_id(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
    /// MTU of packet-too-big, pointer of parameter-problem.
    pub fn word(&self) -> u32 {
        u32::from_be_bytes(self.rest)
    }
}

pub fn parse(b: &[u8], nested: bool) -> Option<Icmpv6> {
    let mut m = Icmpv6 {
        icmp_type: u8_at(b, 0)?,
        code: u8_at(b, 1)?,
        checksum: u16_at(b, 2)?,
        rest: array_at(b, 4)?,
        available: b.len() as u32,
        quoted: None,
    };
    if !nested && m.is_error() {
        m.quoted = b
            .get(HEADER_LEN..)
            .and_then(|q| ipv6::parse(q, true))
            .map(Box::new);
    }
    Some(m)
}
