//! Netlink attributes (TLVs, 4-byte aligned), walked without copying.

use crate::{Error, Result};

pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
const NLA_HDRLEN: usize = 4;

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute: its type (flags masked off) and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u8(&self) -> Result<u8> {
        self.data
            .first()
            .copied()
            .ok_or(Error::Malformed("u8 attribute too short"))
    }
    /// Network-order u16, as nfnetlink sends them.
    pub fn be16(&self) -> Result<u16> {
        let b = self
            .data
            .get(..2)
            .ok_or(Error::Malformed("u16 attribute too short"))?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn be32(&self) -> Result<u32> {
        let b = self
            .data
            .get(..4)
            .ok_or(Error::Malformed("u32 attribute too short"))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn be64(&self) -> Result<u64> {
        let b = self
            .data
            .get(..8)
            .ok_or(Error::Malformed("u64 attribute too short"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// Host-order u16 (rtnetlink uses host order).
    pub fn ne16(&self) -> Result<u16> {
        let b = self
            .data
            .get(..2)
            .ok_or(Error::Malformed("u16 attribute too short"))?;
        Ok(u16::from_ne_bytes([b[0], b[1]]))
    }
    pub fn ne32(&self) -> Result<u32> {
        let b = self
            .data
            .get(..4)
            .ok_or(Error::Malformed("u32 attribute too short"))?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A C string: the bytes before the first NUL.
    pub fn cstr(&self) -> &'a [u8] {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        &self.data[..end]
    }
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.data)
    }
}

/// Iterator over the attributes of a buffer. Yields an error (and then stops) on a length that
/// runs past the buffer.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(Error::Malformed("attribute length out of bounds")));
        }
        let data = &self.rest[NLA_HDRLEN..len];
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Attr { kind, data }))
    }
}

/// Appends attributes to a request buffer.
pub(crate) fn put(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = NLA_HDRLEN + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_and_reject_overrun() {
        let mut b = Vec::new();
        put(&mut b, 1, &[1, 2, 3]);
        put(&mut b, 2 | NLA_F_NESTED, &[0, 0, 0, 5]);
        let v: Vec<_> = Attrs::new(&b).collect::<Result<_>>().unwrap();
        assert_eq!(
            v[0],
            Attr {
                kind: 1,
                data: &[1, 2, 3]
            }
        );
        assert_eq!(v[1].kind, 2);
        assert_eq!(v[1].be32().unwrap(), 5);
        let mut bad = b.clone();
        bad[0] = 200;
        assert!(Attrs::new(&bad).next().unwrap().is_err());
        assert!(Attr {
            kind: 0,
            data: &[1]
        }
        .be32()
        .is_err());
    }

    /// The edges of an attribute walk: a length below the 4-byte header is an error (and ends
    /// the walk); an empty attribute is fine; the last attribute needs no padding after it;
    /// 1–3 bytes left after the last attribute are padding, not an attribute.
    #[test]
    fn short_lengths_empty_attributes_and_trailing_bytes() {
        for len in 0u16..4 {
            let mut b = len.to_ne_bytes().to_vec();
            b.extend_from_slice(&1u16.to_ne_bytes());
            b.extend_from_slice(&[0; 4]);
            let v: Vec<_> = Attrs::new(&b).collect();
            assert_eq!(v.len(), 1, "len {len}");
            assert!(v[0].is_err(), "len {len}");
        }
        let mut b = Vec::new();
        put(&mut b, 3, &[]);
        put(&mut b, 4, &[9, 9, 9, 9, 9]); // 9 bytes, padded to 12
        b.truncate(b.len() - 3); // the last attribute without its padding
        let v: Vec<_> = Attrs::new(&b).collect::<Result<_>>().unwrap();
        assert_eq!((v[0].kind, v[0].data.len()), (3, 0));
        assert_eq!(v[1].data, &[9, 9, 9, 9, 9]);
        for extra in 1..4 {
            let mut t = Vec::new();
            put(&mut t, 5, &[1, 2, 3, 4]);
            t.extend(std::iter::repeat_n(0xff, extra));
            let v: Vec<_> = Attrs::new(&t).collect::<Result<_>>().unwrap();
            assert_eq!(v.len(), 1, "{extra} trailing bytes");
        }
        // Fixed-width readers refuse data shorter than their width.
        let a = Attr {
            kind: 0,
            data: &[1, 2],
        };
        assert!(a.be32().is_err() && a.be64().is_err() && a.ne32().is_err());
        assert_eq!(a.be16().unwrap(), 0x0102);
        let empty = Attr { kind: 0, data: &[] };
        assert!(empty.u8().is_err() && empty.be16().is_err());
    }
}
