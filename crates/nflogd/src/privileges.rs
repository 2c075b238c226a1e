//! What the configuration needs of the kernel's privileges, and keeping only that. Each
//! component names the capabilities it needs (`Source::capabilities` and the like). Run as
//! root, nflogd keeps root's; run as another user (the packaged service), it checks that it
//! has each one it needs — naming the component and the capability when one is missing — and
//! keeps exactly those, passing them on to the `nft` and `ipset` it runs (ambient set).

use crate::config::Config;
use anyhow::{bail, Result};
pub use caps::Capability;
use caps::{CapSet, CapsHashSet};

/// A capability and the component that needs it.
pub type Need = (Capability, String);

/// Whether a listener on `address` (`HOST:PORT`) needs CAP_NET_BIND_SERVICE.
pub fn binds_privileged_port(address: &str) -> bool {
    let port = address
        .rsplit_once(':')
        .map_or(address, |(_, p)| p)
        .trim()
        .parse::<u16>()
        .ok();
    let first_unprivileged =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    port.is_some_and(|p| p != 0 && p < first_unprivileged)
}

/// Every capability the configuration needs, with who needs it.
pub fn needs(cfg: &Config) -> Vec<Need> {
    let mut v = Vec::new();
    for (name, s) in &cfg.sources {
        for c in s.component().capabilities() {
            v.push((c, format!("source `{name}`")));
        }
    }
    for (name, t) in &cfg.transforms {
        for c in t.component().capabilities() {
            v.push((c, format!("transform `{name}`")));
        }
    }
    for (name, s) in &cfg.sinks {
        for c in s.component().capabilities() {
            v.push((c, format!("sink `{name}`")));
        }
    }
    for (key, a) in [
        ("metrics_address", &cfg.metrics_address),
        ("http_address", &cfg.http_address),
    ] {
        if let Some(a) = a.as_deref().filter(|a| binds_privileged_port(a)) {
            v.push((Capability::CAP_NET_BIND_SERVICE, format!("{key} {a}")));
        }
    }
    v
}

/// Keeps exactly the capabilities `needs` names (unless running as root); an error names a
/// missing one and who needs it.
pub fn settle(needs: &[Need]) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let permitted = caps::read(None, CapSet::Permitted)?;
    let missing: Vec<String> = needs
        .iter()
        .filter(|(c, _)| !permitted.contains(c))
        .map(|(c, who)| format!("{who} needs {c}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}, which nflogd does not have (it runs as uid {}); run it as root, or grant it (systemd: AmbientCapabilities=, setpriv --ambient-caps)",
            missing.join("; "),
            // SAFETY: getuid has no preconditions.
            unsafe { libc::getuid() }
        );
    }
    let wanted: CapsHashSet = needs.iter().map(|(c, _)| *c).collect();
    // Ambient capabilities need their inheritable bit; the ones not wanted go from every set.
    caps::set(None, CapSet::Effective, &wanted)?;
    caps::set(None, CapSet::Inheritable, &wanted)?;
    caps::set(None, CapSet::Permitted, &wanted)?;
    caps::clear(None, CapSet::Ambient)?;
    for c in &wanted {
        caps::raise(None, CapSet::Ambient, *c)?;
    }
    let mut names: Vec<String> = wanted.iter().map(|c| c.to_string()).collect();
    names.sort();
    tracing::info!(
        "running without root, with {}",
        if names.is_empty() {
            "no capabilities".to_string()
        } else {
            names.join(", ")
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_names_what_it_needs() {
        let cfg = Config::parse(
            r#"
[sources.fw]
type = "nflog"
groups = [1]
netns = "/proc/self/ns/net"
[sources.k]
type = "kmsg"
[sources.low]
type = "syslog"
address = "127.0.0.1:514"
mode = "udp"
[sources.high]
type = "syslog"
address = "127.0.0.1:5514"
mode = "udp"
[transforms.g]
type = "guard"
inputs = ["fw"]
dry_run = true
[transforms.g.detectors.portscan]
[sinks.f]
type = "file"
inputs = ["fw", "k", "low", "high", "g"]
path = "/dev/null"
"#,
            "test",
        )
        .unwrap();
        let mut got: Vec<(String, String)> = needs(&cfg)
            .into_iter()
            .map(|(c, who)| (who, c.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("source `fw`".into(), "CAP_NET_ADMIN".into()),
                ("source `fw`".into(), "CAP_SYS_ADMIN".into()),
                ("source `k`".into(), "CAP_SYSLOG".into()),
                ("source `low`".into(), "CAP_NET_BIND_SERVICE".into()),
            ]
        );
    }
}
