use crate::units::{ByteSize, Duration};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// `[sinks.NAME] type = "sqlite"`: the embedded store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSinkConfig {
    pub inputs: Vec<String>,
    /// The database file; its directory is created if missing.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Rows older than this are deleted. Default "30d"; "0s" keeps everything.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    /// When the data outgrows this, the oldest packets and flows are deleted. Default 1 GiB;
    /// "0" for no cap.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// Where the queue spills when the store falls behind a flood (`[sinks.NAME.spool]`; by
    /// default /var/lib/nflogd/spool/<sink name>, 1 GiB).
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: ByteSize,
}

fn default_path() -> PathBuf {
    "/var/lib/nflogd/nflogd.db".into()
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_max_size() -> ByteSize {
    ByteSize(1 << 30)
}

impl SqliteSinkConfig {
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            bail!("path: empty");
        }
        Ok(())
    }
}
