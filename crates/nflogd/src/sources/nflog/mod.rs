//! The `nflog` source: packets from nfnetlink_log groups (nft `log group N`, iptables `-j NFLOG`).

mod config;
mod decode;
mod ifnames;
mod source;

pub use config::NflogConfig;
pub use source::spawn;
