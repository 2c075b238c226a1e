use crate::schema::SchemaKind;
use anyhow::{bail, Result};
use logline::LogFlags;
use serde::Deserialize;

/// `[sinks.NAME] type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Sources whose events this sink writes.
    pub inputs: Vec<String>,
    /// File to append to; `-` is standard output. Its directory is created if missing.
    pub path: String,
    /// `ecs` (default), `ulogd`, `text` or `logemu`.
    #[serde(default)]
    pub schema: SchemaKind,
    /// `ulogd` schema: the `dvc` value. Default "Netfilter".
    #[serde(default = "default_device")]
    pub device: String,
    /// `ulogd` schema: write `action: allowed|blocked` in place of `raw.label`.
    #[serde(default)]
    pub boolean_label: bool,
    /// `text` schema: the LOG flags to render with, as nft names them ("tcp sequence",
    /// "tcp options", "ip options", "skuid", "ether", "all"). Default none, like a plain `log`.
    #[serde(default)]
    pub log_flags: Vec<String>,
    /// The sink's memory queue: most events it holds. Default 100 000.
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    /// The sink's memory queue: most bytes it holds. Default 64 MiB.
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: crate::units::ByteSize,
    /// Flush after every batch (default true); false lets the OS buffer until 256 KiB.
    #[serde(default = "yes")]
    pub flush: bool,
}

fn yes() -> bool {
    true
}

fn default_device() -> String {
    "Netfilter".into()
}

impl FileSinkConfig {
    pub fn log_flags(&self) -> Result<LogFlags> {
        let mut f = LogFlags::default();
        for name in &self.log_flags {
            match LogFlags::from_name(name) {
                Some(x) => f = f | x,
                None => bail!(
                    "log_flags: unknown flag `{name}` (tcp sequence, tcp options, ip options, skuid, ether, all)"
                ),
            }
        }
        Ok(f)
    }

    pub fn validate(&self) -> Result<()> {
        self.log_flags()?;
        if self.path.is_empty() {
            bail!("path: empty; give a file path or \"-\" for standard output");
        }
        Ok(())
    }
}
