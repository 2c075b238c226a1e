//! IPv6 header (RFC 8200) and the walk over its extension headers, following the kernel's own
//! walk (hop-by-hop, routing, fragment, destination options, AH, ESP).

use crate::bytes::{array_at, u16_at, u32_at, u8_at};
use crate::decode::{transport, Transport};
use crate::proto;
use arrayvec::ArrayVec;
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;

/// One extension header met on the walk, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtHeader {
    HopByHop,
    Routing,
    DestOpts,
    /// `offset` in bytes (the kernel's `FRAG:n` for IPv6).
    Fragment {
        offset: u16,
        more: bool,
        id: u32,
    },
    /// A fragment header whose 8 bytes were not captured; the walk ends.
    FragmentTruncated,
    /// An option header after a non-first fragment: not readable, the walk ends.
    OptionsAfterFragment(u8),
    /// `spi` is `None` when the 12-byte AH header was cut short; `available` counts the bytes
    /// from its start.
    Ah {
        spi: Option<u32>,
        available: u32,
    },
    /// ESP ends the walk: what follows is encrypted.
    Esp {
        spi: Option<u32>,
        available: u32,
    },
    /// The two bytes every extension header starts with were not captured; the walk ends.
    Truncated,
}

impl ExtHeader {
    /// Whether the walk stops at this header.
    pub fn ends_walk(&self) -> bool {
        matches!(
            self,
            ExtHeader::FragmentTruncated
                | ExtHeader::OptionsAfterFragment(_)
                | ExtHeader::Esp { .. }
                | ExtHeader::Truncated
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub payload_len: u16,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
    /// The next-header field of the fixed header.
    pub next_header: u8,
    pub ext: ArrayVec<ExtHeader, 8>,
    /// The upper-layer protocol where the walk stopped (the last header type met).
    pub protocol: u8,
    pub transport: Transport,
}

impl Ipv6 {
    pub fn fragment(&self) -> Option<(u16, bool, u32)> {
        self.ext.iter().find_map(|e| match *e {
            ExtHeader::Fragment { offset, more, id } => Some((offset, more, id)),
            _ => None,
        })
    }
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment(), Some((off, _, _)) if off != 0)
    }
    /// Whether the walk ended before an upper-layer header (no `PROTO=` in the kernel line).
    pub fn walk_ended(&self) -> bool {
        self.ext.last().is_some_and(|e| e.ends_walk())
    }
}

fn is_ext(h: u8) -> bool {
    matches!(
        h,
        proto::HOPOPTS | proto::ROUTING | proto::FRAGMENT | proto::ESP | proto::AH | proto::DSTOPTS
    )
}

/// Parses an IPv6 packet, its extension headers and its transport header. `nested` as for IPv4.
pub fn parse(b: &[u8], nested: bool) -> Option<Ipv6> {
    let word = u32_at(b, 0)?;
    if b.len() < HEADER_LEN {
        return None;
    }
    let mut ip = Ipv6 {
        src: Ipv6Addr::from(array_at::<16>(b, 8)?),
        dst: Ipv6Addr::from(array_at::<16>(b, 24)?),
        payload_len: u16_at(b, 4)?,
        traffic_class: ((word >> 20) & 0xff) as u8,
        flow_label: word & 0x000f_ffff,
        hop_limit: u8_at(b, 7)?,
        next_header: u8_at(b, 6)?,
        ext: ArrayVec::new(),
        protocol: 0,
        transport: Transport::None,
    };
    let mut ptr = HEADER_LEN;
    let mut current = ip.next_header;
    let mut fragment = false;
    while current != proto::NONE && is_ext(current) {
        if ip.ext.is_full() {
            // More extension headers than anyone sends: stop as if the rest were missing.
            ip.ext.pop();
            ip.ext.push(ExtHeader::Truncated);
            break;
        }
        let (Some(next), Some(len_byte)) = (u8_at(b, ptr), u8_at(b, ptr + 1)) else {
            ip.ext.push(ExtHeader::Truncated);
            break;
        };
        let available = (b.len() - ptr.min(b.len())) as u32;
        let hdrlen = match current {
            proto::FRAGMENT => {
                let (Some(off), Some(id)) = (u16_at(b, ptr + 2), u32_at(b, ptr + 4)) else {
                    ip.ext.push(ExtHeader::FragmentTruncated);
                    break;
                };
                let offset = off & 0xfff8;
                fragment |= offset != 0;
                ip.ext.push(ExtHeader::Fragment {
                    offset,
                    more: off & 1 != 0,
                    id,
                });
                8
            }
            proto::DSTOPTS | proto::ROUTING | proto::HOPOPTS => {
                if fragment {
                    ip.ext.push(ExtHeader::OptionsAfterFragment(current));
                    break;
                }
                ip.ext.push(match current {
                    proto::HOPOPTS => ExtHeader::HopByHop,
                    proto::ROUTING => ExtHeader::Routing,
                    _ => ExtHeader::DestOpts,
                });
                (len_byte as usize + 1) * 8
            }
            proto::AH => {
                let spi = if b.len() >= ptr + crate::ipsec::AH_HEADER_LEN {
                    u32_at(b, ptr + 4)
                } else {
                    None
                };
                ip.ext.push(ExtHeader::Ah { spi, available });
                (len_byte as usize + 2) * 4
            }
            _ => {
                // ESP: the rest is ciphertext.
                let spi = if b.len() >= ptr + crate::ipsec::ESP_HEADER_LEN {
                    u32_at(b, ptr)
                } else {
                    None
                };
                ip.ext.push(ExtHeader::Esp { spi, available });
                ip.protocol = proto::ESP;
                ip.transport = match spi {
                    Some(spi) => Transport::Esp(crate::ipsec::Esp {
                        spi,
                        seq: u32_at(b, ptr + 4).unwrap_or(0),
                    }),
                    None => Transport::Incomplete { available },
                };
                return Some(ip);
            }
        };
        current = next;
        ptr += hdrlen;
    }
    ip.protocol = current;
    if ip.walk_ended() {
        ip.transport = Transport::None;
        return Some(ip);
    }
    let rest = b.get(ptr..).unwrap_or(&[]);
    ip.transport = transport(current, rest, fragment, nested, true);
    Some(ip)
}
