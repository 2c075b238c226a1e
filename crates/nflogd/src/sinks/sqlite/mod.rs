//! The `sqlite` sink: the embedded default store (store/ holds its tables).

mod config;
mod store;

pub use config::SqliteSinkConfig;
pub use store::open_for_query;

use crate::metrics::ComponentCounters;
use crate::pipeline::SinkQueue;
use crate::sinks::database::{Buffer, DatabaseSink};
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
    let sink = DatabaseSink::new(name, st, Buffer::Memory(None), host, counters);
    Ok(std::thread::Builder::new()
        .name(format!("sqlite:{name}"))
        .spawn(move || sink.run(queue))?)
}
