//! IPsec headers: ESP (RFC 4303) and AH (RFC 4302). Only the clear-text parts.

use crate::bytes::{u32_at, u8_at};

pub const ESP_HEADER_LEN: usize = 8;
pub const AH_HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Esp {
    pub spi: u32,
    pub seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ah {
    pub next_header: u8,
    /// Header length in bytes, from the payload-length field ((len + 2) * 4).
    pub header_len: usize,
    pub spi: u32,
    pub seq: u32,
}

pub fn parse_esp(b: &[u8]) -> Option<Esp> {
    Some(Esp {
        spi: u32_at(b, 0)?,
        seq: u32_at(b, 4)?,
    })
}

pub fn parse_ah(b: &[u8]) -> Option<Ah> {
    Some(Ah {
        next_header: u8_at(b, 0)?,
        header_len: (u8_at(b, 1)? as usize + 2) * 4,
        spi: u32_at(b, 4)?,
        seq: u32_at(b, 8)?,
    })
}
