//! `nflogd doctor [--config FILE]`: what silently breaks firewall logging, looked for in the
//! network namespace it runs in — one finding a line with its fix, exit 1 when there is any.
//! - an NFLOG group the configuration reads, held by another process (named);
//! - rules that log to NFLOG groups no source reads, sources that read groups no rule logs to;
//! - where the kernel's own logging of each family goes (its nf_log backend);
//! - `LOG` rules in a network namespace other than the first while `nf_log_all_netns` is 0;
//! - conntrack accounting and timestamps off while a conntrack source wants them;
//! - socket buffers the configuration asks for above `net.core.rmem_max`, without the
//!   capability to pass it.

use crate::config::Config;
use crate::sources::SourceConfig;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Something that breaks logging, and what to do.
#[derive(Debug)]
pub struct Finding {
    pub what: String,
    pub fix: String,
}

/// What the doctor saw that is worth saying but is not a fault.
type Notes = Vec<String>;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A logging rule found in the ruleset.
struct LogRule {
    family: String,
    table: String,
    chain: String,
    /// `None`: the kernel's `LOG` (text in the kernel log).
    group: Option<u16>,
}

/// The `log` statements of `nft -j list ruleset` (iptables-nft's NFLOG and LOG rules are
/// there too).
fn log_rules(netns: Option<&str>) -> Result<Vec<LogRule>> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => std::process::Command::new("nft"),
    };
    let out = cmd
        .args(["-j", "list", "ruleset"])
        .output()
        .context("running `nft -j list ruleset` (is nftables installed?)")?;
    if !out.status.success() {
        anyhow::bail!(
            "`nft -j list ruleset`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("nft's JSON")?;
    let mut rules = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let mut logs = Vec::new();
        find_logs(&rule["expr"], &mut logs);
        for group in logs {
            rules.push(LogRule {
                family: rule["family"].as_str().unwrap_or("").to_string(),
                table: rule["table"].as_str().unwrap_or("").to_string(),
                chain: rule["chain"].as_str().unwrap_or("").to_string(),
                group,
            });
        }
    }
    Ok(rules)
}

/// The NFLOG and LOG rules of legacy iptables (x_tables), which nft does not list.
fn legacy_log_rules() -> Vec<LogRule> {
    let mut rules = Vec::new();
    for (tool, family) in [
        ("iptables-legacy-save", "ip"),
        ("ip6tables-legacy-save", "ip6"),
    ] {
        let Ok(out) = std::process::Command::new(tool)
            .stderr(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        rules.extend(parse_legacy_save(
            &String::from_utf8_lossy(&out.stdout),
            family,
        ));
    }
    rules
}

/// `iptables-save` text: `*table`, then `-A CHAIN … -j NFLOG --nflog-group N` or `-j LOG`.
fn parse_legacy_save(text: &str, family: &str) -> Vec<LogRule> {
    let mut rules = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let target = words.windows(2).find(|w| w[0] == "-j").map(|w| w[1]);
        let group = match target {
            Some("NFLOG") => Some(
                words
                    .windows(2)
                    .find(|w| w[0] == "--nflog-group")
                    .and_then(|w| w[1].parse().ok())
                    .unwrap_or(0),
            ),
            Some("LOG") => None,
            _ => continue,
        };
        rules.push(LogRule {
            family: format!("{family} (iptables-legacy)"),
            table: table.clone(),
            chain: words.first().unwrap_or(&"").to_string(),
            group,
        });
    }
    rules
}

fn find_logs(v: &Value, out: &mut Vec<Option<u16>>) {
    match v {
        Value::Object(m) => {
            if let Some(log) = m.get("log") {
                out.push(log.get("group").and_then(Value::as_u64).map(|g| g as u16));
            }
            for x in m.values() {
                find_logs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find_logs(x, out)),
        _ => {}
    }
}

/// NFLOG groups bound in this namespace, with the netlink port id that holds each.
fn bound_groups() -> BTreeMap<u16, u32> {
    read("/proc/self/net/netfilter/nfnetlink_log")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// The process holding netlink port `portid` (NETLINK_NETFILTER): its name and pid.
fn port_owner(portid: u32) -> Option<(String, u32)> {
    let table = read("/proc/self/net/netlink")?;
    let inode = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"12") && f.get(2).and_then(|p| p.parse().ok()) == Some(portid))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let target = format!("socket:[{inode}]");
    for proc in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                let comm = read(&format!("/proc/{pid}/comm")).unwrap_or_default();
                return Some((comm, pid));
            }
        }
    }
    None
}

/// Whether this process has CAP_NET_ADMIN in effect.
fn has_net_admin() -> bool {
    read("/proc/self/status")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

const ALL_NETNS: &str = "/proc/sys/net/netfilter/nf_log_all_netns";

/// Whether this process runs in the first network namespace: only there does the kernel
/// register `nf_log_all_netns`.
fn in_initial_netns() -> bool {
    Path::new(ALL_NETNS).exists()
}

const FAMILIES: [(u8, &str); 5] = [
    (2, "IPv4"),
    (10, "IPv6"),
    (7, "bridge"),
    (3, "ARP"),
    (5, "netdev"),
];

/// Examines this namespace against `cfg`.
pub fn examine(cfg: &Config) -> Result<(Vec<Finding>, Notes)> {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    // What the configuration reads here (sources with a `netns` of their own are left out).
    let mut read_groups: BTreeMap<u16, String> = BTreeMap::new();
    let mut buffers: Vec<(String, u64)> = Vec::new();
    let mut conntrack: Vec<(String, bool, bool)> = Vec::new();
    let mut reads_kernel_log = false;
    for (name, s) in &cfg.sources {
        match s {
            SourceConfig::Nflog(c) if c.netns.is_none() => {
                for g in &c.groups {
                    read_groups.insert(*g, name.clone());
                }
                buffers.push((name.clone(), c.socket_buffer.0));
            }
            SourceConfig::Conntrack(c) if c.netns.is_none() => {
                conntrack.push((name.clone(), c.accounting, c.timestamps));
                buffers.push((name.clone(), c.socket_buffer.0));
            }
            SourceConfig::Kmsg(_) | SourceConfig::File(_) => reads_kernel_log = true,
            _ => {}
        }
    }

    // NFLOG groups held by others.
    let bound = bound_groups();
    let me = std::process::id();
    for (g, source) in &read_groups {
        let Some(&port) = bound.get(g) else { continue };
        match port_owner(port) {
            Some((comm, pid)) if pid != me => findings.push(Finding {
                what: format!("NFLOG group {g} (source `{source}`) is held by {comm} (pid {pid}): only one process per namespace can read a group, so nflogd cannot start"),
                fix: format!("stop {comm} (`systemctl disable --now {}`), or have the rules log to another group", if comm.starts_with("ulogd") { "ulogd2" } else { comm.as_str() }),
            }),
            None => findings.push(Finding {
                what: format!("NFLOG group {g} (source `{source}`) is held by another process (netlink port {port})"),
                fix: "stop that process, or have the rules log to another group".into(),
            }),
            _ => {}
        }
    }

    // Rules against sources.
    // Reading the ruleset takes CAP_NET_ADMIN: without it those checks are skipped, and said so.
    let mut rules = log_rules(None).unwrap_or_else(|e| {
        notes.push(format!("the ruleset could not be read ({e:#}): the checks of rules against sources were skipped"));
        Vec::new()
    });
    rules.extend(legacy_log_rules());
    let ruleset_read = !notes
        .iter()
        .any(|n| n.starts_with("the ruleset could not be read"));
    let logged: BTreeSet<u16> = rules.iter().filter_map(|r| r.group).collect();
    for (g, source) in read_groups.iter().filter(|_| ruleset_read) {
        if !logged.contains(g) {
            findings.push(Finding {
                what: format!("source `{source}` reads NFLOG group {g}, but no rule logs to it: it will stay silent"),
                fix: format!("add `log group {g}` to the rules whose packets you want (iptables: -j NFLOG --nflog-group {g}), or read the group they use"),
            });
        }
    }
    let mut unread: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for r in &rules {
        if let Some(g) = r.group.filter(|g| !read_groups.contains_key(g)) {
            unread
                .entry(g)
                .or_default()
                .push(format!("{} {} {}", r.family, r.table, r.chain));
        }
    }
    for (g, chains) in unread {
        let mut chains = chains;
        chains.dedup();
        findings.push(Finding {
            what: format!("rules log to NFLOG group {g} ({}), which no source reads: those packets are logged nowhere", chains.join(", ")),
            fix: format!("add {g} to the `groups` of an nflog source"),
        });
    }

    // The kernel's own logging, per family.
    let log_rules_here = rules.iter().any(|r| r.group.is_none());
    for (fam, name) in FAMILIES {
        let Some(backend) = read(&format!("/proc/sys/net/netfilter/nf_log/{fam}")) else {
            continue;
        };
        notes.push(format!(
            "{name}: the kernel's own logging goes to {backend}"
        ));
        if backend == "nfnetlink_log" && !read_groups.contains_key(&0) {
            findings.push(Finding {
                what: format!("{name}: the kernel's own logging (e.g. conntrack's invalid packets) goes to NFLOG group 0 (nfnetlink_log is the backend, as ulogd2 sets it), which no source reads"),
                fix: format!("add 0 to an nflog source's groups, or `echo nf_log_syslog > /proc/sys/net/netfilter/nf_log/{fam}`"),
            });
        }
    }

    // LOG rules where the kernel prints nothing: it logs another namespace's only with
    // nf_log_all_netns, which can be read (and set) in the first namespace alone.
    if !in_initial_netns() {
        if log_rules_here {
            notes.push("`log` rules here print to the kernel log only if net.netfilter.nf_log_all_netns is 1 in the first namespace (run the doctor there to check)".into());
        }
    } else if read(ALL_NETNS).as_deref() != Some("1") {
        let named = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten();
        for ns in named {
            let name = ns.file_name().to_string_lossy().to_string();
            let has = log_rules(Some(&name)).is_ok_and(|r| r.iter().any(|r| r.group.is_none()));
            if has {
                findings.push(Finding {
                    what: format!("LOG rules (`log` without a group) in network namespace {name} print nothing: the kernel logs only the first namespace's while net.netfilter.nf_log_all_netns is 0"),
                    fix: "`sysctl -w net.netfilter.nf_log_all_netns=1`, or log to an NFLOG group and read it in that namespace".into(),
                });
            }
        }
    }
    if log_rules_here && !reads_kernel_log {
        notes.push("`log` rules without a group write to the kernel log, which no kmsg or file source of this configuration reads".into());
    }

    // Conntrack's counters and times.
    for (name, accounting, timestamps) in &conntrack {
        for (wanted, key, what) in [
            (*accounting, "nf_conntrack_acct", "packet and byte counters"),
            (
                *timestamps,
                "nf_conntrack_timestamp",
                "start times and durations",
            ),
        ] {
            if wanted && read(&format!("/proc/sys/net/netfilter/{key}")).as_deref() == Some("0") {
                findings.push(Finding {
                    what: format!("source `{name}` wants {what}, but net.netfilter.{key} is 0: flows end without them"),
                    fix: format!("`sysctl -w net.netfilter.{key}=1` (nflogd sets it when it starts with CAP_NET_ADMIN)"),
                });
            }
        }
    }

    // Socket buffers.
    let rmem_max: u64 = read("/proc/sys/net/core/rmem_max")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if !has_net_admin() {
        for (name, asked) in &buffers {
            if rmem_max > 0 && *asked > rmem_max {
                findings.push(Finding {
                    what: format!("source `{name}` asks for a {asked}-byte socket buffer, above net.core.rmem_max ({rmem_max}); without CAP_NET_ADMIN it gets {rmem_max}, and bursts are lost"),
                    fix: format!("`sysctl -w net.core.rmem_max={asked}`, or run nflogd with CAP_NET_ADMIN"),
                });
            }
        }
    }
    Ok((findings, notes))
}

/// The command: prints notes and findings, exit status 1 when there is a finding.
pub fn run(config: Option<&Path>) -> Result<std::process::ExitCode> {
    let cfg = match config {
        Some(p) => Config::load(p)?,
        None => Config::parse(crate::config::DEFAULT_CONFIG, "embedded default")?,
    };
    let (findings, notes) = examine(&cfg)?;
    for n in &notes {
        println!("note: {n}");
    }
    for f in &findings {
        println!("finding: {} — fix: {}", f.what, f.fix);
    }
    if findings.is_empty() {
        println!("no findings");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!(
            "{} finding{}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        Ok(std::process::ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_nflog_and_log_rules_are_read() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 25 -j NFLOG --nflog-prefix \"SMTP \" --nflog-group 12\n-A INPUT -p udp -j LOG --log-prefix \"U \"\n-A INPUT -j ACCEPT\n-A FORWARD -j NFLOG\nCOMMIT\n";
        let r = parse_legacy_save(text, "ip");
        let got: Vec<(String, Option<u16>)> =
            r.iter().map(|r| (r.chain.clone(), r.group)).collect();
        assert_eq!(
            got,
            [
                ("INPUT".into(), Some(12)),
                ("INPUT".into(), None),
                ("FORWARD".into(), Some(0))
            ]
        );
        assert_eq!(r[0].table, "filter");
    }
}
