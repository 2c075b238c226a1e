//! The `nftrace` source: nf_tables trace events (NFNLGRP_NFTRACE), gathered per traced packet
//! into one record with its path through the ruleset (`trace/`). The ruleset's own
//! `meta nftrace set 1` rules choose the packets; with `filter`, the source adds a table of its
//! own that traces what the filter matches, as `nflogd trace` does, and removes it at exit.

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::trace::listen::{Listener, Notes, Scope};
use crate::units::Duration as ConfigDuration;
use anyhow::{bail, Result};
use event::Event;
use serde::Deserialize;
use std::thread::JoinHandle;
use std::time::Duration;

/// `[sources.NAME] type = "nftrace"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NftraceConfig {
    /// Read the traces of another network namespace, by path.
    pub netns: Option<String>,
    /// An nft match (`tcp dport 22`, `ip saddr 192.0.2.0/24`): the source traces these packets
    /// itself, from a table of its own. Without it, the ruleset's `meta nftrace set 1` decides.
    pub filter: Option<String>,
    /// With `filter`: most packets traced per second. Default 10.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// A packet's path is complete when no event came for it this long (a drop completes it
    /// at once). Default 250 ms.
    #[serde(default = "default_idle")]
    pub idle: ConfigDuration,
}

fn default_rate() -> u32 {
    10
}
fn default_idle() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(250))
}

impl super::Source for NftraceConfig {
    fn validate(&self) -> Result<()> {
        if let Some(p) = &self.netns {
            if !std::path::Path::new(p).exists() {
                bail!("netns: {p} does not exist");
            }
        }
        if self.filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            bail!("filter: empty; leave it out to trace what the ruleset marks");
        }
        if self.rate == 0 {
            bail!("rate: must be at least 1");
        }
        if self.idle.0 < Duration::from_millis(10) || self.idle.0 > Duration::from_secs(60) {
            bail!("idle: {:?} is out of range (10ms to 60s)", self.idle.0);
        }
        Ok(())
    }

    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        super::kernel_socket_capabilities(self.netns.as_deref())
    }

    fn can_wait(&self) -> bool {
        false
    }

    fn spawn(&self, ctx: super::SourceContext) -> Result<JoinHandle<()>> {
        let cfg = self.clone();
        let name = ctx.name.clone();
        let counters = ctx.counters.clone();
        super::thread::spawn(
            format!("nftrace:{name}"),
            move || {
                if let Some(ns) = &cfg.netns {
                    super::thread::enter_netns(ns)?;
                }
                let scope = cfg.filter.clone().map(|filter| Scope {
                    filter,
                    rate: cfg.rate,
                });
                let listener = Listener::open(scope, cfg.idle.0)?;
                tracing::info!("source `{name}`: reading nf_tables trace events");
                Ok((name, listener))
            },
            move |(name, listener)| run(&name, listener, ctx.output, &counters),
        )
    }
}

fn run(name: &str, mut listener: Listener, mut fanout: Fanout, counters: &ComponentCounters) {
    let send = |batch: Vec<event::PacketEvent>, fanout: &mut Fanout| {
        if batch.is_empty() {
            return;
        }
        let mut batch: Vec<Event> = batch.into_iter().map(Event::Packet).collect();
        ComponentCounters::add(&counters.received, batch.len() as u64);
        fanout.send(&mut batch);
    };
    while !crate::signals::shutdown_requested() {
        let mut notes = Notes::default();
        match listener.poll(Duration::from_millis(100), &mut notes) {
            Ok(done) => send(done, &mut fanout),
            Err(e) => {
                ComponentCounters::add(&counters.errors, 1);
                crate::rate_limited_warn!("source `{name}`: {e:#}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        ComponentCounters::add(&counters.malformed, notes.malformed);
        if notes.overrun {
            ComponentCounters::add(&counters.overruns, 1);
            crate::rate_limited_warn!(
                "source `{name}`: the kernel dropped trace events (socket buffer full); some paths are incomplete"
            );
        }
        if notes.table_restored {
            tracing::warn!(
                "source `{name}`: the trace table was removed (ruleset flushed?); added it again"
            );
        }
    }
    // Paths still being gathered go out too; the source's table goes.
    send(listener.close(), &mut fanout);
}
