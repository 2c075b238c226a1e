//! rtnetlink link lookups: interface name and device type by index.

use crate::attr::Attrs;
use crate::message::{Messages, Request, NLMSG_ERROR, NLM_F_REQUEST};
use crate::socket::{NetlinkSocket, Recv, NETLINK_ROUTE};
use crate::Result;
use std::time::Duration;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const IFLA_IFNAME: u16 = 3;
/// Multicast group of link changes.
pub const RTMGRP_LINK: u32 = 1;
const IFINFOMSG_LEN: usize = 16;

/// What rtnetlink says of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// ARPHRD_* device type.
    pub hwtype: u16,
}

/// A link change announced on RTMGRP_LINK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    New(Link),
    Removed(u32),
}

/// The link an RTM_NEWLINK message describes (its payload: ifinfomsg and attributes).
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    if payload.len() < IFINFOMSG_LEN {
        return None;
    }
    let hwtype = u16::from_ne_bytes([payload[2], payload[3]]);
    let index = i32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]) as u32;
    let name = Attrs::new(&payload[IFINFOMSG_LEN..])
        .filter_map(|a| a.ok())
        .find(|a| a.kind == IFLA_IFNAME)
        .map(|a| String::from_utf8_lossy(a.cstr()).into_owned())?;
    Some(Link {
        index,
        name,
        hwtype,
    })
}

/// A route socket for lookups, optionally listening to link changes.
pub struct LinkResolver {
    sock: NetlinkSocket,
    events: Option<NetlinkSocket>,
    buf: Vec<u8>,
}

impl LinkResolver {
    /// Opens the sockets in the calling thread's network namespace.
    pub fn open(watch_changes: bool) -> Result<Self> {
        let sock = NetlinkSocket::open(NETLINK_ROUTE)?;
        sock.set_recv_timeout(Duration::from_secs(1))?;
        let events = if watch_changes {
            let e = NetlinkSocket::open(NETLINK_ROUTE)?;
            e.add_membership(RTMGRP_LINK)?;
            Some(e)
        } else {
            None
        };
        Ok(LinkResolver {
            sock,
            events,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Asks the kernel for one link; `Ok(None)` when no such index exists.
    pub fn lookup(&mut self, index: u32) -> Result<Option<Link>> {
        let seq = self.sock.next_seq();
        let mut ifi = [0u8; IFINFOMSG_LEN];
        ifi[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
        let req = Request::new(RTM_GETLINK, NLM_F_REQUEST, seq)
            .raw(&ifi)
            .finish();
        self.sock.send(&req)?;
        loop {
            let len = match self.sock.recv(&mut self.buf, false)? {
                Recv::Data { len, .. } => len,
                Recv::Overrun => continue,
                Recv::Timeout => return Ok(None),
            };
            for m in Messages::new(&self.buf[..len]) {
                let m = m?;
                if m.seq != seq {
                    continue;
                }
                if m.kind == NLMSG_ERROR {
                    return Ok(None);
                }
                if m.kind == RTM_NEWLINK {
                    return Ok(parse_link(m.payload));
                }
            }
        }
    }

    /// Link changes seen since the last call (never blocks).
    pub fn changes(&mut self) -> Vec<LinkChange> {
        let mut out = Vec::new();
        let Some(ev) = &self.events else { return out };
        while let Ok(Recv::Data { len, .. }) = ev.recv(&mut self.buf, true) {
            for m in Messages::new(&self.buf[..len]).flatten() {
                match m.kind {
                    RTM_NEWLINK => out.extend(parse_link(m.payload).map(LinkChange::New)),
                    RTM_DELLINK => {
                        out.extend(parse_link(m.payload).map(|l| LinkChange::Removed(l.index)))
                    }
                    _ => {}
                }
            }
        }
        out
    }
}
