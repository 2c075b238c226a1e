//! What a guard reads besides packets: log lines that are not netfilter records (auth logs),
//! and what it decides (ban, unban), which is itself an event any sink takes.

use crate::Timestamp;
use std::sync::Arc;

/// A log line of some program (sshd, postfix, dovecot), handed to a guard as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: Timestamp,
    pub host: Option<Arc<str>>,
    /// The program that wrote it, when the line's wrapper says (syslog TAG, journald's
    /// SYSLOG_IDENTIFIER); None for a bare message (`sshd -E FILE`).
    pub program: Option<Arc<str>>,
    pub pid: Option<u32>,
    /// The message, without its wrapper.
    pub message: String,
    /// Where it came from: a file path, "stdin", a syslog peer.
    pub origin: Arc<str>,
}

/// What a guard did about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ban,
    Unban,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ban => "ban",
            Verdict::Unban => "unban",
        }
    }
}

/// A guard's decision: the prefix banned (or released), why, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub time: Timestamp,
    /// The guard's name (`[transforms.NAME]`).
    pub guard: Arc<str>,
    pub verdict: Verdict,
    /// The address that offended, and the prefix the ban covers (a /64 for IPv6 by default).
    pub address: std::net::IpAddr,
    pub prefix: ipnet::IpNet,
    /// The detector that decided (`sshd`, `portscan`, …), or `manual`, `expired`.
    pub detector: Arc<str>,
    /// How many counted failures (or distinct ports) within the detector's window.
    pub evidence: u32,
    /// This address's ban count, this one included (repeat offenders are banned longer).
    pub offense: u32,
    /// How long the ban lasts, in seconds (a ban), or lasted (an unban).
    pub duration_secs: u64,
    /// Decided only: `dry_run` left the kernel alone.
    pub dry_run: bool,
    /// One line for people: what was seen.
    pub reason: String,
}
