//! The TOML configuration: the topology as a graph by name (sources → transforms → sinks, each
//! transform and sink naming its `inputs`), parsed with serde and then checked as a whole
//! before anything starts. The component types themselves are listed in their registries
//! (`sources`, `transforms`, `sinks`); this module knows none of them but NFLOG's groups.

pub use crate::sinks::SinkConfig;
pub use crate::sources::SourceConfig;
pub use crate::transforms::TransformConfig;

use crate::graph::Graph;
use crate::transforms::action::ActionConfig;
use crate::units::Duration;
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
    /// Serve the dashboard (`/`), the JSON API (`/api/`) and the metrics (`/metrics`) here; a
    /// bare port (`9177`, `:9177`) listens on loopback only. Off by default.
    pub http_address: Option<String>,
    /// Basic authentication for http_address: both or neither.
    pub http_user: Option<String>,
    pub http_password: Option<String>,
    /// TLS for http_address (PEM): both or neither.
    pub http_cert_file: Option<std::path::PathBuf>,
    pub http_key_file: Option<std::path::PathBuf>,
    /// Write `network.community_id` (Community ID v1) in ECS records. Default true.
    #[serde(default = "default_true")]
    pub community_id: bool,
    /// The Community ID seed (0 unless all tools computing it agree on another).
    #[serde(default)]
    pub community_id_seed: u16,
    #[serde(default)]
    pub actions: ActionConfig,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub transforms: BTreeMap<String, TransformConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// What the check found worth saying but not refusing (a node feeding nothing).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The file as TOML, to tell what a reload changed.
    #[serde(skip)]
    pub raw: toml::Table,
}

fn default_true() -> bool {
    true
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

impl Config {
    /// Parses and validates a configuration text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", locate_unknown_key(text, &e)))?;
        cfg.raw = toml::from_str(text).unwrap_or_default();
        cfg.add_dashboard_sink();
        cfg.warnings = cfg
            .validate()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// A component's table (`kind` is `sources`, `transforms` or `sinks`) as written.
    pub fn section(&self, kind: &str, name: &str) -> Option<&toml::Value> {
        self.raw.get(kind)?.get(name)
    }

    /// The settings outside the component tables.
    pub fn globals(&self) -> toml::Table {
        let mut t = self.raw.clone();
        for k in ["sources", "transforms", "sinks"] {
            t.remove(k);
        }
        t
    }

    /// With `http_address` and no `dashboard` sink of its own, the configuration gets one that
    /// takes what every other sink takes, so the live views show what is logged.
    fn add_dashboard_sink(&mut self) {
        if self.http_address.is_none()
            || self
                .sinks
                .values()
                .any(|s| matches!(s, SinkConfig::Dashboard(_)))
        {
            return;
        }
        let mut inputs: Vec<String> = self
            .sinks
            .values()
            .flat_map(|s| s.component().inputs().iter().cloned())
            .collect();
        inputs.sort();
        inputs.dedup();
        if inputs.is_empty() {
            inputs = self.sources.keys().cloned().collect();
        }
        let name = ["dashboard", "dashboard-live"]
            .into_iter()
            .find(|n| !self.sinks.contains_key(*n))
            .unwrap_or("dashboard-live")
            .to_string();
        // In the raw table too, so that a reload tells when its inputs changed.
        let mut table = toml::Table::new();
        table.insert("type".into(), "dashboard".into());
        table.insert(
            "inputs".into(),
            toml::Value::Array(inputs.iter().map(|i| i.clone().into()).collect()),
        );
        if let Some(toml::Value::Table(sinks)) = self.raw.get_mut("sinks") {
            sinks.insert(name.clone(), toml::Value::Table(table));
        }
        self.sinks.insert(
            name,
            SinkConfig::Dashboard(crate::sinks::dashboard::DashboardSinkConfig { inputs }),
        );
    }

    /// The graph of the topology.
    pub fn graph(&self) -> Graph<'_> {
        Graph {
            sources: self.sources.keys().map(String::as_str).collect(),
            transforms: self
                .transforms
                .iter()
                .map(|(n, t)| (n.as_str(), t.component().inputs()))
                .collect(),
            sinks: self
                .sinks
                .iter()
                .map(|(n, s)| (n.as_str(), s.component().inputs()))
                .collect(),
        }
    }

    fn validate(&self) -> Result<Vec<String>> {
        if self.sources.is_empty() {
            bail!("no [sources.*] defined: nflogd needs at least one source");
        }
        if self.sinks.is_empty() {
            bail!("no [sinks.*] defined: nflogd needs at least one sink");
        }
        self.actions.validate().context("[actions]")?;
        if self.http_user.is_some() != self.http_password.is_some() {
            bail!("http_user and http_password go together: give both or neither");
        }
        if self.http_cert_file.is_some() != self.http_key_file.is_some() {
            bail!("http_cert_file and http_key_file go together: give both or neither");
        }
        if let Some(a) = &self.http_address {
            crate::http::listen_address(a).context("http_address")?;
        }
        crate::files::parse_umask(&self.umask)?;
        let mut groups: HashMap<(Option<&str>, u16), &str> = HashMap::new();
        for (name, s) in &self.sources {
            s.component()
                .validate()
                .with_context(|| format!("[sources.{name}]"))?;
            if let SourceConfig::Nflog(n) = s {
                for g in &n.groups {
                    if let Some(other) = groups.insert((n.netns.as_deref(), *g), name) {
                        bail!("[sources.{name}] groups: NFLOG group {g} is already read by source `{other}`");
                    }
                }
            }
        }
        for (name, t) in &self.transforms {
            t.component()
                .validate()
                .with_context(|| format!("[transforms.{name}]"))?;
        }
        for (name, s) in &self.sinks {
            s.component()
                .validate()
                .with_context(|| format!("[sinks.{name}]"))?;
        }
        self.graph().check()
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
        assert!(
            format!("{e:#}").contains("no source or transform named `nope`"),
            "{e:#}"
        );
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
