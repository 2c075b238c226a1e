//! Ethernet II header, with 802.1Q / 802.1ad tags.

use crate::bytes::{array_at, u16_at};
use crate::ethertype;

pub const HEADER_LEN: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// The tag protocol identifier (0x8100, 0x88a8).
    pub tpid: u16,
    /// The whole tag control information: PCP (3 bits), DEI (1), VLAN id (12).
    pub tci: u16,
}

impl Vlan {
    pub fn id(&self) -> u16 {
        self.tci & 0x0fff
    }
    pub fn priority(&self) -> u8 {
        (self.tci >> 13) as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ethernet {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Up to two tags, outermost first.
    pub vlans: [Option<Vlan>; 2],
    /// The ethertype after the tags.
    pub ethertype: u16,
    /// Bytes of header consumed (14, 18 or 22).
    pub header_len: usize,
}

/// Parses an Ethernet header; `None` if fewer than 14 bytes.
pub fn parse(b: &[u8]) -> Option<Ethernet> {
    let dst = array_at::<6>(b, 0)?;
    let src = array_at::<6>(b, 6)?;
    let mut ethertype = u16_at(b, 12)?;
    let mut off = HEADER_LEN;
    let mut vlans = [None, None];
    for slot in vlans.iter_mut() {
        if ethertype != ethertype::VLAN && ethertype != ethertype::QINQ {
            break;
        }
        let (Some(tci), Some(next)) = (u16_at(b, off), u16_at(b, off + 2)) else {
            break;
        };
        *slot = Some(Vlan {
            tpid: ethertype,
            tci,
        });
        ethertype = next;
        off += 4;
    }
    Some(Ethernet {
        dst,
        src,
        vlans,
        ethertype,
        header_len: off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_tagged() {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend([0x08, 0x00]);
        let e = parse(&f).unwrap();
        assert_eq!(e.ethertype, 0x0800);
        assert_eq!(e.header_len, 14);
        let mut t = f[..12].to_vec();
        t.extend([0x81, 0x00, 0xa0, 0x07, 0x86, 0xdd]);
        let e = parse(&t).unwrap();
        assert_eq!(
            e.vlans[0],
            Some(Vlan {
                tpid: 0x8100,
                tci: 40967
            })
        );
        assert_eq!(e.vlans[0].unwrap().id(), 7);
        assert_eq!(e.vlans[0].unwrap().priority(), 5);
        assert_eq!(e.ethertype, 0x86dd);
        assert!(parse(&f[..13]).is_none());
    }
}
