//! TCP header (RFC 9293) with its flags, reserved bits and options.

use crate::bytes::{u16_at, u32_at};
use arrayvec::ArrayVec;

pub const HEADER_LEN: usize = 20;

pub mod flag {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    /// Accurate ECN (formerly NS), RFC 9768.
    pub const AE: u16 = 0x100;
    /// The three bits still reserved.
    pub const RESERVED: u16 = 0xe00;

    /// The flags by name, in the order the kernel's LOG line prints them.
    pub const NAMES: [(u16, &str); 9] = [
        (AE, "AE"),
        (CWR, "CWR"),
        (ECE, "ECE"),
        (URG, "URG"),
        (ACK, "ACK"),
        (PSH, "PSH"),
        (RST, "RST"),
        (SYN, "SYN"),
        (FIN, "FIN"),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Header length in 32-bit words.
    pub data_offset: u8,
    /// The 12 bits after the data offset: reserved (3), AE, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN.
    pub flags: u16,
    pub window: u16,
    pub checksum: u16,
    pub urgent: u16,
    /// Raw option bytes that were present (at most 40).
    pub options: ArrayVec<u8, 40>,
    /// The data offset announced options that the captured bytes do not hold.
    pub options_truncated: bool,
}

impl Tcp {
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    /// Length of the options the header announces.
    pub fn options_len(&self) -> usize {
        (self.data_offset as usize * 4).saturating_sub(HEADER_LEN)
    }
    /// The names of the flags set, in the kernel's order (`flag::NAMES`).
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        flag::NAMES
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, name)| *name)
    }

    /// Decoded options, in order; stops at the end-of-list option or a malformed length.
    pub fn decoded_options(&self) -> Vec<TcpOption> {
        decode_options(&self.options)
    }
}

/// One TCP option, as named in the IANA registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Sack(Vec<(u32, u32)>),
    Timestamp { value: u32, echo: u32 },
    Other { kind: u8, len: u8 },
}

pub fn decode_options(b: &[u8]) -> Vec<TcpOption> {
    crate::bytes::options(b)
        .map(|(kind, len, body)| match (kind, body.len()) {
            (2, 2) => TcpOption::Mss(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 => TcpOption::Sack(
                body.chunks_exact(8)
                    .map(|c| {
                        (
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                            u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        )
                    })
                    .collect(),
            ),
            (8, 8) => TcpOption::Timestamp {
                value: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                echo: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            },
            _ => TcpOption::Other { kind, len },
        })
        .collect()
}

/// Parses the fixed header and whatever options are present; `None` below 20 bytes.
pub fn parse(b: &[u8]) -> Option<Tcp> {
    let word = u16_at(b, 12)?;
    let data_offset = (word >> 12) as u8;
    let mut t = Tcp {
        sport: u16_at(b, 0)?,
        dport: u16_at(b, 2)?,
        seq: u32_at(b, 4)?,
        ack: u32_at(b, 8)?,
        data_offset,
        flags: word & 0x0fff,
        window: u16_at(b, 14)?,
        checksum: u16_at(b, 16)?,
        urgent: u16_at(b, 18)?,
        options: ArrayVec::new(),
        options_truncated: false,
    };
    let want = t.options_len();
    let have = b.len() - HEADER_LEN;
    let n = want.min(have);
    t.options
        .try_extend_from_slice(&b[HEADER_LEN..HEADER_LEN + n])
        .ok()?;
    t.options_truncated = n < want;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_with_options() {
        let opt = [
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x16, 0x20, 0xe5, 0x51, 0, 0, 0, 0,
            0x01, 0x03, 0x03, 0x0a,
        ];
        let mut b = vec![
            0xbc, 0xb8, 0x00, 0x52, 0x45, 0xc0, 0x3e, 0x0f, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0,
            0x12, 0x34, 0, 0,
        ];
        b.extend(opt);
        let t = parse(&b).unwrap();
        assert_eq!((t.sport, t.dport, t.seq), (48312, 82, 1170226703));
        assert_eq!(t.data_offset, 10);
        assert!(t.has(flag::SYN) && !t.has(flag::ACK));
        assert_eq!(&t.options[..], &opt[..]);
        assert!(!t.options_truncated);
        assert_eq!(
            t.decoded_options(),
            vec![
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamp {
                    value: 0x1620e551,
                    echo: 0
                },
                TcpOption::WindowScale(10)
            ]
        );
        let cut = parse(&b[..24]).unwrap();
        assert!(cut.options_truncated);
        assert_eq!(cut.options.len(), 4);
        assert!(parse(&b[..19]).is_none());
    }
}
