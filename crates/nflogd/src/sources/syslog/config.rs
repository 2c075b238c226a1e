use crate::units::ByteSize;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Udp,
    Tcp,
    Tls,
    /// RELP (what rsyslog's omrelp sends): each message answered once nflogd has taken it.
    Relp,
    /// RELP over TLS.
    #[serde(rename = "relp-tls")]
    RelpTls,
}

impl Mode {
    pub fn tls(self) -> bool {
        matches!(self, Mode::Tls | Mode::RelpTls)
    }
    pub fn relp(self) -> bool {
        matches!(self, Mode::Relp | Mode::RelpTls)
    }
}

/// `[sources.NAME] type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Address to listen on, e.g. "0.0.0.0:514" or "[::]:6514".
    pub address: String,
    /// `udp`, `tcp`, `tls`, `relp` or `relp-tls`.
    pub mode: Mode,
    /// Longest message accepted; longer ones are cut there and counted. Default 64 KiB.
    #[serde(default = "default_max_message")]
    pub max_message: ByteSize,
    /// TCP/TLS: most connections at once. A new one then takes the place of the connection
    /// that has sent nothing for longest, if it has been quiet for a second or more; otherwise
    /// it is refused. Default 256.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TCP/TLS: most connections from one address; more are refused. Default 16.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// TCP/TLS: a connection that delivers no complete message for this long is closed
    /// ("0s": never). Default "1h".
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: crate::units::Duration,
    /// TLS: a client that has not completed its handshake in this time is dropped. Default "10s".
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: crate::units::Duration,
    /// TLS: the server certificate chain and key (PEM).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// TLS: require client certificates signed by these CAs (PEM).
    pub ca_file: Option<PathBuf>,
}

fn default_max_message() -> ByteSize {
    ByteSize(64 << 10)
}
fn default_max_connections() -> usize {
    256
}
fn default_max_connections_per_peer() -> usize {
    16
}
fn default_idle_timeout() -> crate::units::Duration {
    crate::units::Duration::from_secs(3600)
}
fn default_handshake_timeout() -> crate::units::Duration {
    crate::units::Duration::from_secs(10)
}

impl SyslogConfig {
    pub fn validate(&self) -> Result<()> {
        if self.address.parse::<std::net::SocketAddr>().is_err() {
            bail!("address: `{}` is not an IP:port", self.address);
        }
        if self.mode.tls() && (self.cert_file.is_none() || self.key_file.is_none()) {
            bail!("mode = \"tls\" or \"relp-tls\" needs cert_file and key_file");
        }
        if !self.mode.tls()
            && (self.cert_file.is_some() || self.key_file.is_some() || self.ca_file.is_some())
        {
            bail!("cert_file/key_file/ca_file only apply to mode = \"tls\" or \"relp-tls\"");
        }
        Ok(())
    }
}
