//! The `clickhouse` sink: nflogd's tables (store/) in ClickHouse MergeTree tables, over its
//! HTTP interface, behind the disk spool.

mod config;
mod http;
mod store;

pub use config::ClickHouseSinkConfig;

use crate::metrics::ComponentCounters;
use crate::pipeline::SinkQueue;
use crate::sinks::database::{Buffer, DatabaseSink, SchemaError, Store};
use std::sync::Arc;
use std::thread::JoinHandle;

pub fn spawn(
    name: &str,
    cfg: &ClickHouseSinkConfig,
    host: String,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> anyhow::Result<JoinHandle<()>> {
    let spool = cfg.spool.open(name)?;
    let mut store = store::ClickHouseStore::new(cfg)?;
    match store.connect() {
        Ok(()) => tracing::info!("sink `{name}`: connected to ClickHouse at {}", cfg.url),
        Err(e) if e.downcast_ref::<SchemaError>().is_some() => {
            anyhow::bail!("sink `{name}`: {e:#}")
        }
        Err(e) => {
            tracing::warn!("sink `{name}`: {e:#}; events wait in the spool until it answers")
        }
    }
    let mut sink = DatabaseSink::new(name, store, Buffer::Spool(spool), host, counters);
    sink.sync_interval = cfg.spool.sync_interval.0;
    Ok(std::thread::Builder::new()
        .name(format!("clickhouse:{name}"))
        .spawn(move || sink.run(queue))?)
}

impl super::Sink for ClickHouseSinkConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn queue_limits(&self) -> crate::pipeline::QueueLimits {
        crate::pipeline::QueueLimits {
            events: self.queue_max_events,
            bytes: self.queue_max_bytes.0,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        ClickHouseSinkConfig::validate(self)
    }

    fn spawn(&self, ctx: super::SinkContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.host, ctx.queue, ctx.counters)
    }
}
