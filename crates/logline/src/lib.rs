//! The kernel's netfilter LOG line (`net/netfilter/nf_log_syslog.c`), both directions: `render`
//! a packet record into the exact text the kernel's `LOG` target / nft `log` statement prints,
//! and `parse` such a line back into the record.
//!
//! `render` reproduces the kernel byte for byte for the same packet and the same log flags,
//! including its markers (`INCOMPLETE [n bytes]`, `TRUNCATED`, `OPT (…)`) and where the kernel
//! ends a line early. shared/research/formats.md §1 is the token-by-token reference.

pub mod envelope;
mod flags;
pub mod logemu;
mod parse;
mod render;

pub use flags::LogFlags;
pub use parse::{
    parse, parse_any, parse_ulogd, parse_xtables_packet, split_prefix, ParseError, Parsed,
};
pub use render::render;
