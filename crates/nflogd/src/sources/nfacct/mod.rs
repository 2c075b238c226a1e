//! The `nfacct` source: polls the accounting objects (`nfacct add NAME`, counted by iptables'
//! `-m nfacct --nfacct-name NAME`) at an interval and emits one counter record per object.
//! By default each poll reads and resets (as ulogd2's `zerocounter`), so records hold the
//! packets and bytes of their interval and add up to the total.

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::units::Duration as ConfigDuration;
use anyhow::{bail, Context, Result};
use event::{CounterEvent, Event, Timestamp};
use nfnetlink::socket::NETLINK_NETFILTER;
use nfnetlink::NetlinkSocket;
use serde::Deserialize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `[sources.NAME] type = "nfacct"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfacctConfig {
    /// Time between polls. Default 60 s.
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// Reset the counters at each read (counts per interval). Default true.
    #[serde(default = "yes")]
    pub zero: bool,
    /// Poll the objects of another network namespace, by path.
    pub netns: Option<String>,
}

fn default_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn yes() -> bool {
    true
}

impl NfacctConfig {
    pub fn validate(&self) -> Result<()> {
        if self.interval.0 < Duration::from_millis(100) {
            bail!(
                "interval: {:?} is too short; use 100ms or more",
                self.interval.0
            );
        }
        if let Some(p) = &self.netns {
            if !std::path::Path::new(p).exists() {
                bail!("netns: {p} does not exist");
            }
        }
        Ok(())
    }
}

fn open(cfg: &NfacctConfig) -> Result<NetlinkSocket> {
    if let Some(ns) = &cfg.netns {
        crate::sources::thread::enter_netns(ns)?;
    }
    let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
    sock.set_recv_timeout(Duration::from_secs(5))?;
    Ok(sock)
}

/// One poll: every object as a record.
fn poll(
    sock: &mut NetlinkSocket,
    buf: &mut [u8],
    zero: bool,
    counters: &ComponentCounters,
) -> Result<Vec<Event>> {
    let (objects, malformed) = nfnetlink::nfacct::dump(sock, buf, zero)?;
    ComponentCounters::add(&counters.malformed, malformed);
    let time = Timestamp::now();
    Ok(objects
        .into_iter()
        .map(|a| {
            Event::Counter(Box::new(CounterEvent {
                time,
                name: a.name,
                packets: a.packets,
                bytes: a.bytes,
            }))
        })
        .collect())
}

pub fn spawn(
    name: &str,
    cfg: &NfacctConfig,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let name = name.to_string();
    let cfg = cfg.clone();
    let run_counters = counters.clone();
    crate::sources::thread::spawn(
        format!("nfacct:{name}"),
        {
            let cfg = cfg.clone();
            move || {
                let mut buf = vec![0u8; 64 * 1024];
                // A first read at start proves the kernel answers. Its records are the counts
                // since the last reset (the previous run's last poll, or the object's creation):
                // kept, not lost.
                let mut sock = open(&cfg)?;
                let first = poll(&mut sock, &mut buf, cfg.zero, &counters)
                    .context("reading the nfacct objects (is nfnetlink_acct available?)")?;
                tracing::info!(
                    "source `{name}`: polling nfacct objects every {:?}",
                    cfg.interval.0
                );
                Ok((name, sock, buf, first))
            }
        },
        move |(name, sock, buf, first)| run(&name, &cfg, sock, buf, first, fanout, &run_counters),
    )
}

fn run(
    name: &str,
    cfg: &NfacctConfig,
    mut sock: NetlinkSocket,
    mut buf: Vec<u8>,
    mut first: Vec<Event>,
    mut fanout: Fanout,
    counters: &ComponentCounters,
) {
    ComponentCounters::add(&counters.received, first.len() as u64);
    fanout.send(&mut first);
    let mut next = Instant::now() + cfg.interval.0;
    loop {
        // Wait for the next poll in short steps so a shutdown is seen; the last poll at
        // shutdown records what was counted since the previous one.
        let stopping = crate::signals::shutdown_requested();
        if !stopping && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()));
            continue;
        }
        next += cfg.interval.0;
        match poll(&mut sock, &mut buf, cfg.zero, counters) {
            Ok(mut batch) => {
                ComponentCounters::add(&counters.received, batch.len() as u64);
                fanout.send(&mut batch);
            }
            Err(e) => {
                ComponentCounters::add(&counters.errors, 1);
                crate::rate_limited_warn!("source `{name}`: nfacct poll failed: {e}");
            }
        }
        if stopping {
            return;
        }
    }
}

impl super::Source for NfacctConfig {
    fn validate(&self) -> anyhow::Result<()> {
        NfacctConfig::validate(self)
    }

    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        super::kernel_socket_capabilities(self.netns.as_deref())
    }

    fn can_wait(&self) -> bool {
        false
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.output, ctx.counters)
    }
}
