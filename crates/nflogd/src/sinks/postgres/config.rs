use crate::units::{ByteSize, Duration};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// `[sinks.NAME] type = "postgres"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    pub inputs: Vec<String>,
    /// libpq connection string, URL (`postgres://user:pass@host:5432/db?sslmode=require`) or
    /// `key=value` form. `sslmode`: `disable`, `prefer` (the default) or `require`.
    pub url: String,
    /// CA bundle to check the server's certificate with. Without it, TLS encrypts but does not
    /// authenticate the server, as libpq does with `sslmode=require`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for servers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Days of packets and flows kept (daily partitions are dropped whole). Default "0s": keep
    /// everything.
    #[serde(default)]
    pub retention: Duration,
    /// Where the rows go: `nflogd` (the default, nflogd's tables) or `ulogd` (ulogd2's tables
    /// `ulog2`, `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `mac`, `ulog2_ct`, `nfacct`, from
    /// its pgsql-ulogd2.sql, which must be loaded already).
    #[serde(default)]
    pub tables: TableSet,
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TableSet {
    #[default]
    Nflogd,
    Ulogd,
}

impl PostgresSinkConfig {
    /// Connection settings alone, for `nflogd query`.
    pub fn for_url(url: &str) -> Self {
        PostgresSinkConfig {
            inputs: Vec::new(),
            url: url.to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            retention: Duration::default(),
            tables: TableSet::default(),
            spool: Default::default(),
            queue_max_events: 0,
            queue_max_bytes: ByteSize(0),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Err(e) = self.url.parse::<postgres::Config>() {
            bail!("url: {e}");
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            bail!("cert_file and key_file go together");
        }
        Ok(())
    }
}
