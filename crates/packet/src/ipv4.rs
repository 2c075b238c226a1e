//! IPv4 header (RFC 791) with options, flags and fragment offset.

use crate::bytes::{array_at, u16_at, u8_at};
use crate::decode::{transport, Transport};
use arrayvec::ArrayVec;
use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 20;
/// The reserved ("evil", RFC 3514) bit the kernel logs as `CE`.
pub const FLAG_CE: u16 = 0x8000;
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const OFFSET_MASK: u16 = 0x1fff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Header length in 32-bit words.
    pub ihl: u8,
    pub tos: u8,
    pub total_len: u16,
    pub id: u16,
    /// The raw 16-bit flags + fragment-offset field.
    pub frag_field: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: u16,
    /// Raw option bytes that were present.
    pub options: ArrayVec<u8, 40>,
    /// The header announced options that were not captured.
    pub options_truncated: bool,
    pub transport: Transport,
}

impl Ipv4 {
    /// The options, decoded (see `ipv4_options`).
    pub fn decoded_options(&self) -> Vec<crate::ipv4_options::Ipv4Option> {
        crate::ipv4_options::decode(&self.options)
    }
    pub fn header_len(&self) -> usize {
        self.ihl as usize * 4
    }
    pub fn dont_fragment(&self) -> bool {
        self.frag_field & FLAG_DF != 0
    }
    pub fn more_fragments(&self) -> bool {
        self.frag_field & FLAG_MF != 0
    }
    pub fn reserved_flag(&self) -> bool {
        self.frag_field & FLAG_CE != 0
    }
    /// Fragment offset in 8-byte units, as the kernel logs it (`FRAG:n`).
    pub fn frag_offset(&self) -> u16 {
        self.frag_field & OFFSET_MASK
    }
    /// A non-first fragment carries no transport header.
    pub fn is_later_fragment(&self) -> bool {
        self.frag_offset() != 0
    }
    pub fn dscp(&self) -> u8 {
        self.tos >> 2
    }
    pub fn ecn(&self) -> u8 {
        self.tos & 3
    }
}

/// Parses an IPv4 packet and its transport header. `nested` is set for the copy of a header
/// quoted inside an ICMP error, which is not decoded further.
pub fn parse(b: &[u8], nested: bool) -> Option<Ipv4> {
    let vihl = u8_at(b, 0)?;
    if b.len() < HEADER_LEN {
        return None;
    }
    let ihl = vihl & 0x0f;
    let frag_field = u16_at(b, 6)?;
    let mut ip = Ipv4 {
        src: Ipv4Addr::from(array_at::<4>(b, 12)?),
        dst: Ipv4Addr::from(array_at::<4>(b, 16)?),
        ihl,
        tos: u8_at(b, 1)?,
        total_len: u16_at(b, 2)?,
        id: u16_at(b, 4)?,
        frag_field,
        ttl: u8_at(b, 8)?,
        protocol: u8_at(b, 9)?,
        checksum: u16_at(b, 10)?,
        options: ArrayVec::new(),
        options_truncated: false,
        transport: Transport::None,
    };
    let hlen = ip.header_len();
    let later = ip.is_later_fragment();
    // Bytes the kernel counts from the transport offset (an unsigned difference, as it prints it).
    let past_header = (b.len() as u32).wrapping_sub(hlen as u32);
    if hlen < HEADER_LEN {
        // A header length below the minimum is malformed: the transport cannot be located.
        ip.transport = if later {
            Transport::Fragment
        } else {
            Transport::Incomplete {
                available: past_header,
            }
        };
        return Some(ip);
    }
    let present = b.len().min(hlen);
    ip.options
        .try_extend_from_slice(&b[HEADER_LEN..present])
        .ok()?;
    ip.options_truncated = present < hlen;
    ip.transport = if ip.options_truncated {
        if later {
            Transport::Fragment
        } else {
            Transport::Incomplete {
                available: past_header,
            }
        }
    } else {
        transport(ip.protocol, &b[hlen..], later, nested, false)
    };
    Some(ip)
}
