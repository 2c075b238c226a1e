//! Sources: where events come from. Each runs on its own thread, reads its kernel socket or file
//! in batches, and hands batches to its output (transforms running in its thread, then the
//! fan-out to sink queues).

pub mod conntrack;
pub mod file;
pub mod kmsg;
pub mod lines;
pub mod nfacct;
pub mod nflog;
pub mod nftrace;
pub mod pcap;
pub mod stdin;
pub mod syslog;
pub mod thread;

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::transforms::action::ActionConfig;
use anyhow::Result;
use std::sync::Arc;
use std::thread::JoinHandle;

crate::registry!(
    /// `[sources.NAME]`: one line per source type.
    SourceConfig: Source {
        "nflog" => Nflog(nflog::NflogConfig),
        "kmsg" => Kmsg(kmsg::KmsgConfig),
        "file" => File(file::FileSourceConfig),
        "stdin" => Stdin(stdin::StdinConfig),
        "syslog" => Syslog(syslog::SyslogConfig),
        "conntrack" => Conntrack(conntrack::ConntrackConfig),
        "nfacct" => Nfacct(nfacct::NfacctConfig),
        "pcap" => Pcap(pcap::PcapSourceConfig),
        "nftrace" => Nftrace(nftrace::NftraceConfig),
    }
);

/// What a source is given to start.
pub struct SourceContext {
    pub name: String,
    /// Prefix → action, for sources that read packets (`[actions]`).
    pub actions: Arc<ActionConfig>,
    /// Where its batches go.
    pub output: Fanout,
    pub counters: Arc<ComponentCounters>,
}

/// A source type: its checks and how it starts.
pub trait Source {
    /// Checks of this source alone, before anything starts.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Whether it can wait for a slow consumer without losing anything (a file stays on disk,
    /// TCP has flow control, the kernel's log ring holds records a while), rather than the
    /// kernel dropping what it cannot hand over (NFLOG, conntrack, UDP).
    fn can_wait(&self) -> bool;

    /// The capabilities it needs to run (a kernel socket, a namespace, a low port).
    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        Vec::new()
    }

    fn spawn(&self, ctx: SourceContext) -> Result<JoinHandle<()>>;
}

/// A kernel socket's capabilities: netlink subscriptions and binding need CAP_NET_ADMIN;
/// entering another network namespace CAP_SYS_ADMIN.
pub fn kernel_socket_capabilities(netns: Option<&str>) -> Vec<crate::privileges::Capability> {
    use crate::privileges::Capability;
    let mut v = vec![Capability::CAP_NET_ADMIN];
    if netns.is_some() {
        v.push(Capability::CAP_SYS_ADMIN);
    }
    v
}

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
