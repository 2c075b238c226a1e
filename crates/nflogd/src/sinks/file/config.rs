use super::rotate::{Compress, Policy};
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
    /// Rotate the file when it reaches this size.
    pub rotate_size: Option<crate::units::ByteSize>,
    /// Rotate the file when it is this old.
    pub rotate_interval: Option<crate::units::Duration>,
    /// Compress rotated files: "gzip" or "zstd".
    pub compress: Option<Compress>,
    /// Rotated files kept (PATH.1 … PATH.keep). Default 10.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_keep() -> u32 {
    10
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

    /// The rotation asked for, if any.
    pub fn rotation(&self) -> Option<Policy> {
        (self.rotate_size.is_some() || self.rotate_interval.is_some()).then(|| Policy {
            size: self.rotate_size.map(|s| s.0),
            interval: self.rotate_interval.map(|i| i.0),
            compress: self.compress,
            keep: self.keep,
        })
    }

    pub fn validate(&self) -> Result<()> {
        self.log_flags()?;
        if self.path.is_empty() {
            bail!("path: empty; give a file path or \"-\" for standard output");
        }
        let rotating = self.rotation().is_some();
        if rotating && (self.path == "-" || super::socket::target(&self.path).is_some()) {
            bail!(
                "rotate_size/rotate_interval: only a file rotates, not `{}`",
                self.path
            );
        }
        if self.compress.is_some() && !rotating {
            bail!("compress: compresses rotated files; set rotate_size or rotate_interval too");
        }
        if self.keep == 0 {
            bail!("keep: at least 1 rotated file");
        }
        if self.rotate_size.is_some_and(|s| s.0 < 4096) {
            bail!("rotate_size: at least 4 KiB");
        }
        if self
            .rotate_interval
            .is_some_and(|i| i.0 < std::time::Duration::from_secs(1))
        {
            bail!("rotate_interval: at least 1s");
        }
        Ok(())
    }
}
