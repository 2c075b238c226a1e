//! The TOML configuration: topology by name (sources → sinks, each sink naming its `inputs`),
//! parsed with serde and then checked as a whole before anything starts.

mod units;

pub use units::{ByteSize, Duration};

use crate::sinks::clickhouse::ClickHouseSinkConfig;
use crate::sinks::file::FileSinkConfig;
use crate::sinks::postgres::PostgresSinkConfig;
use crate::sinks::sqlite::SqliteSinkConfig;
use crate::sinks::syslog::SyslogSinkConfig;
use crate::sources::conntrack::ConntrackConfig;
use crate::sources::file::FileSourceConfig;
use crate::sources::kmsg::KmsgConfig;
use crate::sources::nfacct::NfacctConfig;
use crate::sources::nflog::NflogConfig;
use crate::sources::stdin::StdinConfig;
use crate::sources::syslog::SyslogConfig;
use crate::transforms::action::ActionConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The embedded default: what `nflogd run` does without a config file.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often the one-line statistics summary is logged ("0s" disables it).
    #[serde(default = "default_stats_interval")]
    pub stats_interval: Duration,
    /// How long sinks get, once nflogd is stopping, to finish what they hold before the process
    /// exits anyway (what a sink spooled stays in its spool). Default "5s".
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Duration,
    /// The mask of the modes of files and directories nflogd creates (logs, spools, stores,
    /// positions). Default "0027": files 0640, directories 0750.
    #[serde(default = "default_umask")]
    pub umask: String,
    /// Name written as the observer host in records; default: this host's name.
    pub hostname: Option<String>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. "127.0.0.1:9177"); off by default.
    pub metrics_address: Option<String>,
    #[serde(default)]
    pub actions: ActionConfig,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

pub fn default_queue_events() -> u64 {
    crate::pipeline::QueueLimits::default().events
}

pub fn default_queue_bytes() -> ByteSize {
    ByteSize(crate::pipeline::QueueLimits::default().bytes)
}

fn default_umask() -> String {
    "0027".into()
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_stats_interval() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    Nflog(NflogConfig),
    Kmsg(KmsgConfig),
    File(FileSourceConfig),
    Stdin(StdinConfig),
    Syslog(SyslogConfig),
    Conntrack(ConntrackConfig),
    Nfacct(NfacctConfig),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    File(FileSinkConfig),
    Syslog(Box<SyslogSinkConfig>),
    Sqlite(SqliteSinkConfig),
    Postgres(Box<PostgresSinkConfig>),
    Clickhouse(Box<ClickHouseSinkConfig>),
}

impl SourceConfig {
    /// Whether the source can wait for a slow sink without losing anything (a file stays on
    /// disk, TCP has flow control, the kernel's log ring holds records a while), rather than
    /// the kernel dropping what it cannot hand over (NFLOG, conntrack, UDP).
    pub fn can_wait(&self) -> bool {
        match self {
            SourceConfig::Kmsg(_) | SourceConfig::File(_) | SourceConfig::Stdin(_) => true,
            SourceConfig::Syslog(c) => c.mode != crate::sources::syslog::Mode::Udp,
            SourceConfig::Nflog(_) | SourceConfig::Conntrack(_) | SourceConfig::Nfacct(_) => false,
        }
    }
}

impl SinkConfig {
    pub fn queue_limits(&self) -> crate::pipeline::QueueLimits {
        let (events, bytes) = match self {
            SinkConfig::File(f) => (f.queue_max_events, f.queue_max_bytes.0),
            SinkConfig::Syslog(s) => (s.queue_max_events, s.queue_max_bytes.0),
            SinkConfig::Sqlite(s) => (s.queue_max_events, s.queue_max_bytes.0),
            SinkConfig::Postgres(s) => (s.queue_max_events, s.queue_max_bytes.0),
            SinkConfig::Clickhouse(s) => (s.queue_max_events, s.queue_max_bytes.0),
        };
        crate::pipeline::QueueLimits { events, bytes }
    }

    pub fn inputs(&self) -> &[String] {
        match self {
            SinkConfig::File(f) => &f.inputs,
            SinkConfig::Syslog(s) => &s.inputs,
            SinkConfig::Sqlite(s) => &s.inputs,
            SinkConfig::Postgres(s) => &s.inputs,
            SinkConfig::Clickhouse(s) => &s.inputs,
        }
    }
}

impl Config {
    /// Parses and validates a configuration text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", locate_unknown_key(text, &e)))?;
        cfg.validate()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<()> {
        if self.sources.is_empty() {
            bail!("no [sources.*] defined: nflogd needs at least one source");
        }
        if self.sinks.is_empty() {
            bail!("no [sinks.*] defined: nflogd needs at least one sink");
        }
        self.actions.validate().context("[actions]")?;
        crate::files::parse_umask(&self.umask)?;
        let mut groups: HashMap<(Option<&str>, u16), &str> = HashMap::new();
        for (name, s) in &self.sources {
            match s {
                SourceConfig::Kmsg(_) | SourceConfig::Stdin(_) => {}
                SourceConfig::File(f) => {
                    f.validate().with_context(|| format!("[sources.{name}]"))?
                }
                SourceConfig::Syslog(c) => {
                    c.validate().with_context(|| format!("[sources.{name}]"))?
                }
                SourceConfig::Conntrack(c) => {
                    c.validate().with_context(|| format!("[sources.{name}]"))?
                }
                SourceConfig::Nfacct(c) => {
                    c.validate().with_context(|| format!("[sources.{name}]"))?
                }
                SourceConfig::Nflog(n) => {
                    n.validate().with_context(|| format!("[sources.{name}]"))?;
                    for g in &n.groups {
                        if let Some(other) = groups.insert((n.netns.as_deref(), *g), name) {
                            bail!("[sources.{name}] groups: NFLOG group {g} is already read by source `{other}`");
                        }
                    }
                }
            }
        }
        for (name, s) in &self.sinks {
            if s.inputs().is_empty() {
                bail!("[sinks.{name}] inputs: empty; name at least one source");
            }
            for i in s.inputs() {
                if !self.sources.contains_key(i) {
                    let known: Vec<_> = self.sources.keys().map(String::as_str).collect();
                    bail!(
                        "[sinks.{name}] inputs: no source named `{i}` (sources: {})",
                        known.join(", ")
                    );
                }
            }
            match s {
                SinkConfig::File(f) => f.validate().with_context(|| format!("[sinks.{name}]"))?,
                SinkConfig::Syslog(c) => c.validate().with_context(|| format!("[sinks.{name}]"))?,
                SinkConfig::Sqlite(c) => c.validate().with_context(|| format!("[sinks.{name}]"))?,
                SinkConfig::Postgres(c) => {
                    c.validate().with_context(|| format!("[sinks.{name}]"))?
                }
                SinkConfig::Clickhouse(c) => {
                    c.validate().with_context(|| format!("[sinks.{name}]"))?
                }
            }
        }
        Ok(())
    }
}

/// serde reports an unknown key inside a tagged table at the table's header; name the key's own
/// line too, so the message points at what to fix.
fn locate_unknown_key(text: &str, e: &toml::de::Error) -> String {
    let msg = e.to_string();
    let Some(key) = e
        .message()
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    else {
        return msg;
    };
    let start = e.span().map(|s| s.start).unwrap_or(0);
    let before = text[..start.min(text.len())].lines().count().max(1);
    for (i, line) in text.lines().enumerate().skip(before.saturating_sub(1)) {
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return format!(
                "{msg}  --> the key `{key}` is on line {}: {}",
                i + 1,
                line.trim()
            );
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        Config::parse(DEFAULT_CONFIG, "default").unwrap();
    }

    #[test]
    fn errors_point_at_the_key() {
        let e = Config::parse(
            "[sources.fw]\ntype = \"nflog\"\ngroups = [1]\nsnaplne = 5\n",
            "t",
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("snaplne") && msg.contains("line 4"), "{msg}");
        let e = Config::parse(
            "[sources.fw]\ntype = \"nflog\"\ngroups = [1]\n[sinks.out]\ntype = \"file\"\ninputs = [\"nope\"]\npath = \"-\"\n",
            "t",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("no source named `nope`"), "{e:#}");
        let e = Config::parse("[sources.fw]\ntype = \"kmsgx\"\n", "t").unwrap_err();
        assert!(format!("{e:#}").contains("kmsgx"), "{e:#}");
        let e = Config::parse(
            "[sources.a]\ntype=\"nflog\"\ngroups=[3]\n[sources.b]\ntype=\"nflog\"\ngroups=[3]\n[sinks.o]\ntype=\"file\"\ninputs=[\"a\"]\npath=\"-\"\n",
            "t",
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("group 3 is already read"),
            "{e:#}"
        );
    }
}
