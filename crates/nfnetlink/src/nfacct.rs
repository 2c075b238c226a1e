//! nfnetlink_acct (`linux/netfilter/nfnetlink_acct.h`): the named accounting objects that
//! `nfacct add` creates and iptables' `-m nfacct` rules count into.

use crate::{Error, Result};

const NFNL_SUBSYS_ACCT: u8 = 7;
const NFNL_MSG_ACCT_NEW: u8 = 0;
const NFNL_MSG_ACCT_GET: u8 = 1;
const NFNL_MSG_ACCT_GET_CTRZERO: u8 = 2;
const NFACCT_NAME: u16 = 1;
const NFACCT_PKTS: u16 = 2;
const NFACCT_BYTES: u16 = 3;

/// One accounting object and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accounting {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Parses one object of a dump; `Ok(None)` for other messages.
pub fn parse(m: &crate::Message) -> Result<Option<Accounting>> {
    if m.subsys() != NFNL_SUBSYS_ACCT || m.subtype() != NFNL_MSG_ACCT_NEW {
        return Ok(None);
    }
    let (_, _, _, attrs) = m.nfgen()?;
    let mut a = Accounting::default();
    let mut named = false;
    for attr in attrs {
        let attr = attr?;
        match attr.kind {
            NFACCT_NAME => {
                let raw = attr.data.split(|&b| b == 0).next().unwrap_or_default();
                a.name = String::from_utf8_lossy(raw).into_owned();
                named = true;
            }
            NFACCT_PKTS => a.packets = attr.be64()?,
            NFACCT_BYTES => a.bytes = attr.be64()?,
            _ => {}
        }
    }
    if !named {
        return Err(Error::Malformed("nfacct object without a name"));
    }
    Ok(Some(a))
}

/// Every accounting object of the socket's namespace; with `zero`, read and reset in one step
/// (so counts of successive dumps add up to the total). Also returns how many did not parse.
pub fn dump(
    sock: &mut crate::NetlinkSocket,
    buf: &mut [u8],
    zero: bool,
) -> Result<(Vec<Accounting>, u64)> {
    let msg = if zero {
        NFNL_MSG_ACCT_GET_CTRZERO
    } else {
        NFNL_MSG_ACCT_GET
    };
    let (mut objects, mut malformed) = (Vec::new(), 0u64);
    crate::socket::dump(sock, buf, NFNL_SUBSYS_ACCT, msg, |m| match parse(m) {
        Ok(Some(a)) => objects.push(a),
        Ok(None) => {}
        Err(_) => malformed += 1,
    })?;
    Ok((objects, malformed))
}
