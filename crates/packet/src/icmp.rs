//! ICMP for IPv4 (RFC 792): type, code, the type-specific word, and the quoted header of errors.

use crate::bytes::{array_at, u16_at, u8_at};
use crate::ipv4::{self, Ipv4};
use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 8;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACH: u8 = 3;
pub const SOURCE_QUENCH: u8 = 4;
pub const REDIRECT: u8 = 5;
pub const ECHO: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;
pub const FRAG_NEEDED: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: u16,
    /// The four type-specific bytes after the checksum (id/seq, gateway, pointer, MTU).
    pub rest: [u8; 4],
    /// Bytes from the start of the ICMP header to the end of the capture.
    pub available: u32,
    /// The IP header (and start of transport) quoted by an error message.
    pub quoted: Option<Box<Ipv4>>,
}

impl Icmp {
    pub fn is_echo(&self) -> bool {
        matches!(self.icmp_type, ECHO | ECHO_REPLY)
    }
    pub fn is_error(&self) -> bool {
        matches!(
            self.icmp_type,
            DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }
    pub fn echo_id(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.rest)
    }
    /// Next-hop MTU of a fragmentation-needed error.
    pub fn mtu(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
    /// Pointer byte of a parameter problem.
    pub fn pointer(&self) -> u8 {
        self.rest[0]
    }
    /// Minimum bytes the kernel's logger wants for this type before decoding it further.
    pub fn required_len(&self) -> u32 {
        match self.icmp_type {
            ECHO_REPLY | ECHO => 4,
            DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM => 8 + 20,
            13 | 14 => 20,
            17 | 18 => 12,
            _ => 0,
        }
    }
}

/// `None` when fewer than 8 bytes are present.
pub fn parse(b: &[u8], nested: bool) -> Option<Icmp> {
    let mut m = Icmp {
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
            .and_then(|q| ipv4::parse(q, true))
            .map(Box::new);
    }
    Some(m)
}
