//! Builds the running topology from a validated config: sink threads first (so no event has
//! nowhere to go), then sources, then waits for shutdown and drains.

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::metrics;
use crate::pipeline::{self, Fanout};
use crate::schema::SchemaOptions;
use crate::sinks;
use crate::sources;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::sync::Arc;

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        return String::from_utf8_lossy(&buf[..end]).into_owned();
    }
    "localhost".into()
}

pub fn run(cfg: Config) -> Result<()> {
    crate::files::set_umask(&cfg.umask)?;
    let host = cfg.hostname.clone().unwrap_or_else(hostname);
    let mut fanouts: HashMap<String, Fanout> = HashMap::new();
    let mut sink_threads = Vec::new();
    for (name, s) in &cfg.sinks {
        let counters = metrics::register("sink", name);
        let (handle, mut queue) = pipeline::sink_queue(name, counters.clone(), s.queue_limits());
        queue.urgent = s
            .inputs()
            .iter()
            .any(|i| cfg.sources.get(i).is_some_and(|src| !src.can_wait()));
        for input in s.inputs() {
            fanouts
                .entry(input.clone())
                .or_default()
                .sinks
                .push(handle.clone());
        }
        drop(handle);
        match s {
            SinkConfig::File(f) => {
                let opts = SchemaOptions {
                    kind: f.schema,
                    device: f.device.clone(),
                    boolean_label: f.boolean_label,
                    log_flags: f.log_flags()?,
                    hostname: host.clone(),
                };
                sink_threads.push(sinks::file::spawn(name, f, opts, queue, counters)?);
            }
            SinkConfig::Syslog(c) => {
                let mut flags = logline::LogFlags::default();
                for n in &c.log_flags {
                    flags = flags | logline::LogFlags::from_name(n).unwrap_or_default();
                }
                let opts = SchemaOptions {
                    kind: c.schema,
                    device: "Netfilter".into(),
                    boolean_label: false,
                    log_flags: flags,
                    hostname: host.clone(),
                };
                sink_threads.push(sinks::syslog::spawn(name, c, opts, queue, counters)?);
            }
            SinkConfig::Postgres(c) => {
                sink_threads.push(sinks::postgres::spawn(
                    name,
                    c,
                    host.clone(),
                    queue,
                    counters,
                )?);
            }
            SinkConfig::Clickhouse(c) => {
                sink_threads.push(sinks::clickhouse::spawn(
                    name,
                    c,
                    host.clone(),
                    queue,
                    counters,
                )?);
            }
            SinkConfig::Sqlite(c) => {
                sink_threads.push(sinks::sqlite::spawn(
                    name,
                    c,
                    host.clone(),
                    queue,
                    counters,
                )?);
            }
        }
    }
    let actions = Arc::new(cfg.actions.clone());
    let mut source_threads = Vec::new();
    for (name, s) in &cfg.sources {
        let counters = metrics::register("source", name);
        let fanout = fanouts.remove(name).unwrap_or_default();
        let fanout = if s.can_wait() {
            fanout.waiting()
        } else {
            fanout
        };
        if fanout.sinks.is_empty() {
            tracing::warn!("source `{name}` feeds no sink");
        }
        let h = match s {
            SourceConfig::Nflog(n) => {
                sources::nflog::spawn(name, n, actions.clone(), fanout, counters)
            }
            SourceConfig::Kmsg(k) => {
                sources::kmsg::spawn(name, k, actions.clone(), fanout, counters)
            }
            SourceConfig::File(f) => {
                sources::file::spawn(name, f, actions.clone(), fanout, counters)
            }
            SourceConfig::Stdin(c) => {
                sources::stdin::spawn(name, c, actions.clone(), fanout, counters)
            }
            SourceConfig::Syslog(c) => {
                sources::syslog::spawn(name, c, actions.clone(), fanout, counters)
            }
            SourceConfig::Conntrack(c) => sources::conntrack::spawn(name, c, fanout, counters),
            SourceConfig::Nfacct(c) => sources::nfacct::spawn(name, c, fanout, counters),
        }
        .with_context(|| format!("starting source `{name}`"))?;
        source_threads.push(h);
    }
    drop(fanouts);
    tracing::info!(
        "nflogd running: {} source(s), {} sink(s)",
        source_threads.len(),
        sink_threads.len()
    );
    if let Some(a) = &cfg.metrics_address {
        metrics::serve(a).with_context(|| format!("metrics_address {a}"))?;
    }
    let interval = cfg.stats_interval.0;
    if !interval.is_zero() {
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                tracing::info!("stats: {}", metrics::summary(false));
            })?;
    }
    // Sources end on shutdown (within their receive timeout) or on their own (stdin at its
    // end); waiting for them costs no wakeups. Then the sinks drain what is queued and exit.
    for h in source_threads {
        let _ = h.join();
    }
    if !crate::signals::shutdown_requested() {
        tracing::info!("all sources have ended");
        crate::signals::request_shutdown();
    }
    // Sinks finish what they hold within their own limits; one that hangs (a peer that never
    // answers) does not hold the process past the drain time: what it spooled stays spooled.
    let deadline = std::time::Instant::now() + cfg.drain_timeout.0;
    while !sink_threads.iter().all(|h| h.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stuck: Vec<String> = sink_threads
        .iter()
        .filter(|h| !h.is_finished())
        .map(|h| h.thread().name().unwrap_or("?").to_string())
        .collect();
    if !stuck.is_empty() {
        tracing::warn!(
            "sinks still busy after drain_timeout ({:?}), left behind: {}",
            cfg.drain_timeout.0,
            stuck.join(", ")
        );
    }
    tracing::info!("stopped; final stats: {}", metrics::summary(true));
    if crate::signals::failed() {
        anyhow::bail!("a thread died (see the log above); stopped");
    }
    Ok(())
}
