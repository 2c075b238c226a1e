//! IPv4 options (RFC 791, RFC 2113, the IANA "IP Option Numbers" registry), decoded from the
//! option bytes of a header: the routes and timestamps a packet carries, and the names of the
//! others, so that a record says what the kernel's `OPT (…)` hex means.

use std::net::Ipv4Addr;

/// One option, in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv4Option {
    /// Record Route (7): the addresses recorded so far.
    RecordRoute(Vec<Ipv4Addr>),
    /// Loose (131) or Strict (137) Source Route: every address of the route, and how many of
    /// them were passed already.
    SourceRoute {
        strict: bool,
        route: Vec<Ipv4Addr>,
        passed: usize,
    },
    /// Timestamp (68): the entries recorded so far, with their address when the flag asks for
    /// one, and the count of hops that could not record (overflow).
    Timestamp {
        entries: Vec<(Option<Ipv4Addr>, u32)>,
        overflow: u8,
    },
    /// Router Alert (148, RFC 2113).
    RouterAlert(u16),
    /// Stream Identifier (136).
    StreamId(u16),
    /// Any other option, or one too short for its kind: its number and length.
    Other { kind: u8, len: u8 },
}

impl Ipv4Option {
    /// The registry's short name (`RR`, `LSR`, `TS`…), or the number for an unassigned one.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        let kind = match self {
            Ipv4Option::RecordRoute(_) => 7,
            Ipv4Option::SourceRoute { strict: false, .. } => 131,
            Ipv4Option::SourceRoute { strict: true, .. } => 137,
            Ipv4Option::Timestamp { .. } => 68,
            Ipv4Option::RouterAlert(_) => 148,
            Ipv4Option::StreamId(_) => 136,
            Ipv4Option::Other { kind, .. } => *kind,
        };
        kind_name(kind).map_or_else(|| kind.to_string().into(), Into::into)
    }
}

/// Names of the IANA registry (copied flag, class and number make up the value).
pub fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        0 => "EOOL",
        1 => "NOP",
        7 => "RR",
        10 => "ZSU",
        11 => "MTUP",
        12 => "MTUR",
        15 => "ENCODE",
        25 => "QS",
        30 | 94 | 158 | 222 => "EXP",
        68 => "TS",
        82 => "TR",
        130 => "SEC",
        131 => "LSR",
        133 => "E-SEC",
        134 => "CIPSO",
        136 => "SID",
        137 => "SSR",
        142 => "VISA",
        144 => "IMITD",
        145 => "EIP",
        147 => "ADDEXT",
        148 => "RTRALT",
        149 => "SDB",
        151 => "DPS",
        152 => "UMP",
        205 => "FINN",
        _ => return None,
    })
}

fn addrs(b: &[u8]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    b.chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
}

/// The options in `b`, in order; stops at End of Options or at a length that does not fit.
pub fn decode(b: &[u8]) -> Vec<Ipv4Option> {
    crate::bytes::options(b)
        .map(|(kind, len, body)| {
            // The pointer is 1-based from the option's start: the first slot is at 4 (5 for TS).
            let pointer = body.first().copied().unwrap_or(0) as usize;
            match (kind, body.len()) {
                (7 | 131 | 137, n) if n >= 1 => {
                    let slots = &body[1..];
                    let passed = (pointer.saturating_sub(4) / 4).min(slots.len() / 4);
                    if kind == 7 {
                        Ipv4Option::RecordRoute(addrs(&slots[..passed * 4]).collect())
                    } else {
                        Ipv4Option::SourceRoute {
                            strict: kind == 137,
                            route: addrs(slots).collect(),
                            passed,
                        }
                    }
                }
                (68, n) if n >= 2 => timestamp(body, pointer),
                (148, 2) => Ipv4Option::RouterAlert(u16::from_be_bytes([body[0], body[1]])),
                (136, 2) => Ipv4Option::StreamId(u16::from_be_bytes([body[0], body[1]])),
                _ => Ipv4Option::Other { kind, len },
            }
        })
        .collect()
}

/// The Timestamp option's body: pointer, overflow and flag, then the entries (a time, or an
/// address and a time when the flag is 1 or 3).
fn timestamp(body: &[u8], pointer: usize) -> Ipv4Option {
    let (overflow, flag) = (body[1] >> 4, body[1] & 15);
    let data = &body[2..];
    let with_addr = flag == 1 || flag == 3;
    let size = if with_addr { 8 } else { 4 };
    let recorded = (pointer.saturating_sub(5) / size).min(data.len() / size);
    let entries = data[..recorded * size]
        .chunks_exact(size)
        .map(|c| {
            let t = |o: usize| u32::from_be_bytes([c[o], c[o + 1], c[o + 2], c[o + 3]]);
            if with_addr {
                (Some(Ipv4Addr::new(c[0], c[1], c[2], c[3])), t(4))
            } else {
                (None, t(0))
            }
        })
        .collect();
    Ipv4Option::Timestamp { entries, overflow }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_timestamps_and_alerts() {
        let a = |x: u8| Ipv4Addr::new(10, 0, 0, x);
        // RR with two of three slots used (pointer 12), NOP, Router Alert 0, End.
        let rr = [
            7, 15, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 1, 148, 4, 0, 0, 0,
        ];
        assert_eq!(
            decode(&rr),
            vec![
                Ipv4Option::RecordRoute(vec![a(1), a(2)]),
                Ipv4Option::RouterAlert(0)
            ]
        );
        // LSRR to 10.0.0.1 then 10.0.0.2, nothing passed yet (pointer 4); SSRR one passed.
        let lsrr = [131, 11, 4, 10, 0, 0, 1, 10, 0, 0, 2, 137, 7, 8, 10, 0, 0, 3];
        let d = decode(&lsrr);
        assert_eq!(
            d[0],
            Ipv4Option::SourceRoute {
                strict: false,
                route: vec![a(1), a(2)],
                passed: 0
            }
        );
        assert_eq!(
            d[1],
            Ipv4Option::SourceRoute {
                strict: true,
                route: vec![a(3)],
                passed: 1
            }
        );
        assert_eq!((d[0].name(), d[1].name()), ("LSR".into(), "SSR".into()));
        // Timestamps only (flag 0): two recorded of three, overflow 2.
        let ts = [68, 16, 13, 0x20, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 0];
        assert_eq!(
            decode(&ts),
            vec![Ipv4Option::Timestamp {
                entries: vec![(None, 5), (None, 6)],
                overflow: 2
            }]
        );
        // Address and timestamp pairs (flag 1): one recorded.
        let tsa = [
            68, 20, 13, 1, 10, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            decode(&tsa),
            vec![Ipv4Option::Timestamp {
                entries: vec![(Some(a(9)), 256)],
                overflow: 0
            }]
        );
    }

    #[test]
    fn malformed_lengths_stop_the_walk() {
        assert_eq!(decode(&[7, 1, 0]), vec![]);
        assert_eq!(decode(&[7, 40, 4]), vec![]);
        assert_eq!(
            decode(&[148, 2]),
            vec![Ipv4Option::Other { kind: 148, len: 2 }]
        );
        assert_eq!(
            decode(&[68, 3, 5]),
            vec![Ipv4Option::Other { kind: 68, len: 3 }]
        );
        assert_eq!(decode(&[7, 3, 200]), vec![Ipv4Option::RecordRoute(vec![])]);
        assert_eq!(
            decode(&[130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0])[0].name(),
            "SEC"
        );
        assert_eq!(decode(&[99, 2])[0].name(), "99");
        // Every byte string decodes without a panic.
        let mut x = 1u32;
        for _ in 0..20_000 {
            let b: Vec<u8> = (0..(x % 41))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    [0, 1, 7, 68, 131, 137, 148, 136][(x % 8) as usize] ^ (x >> 8) as u8 & 0x3
                })
                .collect();
            let _ = decode(&b);
        }
    }
}
