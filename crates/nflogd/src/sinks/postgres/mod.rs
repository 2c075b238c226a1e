//! The `postgres` sink: nflogd's tables (store/) by binary COPY, one transaction per batch,
//! behind the disk spool.

mod config;
mod store;

pub use config::PostgresSinkConfig;
pub use store::connect;

use crate::metrics::ComponentCounters;
use crate::pipeline::SinkQueue;
use crate::sinks::database::{Buffer, DatabaseSink, Mapping};
use std::sync::Arc;
use std::thread::JoinHandle;

pub fn spawn(
    name: &str,
    cfg: &PostgresSinkConfig,
    host: String,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> anyhow::Result<JoinHandle<()>> {
    let spool = cfg.spool.open(name)?;
    let mut store = store::PostgresStore::new(cfg.clone());
    // A schema that is not ours stops the start; an unreachable server does not: events wait
    // in the spool until it answers.
    use crate::sinks::database::{SchemaError, Store};
    match store.connect() {
        Ok(()) => tracing::info!("sink `{name}`: connected to PostgreSQL"),
        Err(e) => {
            if e.downcast_ref::<SchemaError>().is_some() {
                anyhow::bail!("sink `{name}`: {e:#}");
            }
            tracing::warn!("sink `{name}`: {e:#}; events wait in the spool until it answers");
        }
    }
    let mut sink = DatabaseSink::new(name, store, Buffer::Spool(spool), host.clone(), counters);
    if cfg.tables == config::TableSet::Ulogd {
        let opts = crate::schema::SchemaOptions {
            kind: crate::schema::SchemaKind::Ulogd,
            device: "Netfilter".into(),
            boolean_label: false,
            log_flags: logline::LogFlags::default(),
            hostname: host,
            community_id: None,
            line_header: false,
        };
        sink.mapping = Mapping::Ulogd(Box::new(crate::schema::Renderer::new(opts)), Vec::new());
    }
    sink.sync_interval = cfg.spool.sync_interval.0;
    Ok(std::thread::Builder::new()
        .name(format!("postgres:{name}"))
        .spawn(move || sink.run(queue))?)
}

impl super::Sink for PostgresSinkConfig {
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
        PostgresSinkConfig::validate(self)
    }

    fn spawn(&self, ctx: super::SinkContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.host, ctx.queue, ctx.counters)
    }
}
