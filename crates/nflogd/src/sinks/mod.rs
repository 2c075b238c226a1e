//! Sinks: where events go. Each runs on its own thread, reading its own queue.

pub mod clickhouse;
pub mod dashboard;
pub mod database;
pub mod file;
pub mod pcap;
pub mod postgres;
pub mod sqlite;
pub mod syslog;

use crate::metrics::ComponentCounters;
use crate::pipeline::{QueueLimits, SinkQueue};
use anyhow::Result;
use std::sync::Arc;
use std::thread::JoinHandle;

crate::registry!(
    /// `[sinks.NAME]`: one line per sink type.
    SinkConfig: Sink {
        "file" => File(file::FileSinkConfig),
        "syslog" => Syslog(syslog::SyslogSinkConfig),
        "sqlite" => Sqlite(sqlite::SqliteSinkConfig),
        "postgres" => Postgres(postgres::PostgresSinkConfig),
        "clickhouse" => Clickhouse(clickhouse::ClickHouseSinkConfig),
        "pcap" => Pcap(pcap::PcapSinkConfig),
        "dashboard" => Dashboard(dashboard::DashboardSinkConfig),
    }
);

/// What a sink is given to start.
pub struct SinkContext {
    pub name: String,
    /// The observer's host name written into records.
    pub host: String,
    /// Community ID seed for the records' `network.community_id`; None: not written.
    pub community_id: Option<u16>,
    pub queue: SinkQueue,
    pub counters: Arc<ComponentCounters>,
}

/// A sink type: what it takes, its checks and how it starts.
pub trait Sink {
    /// The sources and transforms it takes events from.
    fn inputs(&self) -> &[String];

    /// How much its memory queue holds.
    fn queue_limits(&self) -> QueueLimits;

    /// Whether it writes packets' bytes (packet sources then keep them).
    fn takes_payload(&self) -> bool {
        false
    }

    /// Checks of this sink alone, before anything starts.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn spawn(&self, ctx: SinkContext) -> Result<JoinHandle<()>>;

    /// The capabilities it needs to run.
    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        Vec::new()
    }
}
