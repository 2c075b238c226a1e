//! The `conntrack` source: connection-tracking events over ctnetlink (NEW, UPDATE, DESTROY),
//! with both tuples, NAT, counters and timestamps. Loss on the event socket (ENOBUFS) is counted.

use crate::config::ByteSize;
use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use anyhow::{anyhow, bail, Context, Result};
use event::{Event, FlowEvent, FlowKind, Timestamp};
use nfnetlink::ctnetlink::{self, EventKind};
use nfnetlink::socket::NETLINK_NETFILTER;
use nfnetlink::{Messages, NetlinkSocket, Recv};
use serde::Deserialize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventName {
    New,
    Update,
    Destroy,
}

/// `[sources.NAME] type = "conntrack"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Which events to read. Default new and destroy (as ulogd2).
    #[serde(default = "default_events")]
    pub events: Vec<EventName>,
    /// Socket receive buffer. Default 8 MiB.
    #[serde(default = "default_buffer")]
    pub socket_buffer: ByteSize,
    /// Switch on per-connection packet and byte counters (net.netfilter.nf_conntrack_acct) at
    /// start. Default true.
    #[serde(default = "yes")]
    pub accounting: bool,
    /// Switch on start/stop timestamps (net.netfilter.nf_conntrack_timestamp) at start. Default true.
    #[serde(default = "yes")]
    pub timestamps: bool,
    /// Read the conntrack events of another network namespace, by path.
    pub netns: Option<String>,
}

fn default_events() -> Vec<EventName> {
    vec![EventName::New, EventName::Destroy]
}
fn default_buffer() -> ByteSize {
    ByteSize(8 << 20)
}
fn yes() -> bool {
    true
}

impl ConntrackConfig {
    pub fn validate(&self) -> Result<()> {
        if self.events.is_empty() {
            bail!("events: empty; list some of new, update, destroy");
        }
        if let Some(p) = &self.netns {
            if !std::path::Path::new(p).exists() {
                bail!("netns: {p} does not exist");
            }
        }
        Ok(())
    }
}

fn sysctl_on(name: &str) -> Result<()> {
    let path = format!("/proc/sys/net/netfilter/{name}");
    std::fs::write(&path, "1").with_context(|| format!("setting {path}"))
}

pub fn spawn(
    name: &str,
    cfg: &ConntrackConfig,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let name = name.to_string();
    let cfg = cfg.clone();
    let handle = std::thread::Builder::new().name(format!("conntrack:{name}")).spawn(move || {
        let setup = || -> Result<NetlinkSocket> {
            if let Some(ns) = &cfg.netns {
                use std::os::fd::AsRawFd;
                let f = std::fs::File::open(ns).with_context(|| format!("opening netns {ns}"))?;
                // SAFETY: setns on a valid fd moves only this thread.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(anyhow!("setns({ns}): {}", std::io::Error::last_os_error()));
                }
            }
            if cfg.accounting {
                sysctl_on("nf_conntrack_acct")?;
            }
            if cfg.timestamps {
                sysctl_on("nf_conntrack_timestamp")?;
            }
            let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
            sock.set_recv_buffer(cfg.socket_buffer.0 as usize)?;
            sock.set_recv_timeout(Duration::from_millis(250))?;
            for e in &cfg.events {
                sock.add_membership(match e {
                    EventName::New => ctnetlink::GROUP_NEW,
                    EventName::Update => ctnetlink::GROUP_UPDATE,
                    EventName::Destroy => ctnetlink::GROUP_DESTROY,
                })
                .context("joining the conntrack event groups (is nf_conntrack_netlink available?)")?;
            }
            Ok(sock)
        };
        let sock = match setup() {
            Ok(s) => s,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        tracing::info!("source `{name}`: reading conntrack events {:?}", cfg.events);
        let _ = ready_tx.send(Ok(()));
        let mut buf = vec![0u8; 256 * 1024];
        let mut batch: Vec<Event> = Vec::with_capacity(256);
        while !crate::signals::shutdown_requested() {
            let mut nonblocking = false;
            loop {
                match sock.recv(&mut buf, nonblocking) {
                    Ok(Recv::Data { len, .. }) => {
                        let now = Timestamp::now();
                        for m in Messages::new(&buf[..len]) {
                            let parsed = m.map_err(anyhow::Error::from).and_then(|m| Ok(ctnetlink::parse_event(&m)?));
                            match parsed {
                                Ok(Some((kind, family, ct))) => batch.push(Event::Flow(Box::new(FlowEvent {
                                    time: now,
                                    kind: match kind {
                                        EventKind::New => FlowKind::New,
                                        EventKind::Update => FlowKind::Update,
                                        EventKind::Destroy => FlowKind::Destroy,
                                    },
                                    family,
                                    ct,
                                }))),
                                Ok(None) => {}
                                Err(e) => {
                                    ComponentCounters::add(&counters.malformed, 1);
                                    crate::rate_limited_warn!("source `{name}`: skipped a malformed conntrack message: {e}");
                                }
                            }
                        }
                    }
                    Ok(Recv::Overrun) => {
                        ComponentCounters::add(&counters.overruns, 1);
                        crate::rate_limited_warn!("source `{name}`: conntrack events lost (ENOBUFS); raise socket_buffer");
                    }
                    Ok(Recv::Timeout) => break,
                    Err(e) => {
                        ComponentCounters::add(&counters.errors, 1);
                        crate::rate_limited_warn!("source `{name}`: receive failed: {e}");
                        break;
                    }
                }
                if batch.len() >= 1024 {
                    break;
                }
                nonblocking = true;
            }
            if !batch.is_empty() {
                ComponentCounters::add(&counters.received, batch.len() as u64);
                fanout.send(std::mem::replace(&mut batch, Vec::with_capacity(256)));
            }
        }
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(anyhow!("source thread ended during start-up")),
    }
}
