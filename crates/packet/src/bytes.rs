//! Bounds-checked big-endian reads: every accessor returns `None` past the end.

pub(crate) fn u8_at(b: &[u8], i: usize) -> Option<u8> {
    b.get(i).copied()
}

pub(crate) fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    let s = b.get(i..i.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

pub(crate) fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn array_at<const N: usize>(b: &[u8], i: usize) -> Option<[u8; N]> {
    b.get(i..i.checked_add(N)?)?.try_into().ok()
}

/// The kind-length-value options of IPv4 and TCP headers (RFC 791, RFC 9293), in order, as
/// (kind, length, body). Kind 1 (no-op) is passed over; the walk ends at kind 0 (end of list)
/// and at a length below 2 or past the end.
pub(crate) fn options(mut b: &[u8]) -> impl Iterator<Item = (u8, u8, &[u8])> {
    std::iter::from_fn(move || loop {
        let &kind = b.first()?;
        match kind {
            0 => return None,
            1 => b = &b[1..],
            _ => {
                let &len = b.get(1)?;
                if len < 2 || len as usize > b.len() {
                    return None;
                }
                let body = &b[2..len as usize];
                b = &b[len as usize..];
                return Some((kind, len, body));
            }
        }
    })
}
