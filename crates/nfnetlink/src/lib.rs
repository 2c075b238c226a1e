//! Netlink sockets and the nfnetlink codecs nflogd reads: nfnetlink_log (NFLOG), the conntrack
//! attributes NFLOG attaches, and rtnetlink link lookups for interface names.
//!
//! Bytes in, typed messages out: parsers borrow from the receive buffer and never allocate, and
//! never panic on malformed input (a bad length is an error value). No async, no policy.

pub mod attr;
pub mod ctfilter;
pub mod ctnetlink;
pub mod ipset;
pub mod message;
pub mod nfacct;
pub mod nflog;
pub mod nftables;
pub mod rtnl;
pub mod socket;
pub mod trace;

pub use attr::{Attr, Attrs};
pub use message::{Message, Messages};
pub use socket::{NetlinkSocket, Recv};

/// Errors of the codecs and sockets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
    #[error("the kernel answered error {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
