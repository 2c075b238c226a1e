//! nf_tables messages for a guard's own table: a table, address sets with per-element
//! timeouts and prefixes (interval sets), base chains whose rules drop what a set holds, set
//! elements added and removed, all in one transaction (a batch), and the notifications the
//! kernel multicasts when someone else changes the ruleset.
//!
//! Written here rather than taken from a crate: the Rust nf_tables crates are either GPL
//! (rustables) or bind libnftnl's C library (nftnl), and a guard needs only these few messages.
//! The encoding follows what `nft --debug=netlink` sends for the same ruleset.

use crate::attr::{put, NLA_F_NESTED};
use crate::message::{Message, NLM_F_ACK, NLM_F_REQUEST};
use crate::socket::NetlinkSocket;
use crate::{Error, Result};
use std::net::IpAddr;
use std::time::Duration;

pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
/// The multicast group of ruleset changes.
pub const NFNLGRP_NFTABLES: u32 = 7;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NFT_MSG_NEWTABLE: u8 = 0;
pub const NFT_MSG_DELTABLE: u8 = 2;
pub const NFT_MSG_NEWCHAIN: u8 = 3;
pub const NFT_MSG_DELCHAIN: u8 = 5;
pub const NFT_MSG_NEWRULE: u8 = 6;
pub const NFT_MSG_DELRULE: u8 = 8;
pub const NFT_MSG_NEWSET: u8 = 9;
pub const NFT_MSG_DELSET: u8 = 11;
pub const NFT_MSG_NEWSETELEM: u8 = 12;
pub const NFT_MSG_DESTROYTABLE: u8 = 26;
pub const NFT_MSG_DESTROYSETELEM: u8 = 30;

const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

/// NFPROTO_INET: a table for IPv4 and IPv6 at once.
pub const FAMILY_INET: u8 = 1;

const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// nft's datatype numbers, kept in the set so `nft list` prints addresses.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_NFPROTO: u32 = 15;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NF_DROP: u32 = 0;

/// A netfilter hook a base chain hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Input = 1,
    Forward = 2,
}

/// Builds nested attributes in place: the length is patched when the nest ends.
struct Nest<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Nest<'a> {
    fn open(buf: &'a mut Vec<u8>, kind: u16) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Nest { buf, start }
    }
    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        put(self.buf, kind, data);
        self
    }
    fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut z = s.as_bytes().to_vec();
        z.push(0);
        self.attr(kind, &z)
    }
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_be_bytes())
    }
    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Nest)) -> &mut Self {
        let mut n = Nest::open(self.buf, kind);
        f(&mut n);
        n.close();
        self
    }
    fn close(self) {
        let len = self.buf.len() - self.start;
        debug_assert!(
            len <= u16::MAX as usize,
            "a netlink attribute of {len} bytes"
        );
        let len = len as u16;
        self.buf[self.start..self.start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One nf_tables message body (attributes after the nfgenmsg), built by `f`.
fn message(batch: &mut Batch, msg: u8, flags: u16, f: impl FnOnce(&mut Nest)) {
    let seq = batch.next_seq();
    let start = batch.buf.len();
    let kind = ((NFNL_SUBSYS_NFTABLES as u16) << 8) | msg as u16;
    let b = &mut batch.buf;
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[FAMILY_INET, 0, 0, 0]);
    // The attributes go in a pseudo-nest whose header is then cut: `Nest` needs a parent.
    let inner = b.len();
    {
        let mut n = Nest {
            buf: b,
            start: inner,
        };
        f(&mut n);
    }
    let len = (b.len() - start) as u32;
    b[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// A set element: a prefix's first address, or (`end`) the address just past it.
fn element(n: &mut Nest, key: &[u8], end: bool, timeout: Option<Duration>) {
    n.nest(1, |e| {
        e.nest(1, |k| {
            k.attr(1, key);
        });
        if end {
            e.be32(3, NFT_SET_ELEM_INTERVAL_END);
        }
        if let Some(t) = timeout {
            // At least 1 ms: a zero timeout means "the set's default" to the kernel.
            let ms = (t.as_millis() as u64).max(1);
            e.attr(4, &ms.to_be_bytes());
        }
    });
}

/// An address prefix as the set holds it: its first address, and the first address past it
/// (None when it runs to the end of the address space).
pub fn interval(addr: IpAddr, prefix_len: u8) -> (Vec<u8>, Option<Vec<u8>>) {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let host = if prefix_len >= 32 {
                0
            } else {
                u32::MAX >> prefix_len
            };
            let first = bits & !host;
            let end = (first | host).checked_add(1);
            (
                first.to_be_bytes().to_vec(),
                end.map(|e| e.to_be_bytes().to_vec()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let host = if prefix_len >= 128 {
                0
            } else {
                u128::MAX >> prefix_len
            };
            let first = bits & !host;
            let end = (first | host).checked_add(1);
            (
                first.to_be_bytes().to_vec(),
                end.map(|e| e.to_be_bytes().to_vec()),
            )
        }
    }
}

/// The names a guard's table holds.
#[derive(Debug, Clone)]
pub struct GuardTable {
    pub table: String,
    pub hooks: Vec<Hook>,
    pub priority: i32,
}

impl GuardTable {
    pub const SET4: &'static str = "ban4";
    pub const SET6: &'static str = "ban6";

    fn set_of(addr: IpAddr) -> &'static str {
        match addr {
            IpAddr::V4(_) => Self::SET4,
            IpAddr::V6(_) => Self::SET6,
        }
    }
}

/// One nf_tables transaction: messages between a batch begin and end, applied by the kernel
/// all together or not at all.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    first_seq: u32,
    /// Set elements in the batch (for the caller's counts).
    pub elements: usize,
}

impl Batch {
    pub fn new(seq_base: u32) -> Self {
        let mut b = Batch {
            buf: Vec::with_capacity(4096),
            seq: seq_base,
            first_seq: seq_base,
            elements: 0,
        };
        b.control(NFNL_MSG_BATCH_BEGIN);
        b
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn control(&mut self, kind: u16) {
        let seq = self.next_seq();
        let b = &mut self.buf;
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family unspec, version 0, res_id = the subsystem (big endian).
        b.extend_from_slice(&[0, 0, 0, NFNL_SUBSYS_NFTABLES]);
    }

    /// Removes the table (and all it holds) if it exists.
    pub fn destroy_table(&mut self, t: &GuardTable) {
        message(self, NFT_MSG_DESTROYTABLE, 0, |n| {
            n.str(1, &t.table);
        });
    }

    /// The table, its two sets (interval and timeout flags) and a drop rule per family in a
    /// base chain per hook.
    pub fn create_table(&mut self, t: &GuardTable) {
        message(self, NFT_MSG_NEWTABLE, NLM_F_CREATE, |n| {
            n.str(1, &t.table).be32(2, 0);
        });
        for (set, key_type, key_len, id) in [
            (GuardTable::SET4, TYPE_IPADDR, 4u32, 1u32),
            (GuardTable::SET6, TYPE_IP6ADDR, 16, 2),
        ] {
            message(self, NFT_MSG_NEWSET, NLM_F_CREATE, |n| {
                n.str(1, &t.table)
                    .str(2, set)
                    .be32(3, NFT_SET_INTERVAL | NFT_SET_TIMEOUT)
                    .be32(4, key_type)
                    .be32(5, key_len)
                    .be32(10, id);
            });
        }
        // An interval set starts with the end of an empty interval at the lowest address, as
        // nft itself writes a new interval set.
        for (set, zero) in [
            (GuardTable::SET4, &[0u8; 4][..]),
            (GuardTable::SET6, &[0u8; 16][..]),
        ] {
            message(self, NFT_MSG_NEWSETELEM, NLM_F_CREATE, |n| {
                n.str(1, &t.table).str(2, set).nest(3, |list| {
                    element(list, zero, true, None);
                });
            });
        }
        for hook in &t.hooks {
            let chain = match hook {
                Hook::Input => "input",
                Hook::Forward => "forward",
            };
            message(self, NFT_MSG_NEWCHAIN, NLM_F_CREATE, |n| {
                n.str(1, &t.table)
                    .str(3, chain)
                    .nest(4, |h| {
                        h.be32(1, *hook as u32).be32(2, t.priority as u32);
                    })
                    .be32(5, 1) // policy accept
                    .str(7, "filter");
            });
            for (nfproto, offset, len, set, set_id) in [
                (2u8, 12u32, 4u32, GuardTable::SET4, 1u32),
                (10, 8, 16, GuardTable::SET6, 2),
            ] {
                message(self, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |n| {
                    n.str(1, &t.table).str(2, chain).nest(4, |exprs| {
                        expr(exprs, "meta", |d| {
                            d.be32(1, NFT_REG_1).be32(2, NFT_META_NFPROTO);
                        });
                        expr(exprs, "cmp", |d| {
                            d.be32(1, NFT_REG_1).be32(2, 0).nest(3, |v| {
                                v.attr(1, &[nfproto]);
                            });
                        });
                        expr(exprs, "payload", |d| {
                            d.be32(1, NFT_REG_1)
                                .be32(2, NFT_PAYLOAD_NETWORK_HEADER)
                                .be32(3, offset)
                                .be32(4, len);
                        });
                        expr(exprs, "lookup", |d| {
                            d.str(1, set).be32(2, NFT_REG_1).be32(4, set_id);
                        });
                        expr(exprs, "counter", |_| {});
                        expr(exprs, "immediate", |d| {
                            d.be32(1, NFT_REG_VERDICT).nest(2, |data| {
                                data.nest(2, |v| {
                                    v.be32(1, NF_DROP);
                                });
                            });
                        });
                    });
                });
            }
        }
    }

    /// Adds prefixes to the table's sets, each with its timeout (an interval: its first
    /// address, and the address past it flagged as the end).
    pub fn add(&mut self, t: &GuardTable, items: &[(IpAddr, u8, Duration)]) {
        self.elements(
            t,
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            items.iter().map(|i| (i.0, i.1, Some(i.2))),
        );
    }

    /// Removes prefixes (one that is not there is no error).
    pub fn remove(&mut self, t: &GuardTable, items: &[(IpAddr, u8)]) {
        self.elements(
            t,
            NFT_MSG_DESTROYSETELEM,
            0,
            items.iter().map(|i| (i.0, i.1, None)),
        );
    }

    fn elements(
        &mut self,
        t: &GuardTable,
        msg: u8,
        flags: u16,
        items: impl Iterator<Item = (IpAddr, u8, Option<Duration>)>,
    ) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for i in items {
            match i.0 {
                IpAddr::V4(_) => v4.push(i),
                IpAddr::V6(_) => v6.push(i),
            }
        }
        for group in [v4, v6] {
            // A nested attribute's length is 16 bits: 500 IPv6 prefixes (a start and an end
            // element each) take about 38 KB, well below the 64 KB an element list can hold.
            for chunk in group.chunks(500) {
                let set = GuardTable::set_of(chunk[0].0);
                self.elements += chunk.len();
                message(self, msg, flags, |n| {
                    n.str(1, &t.table).str(2, set).nest(3, |list| {
                        for (addr, len, timeout) in chunk {
                            let (first, end) = interval(*addr, *len);
                            element(list, &first, false, *timeout);
                            if let Some(end) = end {
                                element(list, &end, true, None);
                            }
                        }
                    });
                });
            }
        }
    }

    /// Closes the batch; returns its bytes and the sequence numbers its messages carry.
    pub fn finish(mut self) -> (Vec<u8>, std::ops::RangeInclusive<u32>) {
        self.control(NFNL_MSG_BATCH_END);
        let range = self.first_seq.wrapping_add(1)..=self.seq;
        (self.buf, range)
    }
}

fn expr(list: &mut Nest, name: &str, data: impl FnOnce(&mut Nest)) {
    list.nest(1, |e| {
        e.str(1, name).nest(2, data);
    });
}

/// Sends a batch and waits for the kernel's answer to each of its messages: the first error
/// (the kernel then applied none of it), or Ok once every message is acknowledged.
pub fn commit(sock: &mut NetlinkSocket, batch: Batch) -> Result<()> {
    let (bytes, seqs) = batch.finish();
    // The kernel takes a batch in one message, which must fit the send buffer (a restore of
    // 100 000 bans is about 10 MB).
    if bytes.len() > 128 << 10 {
        sock.set_send_buffer(bytes.len() + (64 << 10))?;
    }
    sock.send(&bytes)?;
    // Every message but the begin and end markers asked for an acknowledgement.
    let count = seqs.end().wrapping_sub(*seqs.start()) as usize - 1;
    let mut first_error = None;
    sock.wait_acks(seqs.start().wrapping_add(1), count, |_, errno| {
        if errno != 0 {
            first_error = Some(Error::Kernel { errno });
        }
        // After an error the kernel aborts the batch: the rest is not answered.
        errno == 0
    })?;
    first_error.map_or(Ok(()), Err)
}

/// A ruleset change the kernel announced: what kind, to which table, and from which socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub msg: u8,
    pub table: Option<String>,
    /// The netlink port of the socket that made it (0: the kernel itself, or `nft`).
    pub portid: u32,
}

/// Reads a notification; None for what is not an nf_tables message.
pub fn change(m: &Message) -> Option<Change> {
    if m.subsys() != NFNL_SUBSYS_NFTABLES {
        return None;
    }
    let (_, _, _, attrs) = m.nfgen().ok()?;
    let msg = m.subtype();
    // The table's name is attribute 1 of every message kind a guard cares about.
    let table = attrs
        .filter_map(|a| a.ok())
        .find(|a| a.kind == 1)
        .map(|a| String::from_utf8_lossy(a.cstr()).into_owned());
    Some(Change {
        msg,
        table,
        portid: m.pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Messages;

    #[test]
    fn prefixes_become_intervals() {
        let (a, e) = interval("203.0.113.77".parse().unwrap(), 24);
        assert_eq!(a, [203, 0, 113, 0]);
        assert_eq!(e.unwrap(), [203, 0, 114, 0]);
        let (a, e) = interval("198.51.100.7".parse().unwrap(), 32);
        assert_eq!(
            (a, e.unwrap()),
            (vec![198, 51, 100, 7], vec![198, 51, 100, 8])
        );
        let (_, e) = interval("255.255.255.255".parse().unwrap(), 32);
        assert_eq!(e, None, "nothing lies past the last address");
        let (a, e) = interval("2001:db8:1:2:3:4:5:6".parse().unwrap(), 64);
        let want: std::net::Ipv6Addr = "2001:db8:1:2::".parse().unwrap();
        assert_eq!(a, want.octets());
        let past: std::net::Ipv6Addr = "2001:db8:1:3::".parse().unwrap();
        assert_eq!(e.unwrap(), past.octets());
    }

    /// Many prefixes make several messages, each element list within a 16-bit length.
    #[test]
    fn many_prefixes_are_split_into_messages_that_fit() {
        let t = GuardTable {
            table: "g".into(),
            hooks: vec![],
            priority: 0,
        };
        let items: Vec<_> = (0..3000u32)
            .map(|i| {
                let a =
                    std::net::Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 1);
                (IpAddr::V6(a), 64, Duration::from_secs(60))
            })
            .collect();
        let mut b = Batch::new(0);
        b.add(&t, &items);
        let (bytes, _) = b.finish();
        let msgs: Vec<_> = Messages::new(&bytes).collect::<Result<_>>().unwrap();
        assert_eq!(msgs.len(), 2 + 6);
        for m in &msgs[1..7] {
            let (_, _, _, attrs) = m.nfgen().unwrap();
            let list = attrs.filter_map(|a| a.ok()).find(|a| a.kind == 3).unwrap();
            assert_eq!(
                list.nested().count(),
                1000,
                "500 prefixes, two elements each"
            );
        }
    }

    /// The batch frames: begin and end markers around messages whose lengths add up, each
    /// element list naming the table and set.
    #[test]
    fn a_batch_frames_its_messages() {
        let t = GuardTable {
            table: "g".into(),
            hooks: vec![Hook::Input],
            priority: -10,
        };
        let mut b = Batch::new(100);
        b.create_table(&t);
        b.add(
            &t,
            &[("192.0.2.1".parse().unwrap(), 32, Duration::from_secs(60))],
        );
        b.remove(&t, &[("2001:db8::".parse().unwrap(), 64)]);
        let (bytes, seqs) = b.finish();
        let msgs: Vec<_> = Messages::new(&bytes).collect::<Result<_>>().unwrap();
        // begin, table, 2 sets, their first (end) elements, chain, 2 rules, add, remove, end
        assert_eq!(msgs.len(), 12);
        assert_eq!(msgs[0].kind, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs[11].kind, NFNL_MSG_BATCH_END);
        assert_eq!(seqs, 101..=112);
        let add = &msgs[9];
        assert_eq!(add.subtype(), NFT_MSG_NEWSETELEM);
        let c = change(add).unwrap();
        assert_eq!(c.table.as_deref(), Some("g"));
        assert_eq!(msgs[10].subtype(), NFT_MSG_DESTROYSETELEM);
    }
}
