use crate::units::ByteSize;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// `[sinks.NAME] type = "clickhouse"`: many hosts writing to one ClickHouse.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSinkConfig {
    pub inputs: Vec<String>,
    /// The HTTP interface: `http://host:8123` or `https://host:8443`.
    pub url: String,
    /// Database of the tables; created if missing. Default "nflogd".
    #[serde(default = "default_database")]
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// https: CA bundle to check the server with (default: the system's), and a client
    /// certificate and key if the server asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: ByteSize,
}

fn default_database() -> String {
    "nflogd".into()
}

impl ClickHouseSinkConfig {
    pub fn validate(&self) -> Result<()> {
        super::http::Endpoint::parse(&self.url)?;
        if self.database.is_empty()
            || !self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!(
                "database: `{}` is not a plain name (letters, digits, _)",
                self.database
            );
        }
        Ok(())
    }
}
