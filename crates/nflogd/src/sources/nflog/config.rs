use crate::units::{ByteSize, Duration};
use anyhow::{bail, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CopyMode {
    /// Copy the packet (up to `snaplen` bytes) so headers can be decoded.
    #[default]
    Packet,
    /// Metadata only: prefix, devices, mark, uid; no headers.
    Meta,
}

/// `[sources.NAME] type = "nflog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NflogConfig {
    /// NFLOG groups to read (0–65535), as in `log group N` / `--nflog-group N`.
    pub groups: Vec<u16>,
    /// `packet` (default) or `meta`.
    #[serde(default)]
    pub copy: CopyMode,
    /// Bytes of each packet to copy (a rule's own `snaplen` may lower it). Default 65531, the
    /// kernel's maximum.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// Packets the kernel gathers before it sends a batch. Default 64.
    #[serde(default = "default_qthreshold")]
    pub qthreshold: u32,
    /// Longest the kernel holds a partial batch (10 ms steps). Default "10ms"; the kernel's own
    /// default is 1 s, which a plain `log group` rule would otherwise get.
    #[serde(default = "default_qtimeout")]
    pub qtimeout: Duration,
    /// Size of one kernel batch (4 KiB to 128 KiB). Default 128 KiB.
    #[serde(default = "default_batch_size")]
    pub batch_size: ByteSize,
    /// Socket receive buffer, set past rmem_max when running as root. Default 8 MiB.
    #[serde(default = "default_socket_buffer")]
    pub socket_buffer: ByteSize,
    /// On an overrun the buffer doubles up to this. Default 64 MiB.
    #[serde(default = "default_socket_buffer_max")]
    pub socket_buffer_max: ByteSize,
    /// Ask the kernel for the packet's conntrack entry (NFULNL_CFG_F_CONNTRACK).
    #[serde(default)]
    pub conntrack: bool,
    /// Ask the kernel for per-group sequence numbers, to count packets it lost. Default true.
    #[serde(default = "yes")]
    pub sequence: bool,
    /// Read the groups of another network namespace, by path (e.g. /run/netns/fw).
    pub netns: Option<String>,
    /// ulogd's `numeric_label`: a constant attached to every packet of this source; 0 means
    /// blocked, anything else allowed when no prefix rule names the verdict.
    pub numeric_label: Option<u8>,
}

fn yes() -> bool {
    true
}
fn default_snaplen() -> u32 {
    nfnetlink::nflog::COPY_RANGE_MAX
}
fn default_qthreshold() -> u32 {
    64
}
fn default_qtimeout() -> Duration {
    Duration(std::time::Duration::from_millis(10))
}
fn default_batch_size() -> ByteSize {
    ByteSize(nfnetlink::nflog::NLBUFSIZ_MAX as u64)
}
fn default_socket_buffer() -> ByteSize {
    ByteSize(8 << 20)
}
fn default_socket_buffer_max() -> ByteSize {
    ByteSize(64 << 20)
}

impl NflogConfig {
    pub fn validate(&self) -> Result<()> {
        if self.groups.is_empty() {
            bail!("groups: empty; list the NFLOG groups to read, e.g. groups = [1]");
        }
        if self.snaplen > nfnetlink::nflog::COPY_RANGE_MAX {
            bail!(
                "snaplen: {} is above the kernel's maximum {}",
                self.snaplen,
                nfnetlink::nflog::COPY_RANGE_MAX
            );
        }
        if self.qthreshold == 0 {
            bail!("qthreshold: must be at least 1");
        }
        if !(4096..=nfnetlink::nflog::NLBUFSIZ_MAX as u64).contains(&self.batch_size.0) {
            bail!("batch_size: {} is outside 4KiB..128KiB", self.batch_size.0);
        }
        if self.socket_buffer_max.0 < self.socket_buffer.0 {
            bail!("socket_buffer_max: smaller than socket_buffer");
        }
        if let Some(p) = &self.netns {
            if !std::path::Path::new(p).exists() {
                bail!("netns: {p} does not exist");
            }
        }
        Ok(())
    }

    /// The flush timer in the kernel's unit (1/100 s), rounded up, at least 1.
    pub fn timeout_cs(&self) -> u32 {
        let ms = self.qtimeout.0.as_millis() as u64;
        (ms.div_ceil(10)).clamp(1, u32::MAX as u64) as u32
    }
}
