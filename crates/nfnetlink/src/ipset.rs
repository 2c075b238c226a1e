//! ipset's netlink commands a guard needs: add a prefix to a `hash:net` set with a timeout, and
//! delete it. Many commands go in one datagram; ipset has no transactions, so each is answered
//! on its own.

use crate::attr::{put, NLA_F_NESTED, NLA_F_NET_BYTEORDER};
use crate::message::{NLM_F_ACK, NLM_F_REQUEST};
use crate::socket::NetlinkSocket;
use crate::{Error, Result};
use std::net::IpAddr;
use std::time::Duration;

const NFNL_SUBSYS_IPSET: u8 = 6;
const IPSET_PROTOCOL: u8 = 7;
const IPSET_CMD_FLUSH: u8 = 4;
const IPSET_CMD_ADD: u8 = 9;
const IPSET_CMD_DEL: u8 = 10;
const IPSET_ATTR_PROTOCOL: u16 = 1;
const IPSET_ATTR_SETNAME: u16 = 2;
const IPSET_ATTR_FLAGS: u16 = 6;
const IPSET_ATTR_DATA: u16 = 7;
const IPSET_ATTR_IP: u16 = 1;
const IPSET_ATTR_CIDR: u16 = 3;
const IPSET_ATTR_TIMEOUT: u16 = 6;
const IPSET_ATTR_IPADDR_IPV4: u16 = 1;
const IPSET_ATTR_IPADDR_IPV6: u16 = 2;
const IPSET_FLAG_EXIST: u32 = 1;
/// The kernel's error for "already added" or "not in the set" (IPSET_ERR_EXIST).
const IPSET_ERR_EXIST: i32 = 4103;
/// ipset's longest timeout, in seconds.
pub const MAX_TIMEOUT: u64 = 2_147_483;

/// One command: `add` with a timeout (refreshed if the prefix is there), `del`, or `flush` (the
/// set emptied).
pub enum Command<'a> {
    Flush {
        set: &'a str,
    },
    Add {
        set: &'a str,
        addr: IpAddr,
        prefix_len: u8,
        timeout: Duration,
    },
    Del {
        set: &'a str,
        addr: IpAddr,
        prefix_len: u8,
    },
}

fn nested(buf: &mut Vec<u8>, kind: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    f(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Appends one command message to `buf`.
fn header(buf: &mut Vec<u8>, kind: u8, family: u8, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&(((NFNL_SUBSYS_IPSET as u16) << 8) | kind as u16).to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0, 0, 0]);
}

pub fn encode(buf: &mut Vec<u8>, seq: u32, cmd: &Command) {
    let start = buf.len();
    let (kind, set, addr, len, timeout) = match cmd {
        Command::Flush { set } => {
            header(buf, IPSET_CMD_FLUSH, 0, seq);
            put(buf, IPSET_ATTR_PROTOCOL, &[IPSET_PROTOCOL]);
            put(buf, IPSET_ATTR_SETNAME, &cstr(set));
            let total = (buf.len() - start) as u32;
            buf[start..start + 4].copy_from_slice(&total.to_ne_bytes());
            return;
        }
        Command::Add {
            set,
            addr,
            prefix_len,
            timeout,
        } => (IPSET_CMD_ADD, *set, *addr, *prefix_len, Some(*timeout)),
        Command::Del {
            set,
            addr,
            prefix_len,
        } => (IPSET_CMD_DEL, *set, *addr, *prefix_len, None),
    };
    let family = if addr.is_ipv4() { 2u8 } else { 10 };
    header(buf, kind, family, seq);
    put(buf, IPSET_ATTR_PROTOCOL, &[IPSET_PROTOCOL]);
    put(buf, IPSET_ATTR_SETNAME, &cstr(set));
    if timeout.is_some() {
        put(
            buf,
            IPSET_ATTR_FLAGS | NLA_F_NET_BYTEORDER,
            &IPSET_FLAG_EXIST.to_be_bytes(),
        );
    }
    nested(buf, IPSET_ATTR_DATA, |d| {
        nested(d, IPSET_ATTR_IP, |ip| match addr {
            IpAddr::V4(a) => put(
                ip,
                IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER,
                &a.octets(),
            ),
            IpAddr::V6(a) => put(
                ip,
                IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER,
                &a.octets(),
            ),
        });
        put(d, IPSET_ATTR_CIDR, &[len]);
        if let Some(t) = timeout {
            let secs = t.as_secs().clamp(1, MAX_TIMEOUT) as u32;
            put(
                d,
                IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER,
                &secs.to_be_bytes(),
            );
        }
    });
    let total = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&total.to_ne_bytes());
}

/// Sends the commands (several to a datagram) and waits for each answer. A delete of what is
/// not there is no error; the first other error is returned after every answer came.
pub fn run(sock: &NetlinkSocket, seq_base: u32, cmds: &[Command]) -> Result<()> {
    let mut first_error = None;
    let mut seq = seq_base;
    for chunk in cmds.chunks(256) {
        let mut buf = Vec::with_capacity(chunk.len() * 80);
        let first = seq.wrapping_add(1);
        for c in chunk {
            seq = seq.wrapping_add(1);
            encode(&mut buf, seq, c);
        }
        sock.send(&buf)?;
        sock.wait_acks(first, chunk.len(), |i, errno| {
            let removal = !matches!(chunk[i], Command::Add { .. });
            if errno != 0 && !(removal && errno == IPSET_ERR_EXIST) && first_error.is_none() {
                first_error = Some(Error::Kernel { errno });
            }
            true
        })?;
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Messages;

    /// An add: protocol, set name, the exist flag, and the data nest with the address (in
    /// network order, flagged so), its prefix length and the timeout in seconds.
    #[test]
    fn an_add_carries_what_the_kernel_checks() {
        let mut b = Vec::new();
        encode(
            &mut b,
            5,
            &Command::Add {
                set: "nflogd4",
                addr: "192.0.2.7".parse().unwrap(),
                prefix_len: 32,
                timeout: Duration::from_secs(600),
            },
        );
        let m = Messages::new(&b).next().unwrap().unwrap();
        assert_eq!((m.subsys(), m.subtype(), m.seq), (6, IPSET_CMD_ADD, 5));
        let (family, _, _, attrs) = m.nfgen().unwrap();
        assert_eq!(family, 2);
        let attrs: Vec<_> = attrs.collect::<Result<_>>().unwrap();
        assert_eq!(attrs[0].data, [7]);
        assert_eq!(attrs[1].cstr(), b"nflogd4");
        let data = attrs.iter().find(|a| a.kind == IPSET_ATTR_DATA).unwrap();
        let inner: Vec<_> = data.nested().collect::<Result<_>>().unwrap();
        let ip: Vec<_> = inner[0].nested().collect::<Result<_>>().unwrap();
        assert_eq!(ip[0].data, [192, 0, 2, 7]);
        assert_eq!(inner[1].data, [32]);
        assert_eq!(inner[2].data, 600u32.to_be_bytes());
    }
}
