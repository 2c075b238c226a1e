//! The kernel's netfilter LOG line (`net/netfilter/nf_log_syslog.c`): rendering a packet record
//! into the exact text the kernel's `LOG` target / nft `log` statement prints.
//!
//! `render` reproduces the kernel byte for byte for the same packet and the same log flags,
//! including its markers (`INCOMPLETE [n bytes]`, `TRUNCATED`, `OPT (…)`) and where the kernel
//! ends a line early. shared/research/formats.md §1 is the token-by-token reference.

mod flags;
mod render;

pub use flags::LogFlags;
pub use render::render;
