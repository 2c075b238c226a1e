//! A change in the bytes a disk spool keeps: the rows survive an outage of the database or a
//! restart of nflogd as they were made, so replay writes exactly what would have been written.
//!
//! Layout: a tag byte (table code, or 0xFF for a close), then for an insert the values, each a
//! type byte and its payload; integers are little-endian, text is length-prefixed.

use super::rows::{Change, Row, Table, Value};
use event::Timestamp;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const CLOSE: u8 = 0xFF;

pub fn encode(c: &Change, out: &mut Vec<u8>) {
    match c {
        Change::Close { host, ct_id } => {
            out.push(CLOSE);
            text(host, out);
            out.extend_from_slice(&ct_id.to_le_bytes());
        }
        Change::Insert(r) => {
            out.push(r.table.code());
            for v in &r.values {
                match v {
                    Value::Null => out.push(0),
                    Value::Time(t) => {
                        out.push(1);
                        out.extend_from_slice(&t.secs.to_le_bytes());
                        out.extend_from_slice(&t.micros.to_le_bytes());
                    }
                    Value::Text(s) => {
                        out.push(2);
                        text(s, out);
                    }
                    Value::Int(i) => {
                        out.push(3);
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                    Value::Inet(IpAddr::V4(a)) => {
                        out.push(4);
                        out.extend_from_slice(&a.octets());
                    }
                    Value::Inet(IpAddr::V6(a)) => {
                        out.push(5);
                        out.extend_from_slice(&a.octets());
                    }
                    Value::Mac(m) => {
                        out.push(6);
                        out.extend_from_slice(m);
                    }
                    Value::Bool(b) => out.push(if *b { 8 } else { 7 }),
                }
            }
        }
    }
}

fn text(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn text(&mut self) -> Option<String> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The change `encode` wrote; None for bytes it did not write (the spool's CRC makes that rare).
pub fn decode(b: &[u8]) -> Option<Change> {
    let mut r = Reader(b);
    let tag = r.array::<1>()?[0];
    if tag == CLOSE {
        let host = r.text()?;
        let ct_id = i64::from_le_bytes(r.array()?);
        return (r.0.is_empty()).then_some(Change::Close { host, ct_id });
    }
    let table = Table::from_code(tag)?;
    let mut values = Vec::with_capacity(table.columns().len());
    while !r.0.is_empty() {
        let t = r.array::<1>()?[0];
        values.push(match t {
            0 => Value::Null,
            1 => Value::Time(Timestamp {
                secs: i64::from_le_bytes(r.array()?),
                micros: u32::from_le_bytes(r.array()?),
            }),
            2 => Value::Text(r.text()?.into()),
            3 => Value::Int(i64::from_le_bytes(r.array()?)),
            4 => Value::Inet(Ipv4Addr::from(r.array::<4>()?).into()),
            5 => Value::Inet(Ipv6Addr::from(r.array::<16>()?).into()),
            6 => Value::Mac(r.array()?),
            7 => Value::Bool(false),
            8 => Value::Bool(true),
            _ => return None,
        });
    }
    (values.len() == table.columns().len()).then_some(Change::Insert(Row { table, values }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        let row = Row {
            table: Table::Counters,
            values: vec![
                Value::Time(Timestamp {
                    secs: 1_700_000_000,
                    micros: 42,
                }),
                Value::Null,
                Value::Text("ssh-in ü".into()),
                Value::Int(-5),
                Value::Int(i64::MAX),
            ],
        };
        for c in [
            Change::Insert(row),
            Change::Close {
                host: "gw".into(),
                ct_id: 99,
            },
        ] {
            let mut b = Vec::new();
            encode(&c, &mut b);
            assert_eq!(decode(&b), Some(c));
            // Every shorter prefix is refused rather than misread.
            for n in 0..b.len() {
                assert_eq!(decode(&b[..n]), None, "prefix {n}");
            }
        }
        let mut b = Vec::new();
        let v = vec![
            Value::Inet("10.0.0.1".parse().unwrap()),
            Value::Inet("2001:db8::1".parse().unwrap()),
            Value::Mac([1, 2, 3, 4, 5, 6]),
            Value::Bool(true),
            Value::Bool(false),
            Value::Null,
        ];
        encode(
            &Change::Insert(Row {
                table: Table::RawLines,
                values: v.clone(),
            }),
            &mut b,
        );
        assert_eq!(
            decode(&b),
            Some(Change::Insert(Row {
                table: Table::RawLines,
                values: v
            }))
        );
    }
}
