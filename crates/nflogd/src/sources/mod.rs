//! Sources: where events come from. Each runs on its own thread, reads its kernel socket or file
//! in batches, and hands batches to the fan-out without ever waiting on a sink.

pub mod conntrack;
pub mod file;
pub mod kmsg;
pub mod lines;
pub mod nfacct;
pub mod nflog;
pub mod stdin;
pub mod syslog;
pub mod thread;

/// Where a line source starts when it has no saved position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// New lines only (default).
    #[default]
    End,
    /// Everything already there first.
    Beginning,
}
