use crate::schema::SchemaKind;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// RELP (rsyslog's omrelp/imrelp): every message confirmed by the receiver.
    Relp,
    /// RELP over TLS.
    #[serde(rename = "relp-tls")]
    RelpTls,
}

impl Transport {
    pub fn tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::RelpTls)
    }
    pub fn relp(self) -> bool {
        matches!(self, Transport::Relp | Transport::RelpTls)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 5425, RFC 6587 §3.4.1); the default.
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2).
    Lf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Sekoia.io's netfilter intake: RFC 5424 over TLS, octet counting, MSGID `LOG`, the kernel
    /// line as the message; the intake key goes in `structured_data."SEKOIA@53288"`.
    Sekoia,
}

/// `[sinks.NAME] type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    pub inputs: Vec<String>,
    /// Receiver `host:port`.
    pub address: String,
    /// `udp`, `tcp` (default; `tls` with the Sekoia preset), `tls`, `relp` or `relp-tls`;
    /// read through `transport()`.
    #[serde(default)]
    transport: Option<Transport>,
    /// TCP and TLS framing: `octet-counting` (default) or `lf`.
    #[serde(default)]
    framing: Option<Framing>,
    /// `rfc5424` (default) or `rfc3164`.
    #[serde(default)]
    format: Option<Format>,
    /// What the message is: `text` (the kernel LOG line, default), `logemu` (ulogd2's line),
    /// `ecs` or `ulogd` JSON.
    #[serde(default = "default_schema")]
    pub schema: SchemaKind,
    pub preset: Option<Preset>,
    /// HOSTNAME field; default this host's name (or the source host of a forwarded line).
    pub hostname: Option<String>,
    #[serde(default = "default_app")]
    pub app_name: String,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// Facility name (kern, user, daemon, auth, local0…local7). Default `kern`.
    #[serde(default = "default_facility")]
    pub facility: String,
    /// `auto` (default: the kernel level of a line, else warning for drop/reject and notice for
    /// accept, info without a verdict) or a fixed severity name (emerg…debug).
    #[serde(default = "default_severity")]
    pub severity: String,
    /// SD-ID → parameters, e.g. `[sinks.x.structured_data."SEKOIA@53288"] intake_key = "…"`.
    #[serde(default)]
    pub structured_data: BTreeMap<String, BTreeMap<String, String>>,
    /// TLS: CA bundle to verify the receiver; default the system's.
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate and key.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// TLS: the name the certificate must carry; default the address's host.
    pub server_name: Option<String>,
    /// `log_flags` of the `text` message, as for the file sink.
    #[serde(default)]
    pub log_flags: Vec<String>,
    /// The sink's memory queue: most events it holds. Default 100 000.
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    /// The sink's memory queue: most bytes it holds. Default 64 MiB.
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: crate::units::ByteSize,
    /// The disk spool every batch goes through before it is sent.
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
}

fn default_schema() -> SchemaKind {
    SchemaKind::Text
}
fn default_app() -> String {
    "kernel".into()
}
fn default_facility() -> String {
    "kern".into()
}
fn default_severity() -> String {
    "auto".into()
}

pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

pub fn severity_code(name: &str) -> Option<u8> {
    [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ]
    .iter()
    .position(|s| *s == name)
    .map(|p| p as u8)
}

/// RFC 5424 SD-NAME: 1–32 printable ASCII, no `=`, space, `]` or `"`.
fn sd_name_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
}

impl SyslogSinkConfig {
    /// The transport: as set, else the preset's (TLS for Sekoia), else TCP.
    pub fn transport(&self) -> Transport {
        self.transport.unwrap_or(match self.preset {
            Some(Preset::Sekoia) => Transport::Tls,
            None => Transport::Tcp,
        })
    }

    /// The framing: as set, else octet counting (also Sekoia's).
    pub fn framing(&self) -> Framing {
        self.framing.unwrap_or_default()
    }

    /// The format: as set, else RFC 5424 (also Sekoia's).
    pub fn format(&self) -> Format {
        self.format.unwrap_or_default()
    }

    /// Applies the preset's choices where the user made none (what the user set stays).
    pub fn resolved(&self) -> SyslogSinkConfig {
        let mut c = self.clone();
        if c.preset == Some(Preset::Sekoia) {
            c.msgid.get_or_insert_with(|| "LOG".into());
        }
        c
    }

    pub fn validate(&self) -> Result<()> {
        let c = self.resolved();
        if !c.address.contains(':') {
            bail!("address: `{}` needs a port (host:port)", c.address);
        }
        if facility_code(&c.facility).is_none() {
            bail!(
                "facility: unknown `{}` (kern, user, daemon, auth, local0…local7, …)",
                c.facility
            );
        }
        if c.severity != "auto" && severity_code(&c.severity).is_none() {
            bail!("severity: `{}` is not auto or emerg…debug", c.severity);
        }
        for (id, params) in &c.structured_data {
            if !sd_name_ok(id) {
                bail!("structured_data: `{id}` is not a valid SD-ID");
            }
            for k in params.keys() {
                if !sd_name_ok(k) {
                    bail!("structured_data.{id}: `{k}` is not a valid parameter name");
                }
            }
        }
        if c.preset == Some(Preset::Sekoia) && !c.structured_data.contains_key("SEKOIA@53288") {
            bail!("preset = \"sekoia\" needs [sinks.NAME.structured_data.\"SEKOIA@53288\"] intake_key = \"…\"");
        }
        if !c.transport().tls()
            && (c.ca_file.is_some() || c.cert_file.is_some() || c.key_file.is_some())
        {
            bail!("ca_file/cert_file/key_file only apply to transport = \"tls\" or \"relp-tls\"");
        }
        if c.transport().relp() && c.framing.is_some() {
            bail!("framing: RELP frames each message itself");
        }
        if c.cert_file.is_some() != c.key_file.is_some() {
            bail!("cert_file and key_file go together");
        }
        let mut f = logline::LogFlags::default();
        for n in &c.log_flags {
            f = f | logline::LogFlags::from_name(n)
                .ok_or_else(|| anyhow::anyhow!("log_flags: unknown flag `{n}`"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(extra: &str) -> SyslogSinkConfig {
        toml::from_str(&format!(
            "inputs = [\"f\"]\naddress = \"intake.example.net:10514\"\npreset = \"sekoia\"\n{extra}\n[structured_data.\"SEKOIA@53288\"]\nintake_key = \"k\"\n"
        ))
        .unwrap()
    }

    /// The Sekoia preset chooses what the user left unset, and only that.
    #[test]
    fn the_sekoia_preset_fills_in_and_never_overrides() {
        let c = sink("").resolved();
        assert_eq!(c.transport(), Transport::Tls);
        assert_eq!(c.framing(), Framing::OctetCounting);
        assert_eq!(c.format(), Format::Rfc5424);
        assert_eq!(c.msgid.as_deref(), Some("LOG"));
        c.validate().unwrap();
        let c = sink("transport = \"tcp\"\nframing = \"lf\"\nformat = \"rfc3164\"\nmsgid = \"FW\"")
            .resolved();
        assert_eq!(c.transport(), Transport::Tcp);
        assert_eq!(c.framing(), Framing::Lf);
        assert_eq!(c.format(), Format::Rfc3164);
        assert_eq!(c.msgid.as_deref(), Some("FW"));
        let mut c = sink("");
        c.structured_data.clear();
        assert!(c.validate().unwrap_err().to_string().contains("intake_key"));
    }
}
