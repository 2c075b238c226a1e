//! The `postgres` sink: nflogd's tables (store/) by binary COPY, one transaction per batch,
//! behind the disk spool.

mod config;
mod store;
mod tls;

pub use config::{PostgresSinkConfig, TableSet};
pub use store::connect;

use crate::metrics::ComponentCounters;
use crate::pipeline::SinkQueue;
use crate::sinks::database::{Buffer, DatabaseSink};
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
    let store = store::PostgresStore::new(cfg.clone());
    let mut sink = DatabaseSink::new(name, store, Buffer::Spool(spool), host, counters);
    sink.sync_interval = cfg.spool.sync_interval.0;
    tracing::info!("sink `{name}`: PostgreSQL");
    Ok(std::thread::Builder::new()
        .name(format!("postgres:{name}"))
        .spawn(move || sink.run(queue))?)
}
