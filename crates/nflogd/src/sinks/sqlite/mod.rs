//! The `sqlite` sink: the embedded default store (store/ holds its tables).

mod config;
mod store;

pub use config::SqliteSinkConfig;
pub use store::open_for_query;

use crate::metrics::ComponentCounters;
use crate::pipeline::SinkQueue;
use crate::sinks::database::{Buffer, DatabaseSink, Overflow};
use std::sync::Arc;
use std::thread::JoinHandle;

pub fn spawn(
    name: &str,
    cfg: &SqliteSinkConfig,
    host: String,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut st = store::SqliteStore::new(cfg.path.clone(), cfg.retention.0, cfg.max_size.0);
    // Open now, so a bad path or a foreign file stops the start with a clear error.
    use crate::sinks::database::Store;
    st.connect()
        .map_err(|e| anyhow::anyhow!("sink `{name}`: {e:#}"))?;
    tracing::info!("sink `{name}`: SQLite store {}", cfg.path.display());
    // What an earlier run spilled and did not write yet is taken back first.
    let spool = match cfg.spool.dir_of(name).exists() {
        true => Some(cfg.spool.open(name)?),
        false => None,
    };
    let overflow = Overflow {
        config: cfg.spool.clone(),
        spool,
    };
    let sink = DatabaseSink::new(name, st, Buffer::Memory(None, overflow), host, counters);
    Ok(std::thread::Builder::new()
        .name(format!("sqlite:{name}"))
        .spawn(move || sink.run(queue))?)
}

impl super::Sink for SqliteSinkConfig {
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
        SqliteSinkConfig::validate(self)
    }

    fn spawn(&self, ctx: super::SinkContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.host, ctx.queue, ctx.counters)
    }
}
