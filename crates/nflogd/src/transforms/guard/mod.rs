//! `[transforms.NAME] type = "guard"`: counts failures per source address from auth logs
//! (lines) and firewall records (packets), bans the address's prefix in the kernel when a
//! detector's threshold is crossed, and hands its decisions on as events.
//!
//! A stateful transform: it runs in a thread of its own, takes lines and packets, and gives
//! out only its decisions (ban, unban).

mod bans;
pub mod control;
mod detect;
mod enforce;
mod pattern;

use crate::metrics::ComponentCounters;
use crate::transforms::{Transform, TransformContext, TransformType};
use crate::units::{Duration, Protocol};
use anyhow::{bail, Context, Result};
use bans::{Added, Ban, Bans};
use detect::{Count, LineDetector};
use event::{Action, Decision, Event, Timestamp, Verdict};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    pub inputs: Vec<String>,
    /// How long a first ban lasts.
    #[serde(default = "default_ban_time")]
    pub ban_time: Duration,
    /// Each repeat ban of the same prefix lasts `ban_time_factor` times the one before, up to
    /// `max_ban_time`; a prefix's past bans are forgotten `forget_time` after its last.
    #[serde(default = "default_factor")]
    pub ban_time_factor: u32,
    #[serde(default = "default_max_ban_time")]
    pub max_ban_time: Duration,
    #[serde(default = "default_forget_time")]
    pub forget_time: Duration,
    /// Never banned. The host's own addresses and loopback are added unless `allow_own` is
    /// false.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default = "yes")]
    pub allow_own: bool,
    /// What a ban covers: an IPv4 address by default, an IPv6 /64 (one host's usual share).
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
    /// `nftables` (default), `ipset` or `xt_recent`.
    #[serde(default)]
    pub backend: Backend,
    /// nftables: the inet table nflogd owns (default `nflogd_NAME`), the hooks its drop rules
    /// hang on, and their priority.
    pub table: Option<String>,
    #[serde(default = "default_hooks")]
    pub hooks: Vec<HookName>,
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// xt_recent: the list's name (`/proc/net/xt_recent/NAME`).
    pub xt_recent: Option<String>,
    /// ipset: the `hash:net` set for IPv4 (`NAME`); IPv6 goes to `NAME6`.
    pub ipset: Option<String>,
    /// Decide and report, but leave the kernel alone.
    #[serde(default)]
    pub dry_run: bool,
    /// Where bans are kept across restarts (default `/var/lib/nflogd/guard-NAME.json`).
    pub state_file: Option<PathBuf>,
    /// The socket `nflogd guard` talks to (default `/run/nflogd/guard-NAME.sock`).
    pub control_socket: Option<PathBuf>,
    pub detectors: BTreeMap<String, DetectorConfig>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Nftables,
    Ipset,
    XtRecent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookName {
    Input,
    Forward,
}

/// `[transforms.NAME.detectors.KIND]`: `sshd`, `postfix`, `dovecot` and `portscan` are built
/// in; any other name needs `patterns` (and usually `programs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    #[serde(default = "default_retry")]
    pub max_retry: u32,
    #[serde(default = "default_find_time")]
    pub find_time: Duration,
    /// A ban time for this detector's bans instead of the guard's.
    pub ban_time: Option<Duration>,
    /// Your own lines: patterns with `<ADDR>`, `<PORT>` and `<*>`, each match one failure.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// The programs whose lines the patterns are for (syslog tag or journald identifier).
    #[serde(default)]
    pub programs: Vec<String>,
    /// portscan: distinct destination ports from one source within `find_time`.
    #[serde(default = "default_ports")]
    pub ports: u32,
    /// portscan: which protocols count (TCP by default: a UDP source is too easily forged).
    #[serde(default = "default_scan_protocols")]
    pub protocols: Vec<Protocol>,
}

fn default_ban_time() -> Duration {
    Duration::from_secs(600)
}
fn default_factor() -> u32 {
    2
}
fn default_max_ban_time() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_forget_time() -> Duration {
    Duration::from_secs(86400)
}
fn yes() -> bool {
    true
}
fn default_v4_prefix() -> u8 {
    32
}
fn default_v6_prefix() -> u8 {
    64
}
fn default_hooks() -> Vec<HookName> {
    vec![HookName::Input]
}
fn default_priority() -> i32 {
    -10
}
fn default_retry() -> u32 {
    5
}
fn default_find_time() -> Duration {
    Duration::from_secs(600)
}
fn default_ports() -> u32 {
    20
}
fn default_scan_protocols() -> Vec<Protocol> {
    vec![Protocol::Name("tcp".into())]
}

impl GuardConfig {
    fn table_name(&self, name: &str) -> String {
        self.table
            .clone()
            .unwrap_or_else(|| format!("nflogd_{name}"))
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/var/lib/nflogd/guard-{name}.json")))
    }

    /// The control socket of the guard called `name`.
    pub fn socket_path(&self, name: &str) -> PathBuf {
        self.control_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/run/nflogd/guard-{name}.sock")))
    }
}

/// One detector, built: what it reads and its thresholds.
struct Detector {
    name: Arc<str>,
    kind: Kind,
    max_retry: u32,
    find_time: f64,
    ban_time: Option<std::time::Duration>,
}

enum Kind {
    Lines(LineDetector),
    Portscan { protocols: Vec<u8> },
}

impl TransformType for GuardConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn validate(&self) -> Result<()> {
        self.detectors()?;
        if self.ipv4_prefix == 0 || self.ipv4_prefix > 32 {
            bail!("ipv4_prefix must be 1 to 32");
        }
        if self.ipv6_prefix == 0 || self.ipv6_prefix > 128 {
            bail!("ipv6_prefix must be 1 to 128");
        }
        if self.backend == Backend::XtRecent && self.xt_recent.is_none() {
            bail!("backend = \"xt_recent\" needs `xt_recent = \"LIST\"`, the name an iptables `-m recent --name` rule uses");
        }
        if self.backend == Backend::Ipset && self.ipset.is_none() {
            bail!("backend = \"ipset\" needs `ipset = \"NAME\"`: hash:net sets NAME (IPv4) and NAME6 (IPv6) made with a timeout");
        }
        if self.ban_time_factor == 0 {
            bail!("ban_time_factor must be at least 1");
        }
        Ok(())
    }

    fn stateful(&self) -> bool {
        true
    }

    fn takes_lines(&self) -> bool {
        true
    }

    // Changing the ruleset, sets or xt_recent lists.
    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        if self.dry_run {
            Vec::new()
        } else {
            vec![crate::privileges::Capability::CAP_NET_ADMIN]
        }
    }

    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Guard::new(self, ctx)?))
    }
}

impl GuardConfig {
    fn detectors(&self) -> Result<Vec<Detector>> {
        if self.detectors.is_empty() {
            bail!("a guard needs at least one detector: [transforms.NAME.detectors.sshd], .portscan, .postfix, .dovecot, or one of your own with `patterns`");
        }
        let mut out = Vec::new();
        for (name, d) in &self.detectors {
            let kind = match name.as_str() {
                "portscan" => Kind::Portscan {
                    protocols: d
                        .protocols
                        .iter()
                        .map(Protocol::number)
                        .collect::<Result<_>>()?,
                },
                builtin @ ("sshd" | "postfix" | "dovecot") if d.patterns.is_empty() => {
                    let (programs, rules) = match builtin {
                        "sshd" => detect::sshd(),
                        "postfix" => detect::postfix(),
                        _ => detect::dovecot(),
                    };
                    Kind::Lines(LineDetector {
                        programs: if d.programs.is_empty() {
                            programs
                        } else {
                            d.programs.clone()
                        },
                        rules,
                    })
                }
                _ => {
                    if d.patterns.is_empty() {
                        bail!("detector `{name}` is not built in (sshd, postfix, dovecot, portscan): give it `patterns`");
                    }
                    let rules = d
                        .patterns
                        .iter()
                        .map(|p| {
                            pattern::Pattern::new(p).map(|pattern| detect::Rule {
                                pattern,
                                count: Count::Attempt,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(|e| anyhow::anyhow!("detector `{name}`: {e}"))?;
                    Kind::Lines(LineDetector {
                        programs: d.programs.clone(),
                        rules,
                    })
                }
            };
            if d.max_retry == 0 {
                bail!("detector `{name}`: max_retry must be at least 1");
            }
            out.push(Detector {
                name: name.as_str().into(),
                kind,
                max_retry: if name == "portscan" {
                    d.ports
                } else {
                    d.max_retry
                },
                find_time: d.find_time.0.as_secs_f64(),
                ban_time: d.ban_time.map(|b| b.0),
            });
        }
        Ok(out)
    }
}

/// What is remembered of one connection's failures, so its lines count once (`Count`).
#[derive(Default, Clone, Copy)]
struct Conn {
    counted: u32,
    attempts: u32,
    seen: f64,
}

pub struct Guard {
    name: Arc<str>,
    cfg: Settings,
    detectors: Vec<Detector>,
    /// Failure times per (detector, prefix), within the detector's window.
    failures: HashMap<(usize, IpNet), VecDeque<f64>>,
    /// Destination ports per (detector, source) for port scans, with when each was last seen.
    scans: HashMap<(usize, IpAddr), Vec<(u16, f64)>>,
    conns: HashMap<(usize, IpAddr, u16), Conn>,
    bans: Bans,
    enforcer: Box<dyn enforce::Enforcer>,
    /// Kernel changes decided while reading a batch, made together at its end: one netlink
    /// batch however many bans a batch of lines decides.
    pending_add: Vec<(IpNet, std::time::Duration)>,
    pending_remove: Vec<IpNet>,
    inbox: control::Inbox,
    counters: Arc<ComponentCounters>,
    last_save: f64,
    last_sweep: f64,
}

/// The settings a running guard reads.
struct Settings {
    ban_time: f64,
    factor: u32,
    max_ban_time: f64,
    forget_time: f64,
    allow: Vec<IpNet>,
    v4: u8,
    v6: u8,
    dry_run: bool,
    state: PathBuf,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The host's own addresses (every interface's), so a guard never bans its own host.
fn own_addresses() -> Vec<IpNet> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list freed by freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut p = ifap;
    while !p.is_null() {
        // SAFETY: p walks the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: the family says which sockaddr it is.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let a = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                out.push(IpNet::from(IpAddr::V4(a)));
            } else if fam == libc::AF_INET6 {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let a = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                out.push(IpNet::from(IpAddr::V6(a)));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

impl Guard {
    fn new(cfg: &GuardConfig, ctx: &TransformContext) -> Result<Guard> {
        let name = ctx.name.as_str();
        let mut allow = cfg.allow.clone();
        if cfg.allow_own {
            allow.extend(own_addresses());
            allow.push("127.0.0.0/8".parse().expect("a prefix"));
            allow.push("::1/128".parse().expect("a prefix"));
        }
        let settings = Settings {
            ban_time: cfg.ban_time.0.as_secs_f64(),
            factor: cfg.ban_time_factor,
            max_ban_time: cfg.max_ban_time.0.as_secs_f64(),
            forget_time: cfg.forget_time.0.as_secs_f64(),
            allow,
            v4: cfg.ipv4_prefix,
            v6: cfg.ipv6_prefix,
            dry_run: cfg.dry_run,
            state: cfg.state_path(name),
        };
        if let Some(dir) = settings.state.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let t = now();
        let bans = Bans::load(&settings.state, t, settings.forget_time)?;
        let mut enforcer: Box<dyn enforce::Enforcer> = if cfg.dry_run {
            Box::new(enforce::DryRun)
        } else {
            match cfg.backend {
                Backend::Nftables => {
                    Box::new(enforce::Nftables::new(nfnetlink::nftables::GuardTable {
                        table: cfg.table_name(name),
                        hooks: cfg
                            .hooks
                            .iter()
                            .map(|h| match h {
                                HookName::Input => nfnetlink::nftables::Hook::Input,
                                HookName::Forward => nfnetlink::nftables::Hook::Forward,
                            })
                            .collect(),
                        priority: cfg.priority,
                    })?)
                }
                Backend::Ipset => Box::new(enforce::IpSet::new(
                    cfg.ipset.as_deref().unwrap_or_default(),
                )?),
                Backend::XtRecent => Box::new(enforce::XtRecent::new(
                    cfg.xt_recent.as_deref().unwrap_or_default(),
                )),
            }
        };
        // Restored in one step with what remains of each ban.
        let restore = remaining(&bans, t);
        enforcer
            .install(&restore)
            .with_context(|| format!("guard `{name}`"))?;
        if !restore.is_empty() {
            tracing::info!(
                "guard `{name}`: {} bans restored from {}",
                restore.len(),
                settings.state.display()
            );
        }
        ctx.counters
            .banned
            .store(bans.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let (tx, inbox) = crossbeam_channel::bounded(64);
        control::serve(&cfg.socket_path(name), tx)?;
        Ok(Guard {
            name: name.into(),
            cfg: settings,
            detectors: cfg.detectors()?,
            failures: HashMap::new(),
            scans: HashMap::new(),
            conns: HashMap::new(),
            bans,
            enforcer,
            pending_add: Vec::new(),
            pending_remove: Vec::new(),
            inbox,
            counters: ctx.counters.clone(),
            last_save: t,
            last_sweep: t,
        })
    }

    /// What a ban of `a` covers: its /`ipv4_prefix` or /`ipv6_prefix`, or the address alone
    /// when that prefix holds an allowed address (the host's own /64 on a LAN, say).
    fn prefix_of(&self, a: IpAddr) -> IpNet {
        let len = match a {
            IpAddr::V4(_) => self.cfg.v4,
            IpAddr::V6(_) => self.cfg.v6,
        };
        let wide = IpNet::new(a, len).expect("lengths are checked").trunc();
        if self.cfg.allow.iter().any(|n| wide.contains(n)) {
            return IpNet::from(a);
        }
        wide
    }

    fn allowed(&self, a: IpAddr) -> bool {
        self.cfg.allow.iter().any(|n| n.contains(&a))
    }

    /// One failure of `addr` seen by detector `d` at `t`; a decision when it crosses the line.
    fn failure(&mut self, d: usize, addr: IpAddr, t: f64, out: &mut Vec<Event>) {
        ComponentCounters::add(&self.counters.failures, 1);
        if self.allowed(addr) {
            ComponentCounters::add(&self.counters.allowed, 1);
            return;
        }
        let prefix = self.prefix_of(addr);
        if self.bans.covering(&prefix).is_some() {
            return;
        }
        let det = &self.detectors[d];
        let window = det.find_time;
        let max = det.max_retry as usize;
        let times = self.failures.entry((d, prefix)).or_default();
        times.push_back(t);
        while times.front().is_some_and(|&f| f < t - window) {
            times.pop_front();
        }
        if times.len() >= max {
            let evidence = times.len() as u32;
            let span = t - times.front().copied().unwrap_or(t);
            self.failures.remove(&(d, prefix));
            let det = &self.detectors[d];
            let what = match det.kind {
                Kind::Portscan { .. } => "distinct ports",
                Kind::Lines(_) => "failures",
            };
            let reason = format!(
                "{}: {evidence} {what} from {addr} in {:.0}s",
                det.name, span
            );
            let name = det.name.clone();
            let length = det.ban_time.map(|b| b.as_secs_f64());
            self.ban(addr, prefix, name, evidence, length, reason, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ban(
        &mut self,
        addr: IpAddr,
        prefix: IpNet,
        detector: Arc<str>,
        evidence: u32,
        length: Option<f64>,
        reason: String,
        out: &mut Vec<Event>,
    ) {
        let t = now();
        let offense = self.bans.offend(prefix, t, self.cfg.forget_time);
        let base = length.unwrap_or(self.cfg.ban_time);
        let factor = (self.cfg.factor as f64).powi(offense.saturating_sub(1).min(60) as i32);
        let secs = (base * factor).min(self.cfg.max_ban_time).max(1.0);
        let ban = Ban {
            prefix,
            address: addr,
            since: t,
            until: t + secs,
            offense,
            detector: detector.to_string(),
            evidence,
        };
        let replaced = match self.bans.add(ban) {
            Added::Covered(_) => return,
            Added::New { replaced } => replaced,
        };
        self.pending_remove
            .extend(replaced.iter().map(|b| b.prefix));
        self.pending_add
            .push((prefix, std::time::Duration::from_secs_f64(secs)));
        ComponentCounters::add(&self.counters.bans, 1);
        tracing::info!(
            "guard `{}`: ban {prefix} for {secs:.0}s ({reason})",
            self.name
        );
        out.push(self.decision(
            Verdict::Ban,
            addr,
            prefix,
            detector,
            evidence,
            offense,
            secs as u64,
            reason,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn decision(
        &self,
        verdict: Verdict,
        address: IpAddr,
        prefix: IpNet,
        detector: Arc<str>,
        evidence: u32,
        offense: u32,
        duration_secs: u64,
        reason: String,
    ) -> Event {
        Event::Decision(Box::new(Decision {
            time: Timestamp::now(),
            guard: self.name.clone(),
            verdict,
            address,
            prefix,
            detector,
            evidence,
            offense,
            duration_secs,
            dry_run: self.cfg.dry_run,
            reason,
        }))
    }

    fn unbanned(&self, b: &Ban, why: &str) -> Event {
        let t = now();
        self.decision(
            Verdict::Unban,
            b.address,
            b.prefix,
            Arc::from(b.detector.as_str()),
            b.evidence,
            b.offense,
            (t.min(b.until) - b.since).max(0.0) as u64,
            format!("{}: {} ({why})", b.detector, b.prefix),
        )
    }

    fn line(&mut self, l: &event::LogLine, out: &mut Vec<Event>) {
        let t = l.time.secs as f64 + l.time.micros as f64 / 1e6;
        for d in 0..self.detectors.len() {
            let Kind::Lines(ld) = &self.detectors[d].kind else {
                continue;
            };
            if !ld.reads(l.program.as_deref()) {
                continue;
            }
            let Some(hit) = ld.check(&l.message) else {
                continue;
            };
            // Lines older than the window (a log read from its beginning) are history, not
            // an attack going on now.
            if t < now() - self.detectors[d].find_time {
                continue;
            }
            let counts = match (hit.count, hit.port) {
                (_, None) => 1,
                (c, Some(port)) => {
                    let conn = self.conns.entry((d, hit.addr, port)).or_default();
                    conn.seen = t;
                    match c {
                        Count::Attempt => {
                            conn.attempts += 1;
                            let n = conn.attempts.saturating_sub(conn.counted);
                            conn.counted += n;
                            n
                        }
                        Count::Marker if conn.counted == 0 => {
                            conn.counted = 1;
                            1
                        }
                        Count::Marker => 0,
                    }
                }
            };
            for _ in 0..counts {
                self.failure(d, hit.addr, t, out);
            }
            return;
        }
    }

    fn packet(&mut self, p: &event::PacketEvent, out: &mut Vec<Event>) {
        if p.action == Some(Action::Accept) {
            return;
        }
        let Some(key) = p.key() else { return };
        let Some((_, dport)) = key.ports else { return };
        let t = p.time.secs as f64 + p.time.micros as f64 / 1e6;
        for d in 0..self.detectors.len() {
            let Kind::Portscan { protocols } = &self.detectors[d].kind else {
                continue;
            };
            if !protocols.contains(&key.protocol) {
                continue;
            }
            let window = self.detectors[d].find_time;
            let need = self.detectors[d].max_retry as usize;
            let ports = self.scans.entry((d, key.src)).or_default();
            ports.retain(|(_, seen)| *seen >= t - window);
            match ports.iter_mut().find(|(port, _)| *port == dport) {
                Some(e) => e.1 = t,
                None => ports.push((dport, t)),
            }
            if ports.len() >= need {
                let n = ports.len();
                self.scans.remove(&(d, key.src));
                // Every distinct port is a failure of the window; the last one decides.
                let prefix = self.prefix_of(key.src);
                let times = self.failures.entry((d, prefix)).or_default();
                times.clear();
                for _ in 1..n {
                    times.push_back(t);
                }
                self.failure(d, key.src, t, out);
            }
        }
    }

    /// A manual ban or unban, or the list, from `nflogd guard`.
    fn request(&mut self, req: control::Request, out: &mut Vec<Event>) -> serde_json::Value {
        match req {
            control::Request::List => {
                let t = now();
                let bans: Vec<_> = self
                    .bans
                    .iter()
                    .map(|b| {
                        serde_json::json!({
                            "prefix": b.prefix.to_string(),
                            "address": b.address.to_string(),
                            "detector": b.detector,
                            "offense": b.offense,
                            "evidence": b.evidence,
                            "remaining": (b.until - t).max(0.0).round() as u64,
                        })
                    })
                    .collect();
                serde_json::json!({"guard": &*self.name, "dry_run": self.cfg.dry_run, "bans": bans})
            }
            control::Request::Ban { address, seconds } => {
                let Some(prefix) = parse_prefix(&address) else {
                    return serde_json::json!({"error": format!("`{address}` is not an address or prefix")});
                };
                if self.allowed(prefix.network()) {
                    return serde_json::json!({"error": format!("{prefix} is allowed (allow, or the host's own address); not banned")});
                }
                if let Some(c) = self.bans.covering(&prefix) {
                    return serde_json::json!({"error": format!("{prefix} is banned already (by {})", c.prefix)});
                }
                let before = out.len();
                self.ban(
                    prefix.network(),
                    prefix,
                    "manual".into(),
                    0,
                    seconds.map(|s| s as f64),
                    format!("manual: {prefix}"),
                    out,
                );
                match out.get(before) {
                    Some(Event::Decision(d)) => {
                        serde_json::json!({"banned": prefix.to_string(), "seconds": d.duration_secs})
                    }
                    _ => serde_json::json!({"error": "not banned"}),
                }
            }
            control::Request::Unban { address } => {
                let Some(prefix) = parse_prefix(&address) else {
                    return serde_json::json!({"error": format!("`{address}` is not an address or prefix")});
                };
                self.flush();
                let gone = self.bans.remove(&prefix);
                if gone.is_empty() {
                    return serde_json::json!({"error": format!("no ban covers {prefix}")});
                }
                let remove: Vec<IpNet> = gone.iter().map(|b| b.prefix).collect();
                if let Err(e) = self.enforcer.apply(&[], &remove) {
                    ComponentCounters::add(&self.counters.errors, 1);
                    return serde_json::json!({"error": format!("{e:#}")});
                }
                for b in &gone {
                    ComponentCounters::add(&self.counters.unbans, 1);
                    out.push(self.unbanned(b, "manual"));
                }
                serde_json::json!({"unbanned": remove.iter().map(|p| p.to_string()).collect::<Vec<_>>()})
            }
        }
    }

    /// Makes the kernel changes decided since the last call, in one step.
    fn flush(&mut self) {
        if self.pending_add.is_empty() && self.pending_remove.is_empty() {
            return;
        }
        let (add, remove) = (
            std::mem::take(&mut self.pending_add),
            std::mem::take(&mut self.pending_remove),
        );
        if let Err(e) = self.enforcer.apply(&add, &remove) {
            ComponentCounters::add(&self.counters.errors, 1);
            tracing::warn!(
                "guard `{}`: {} bans did not reach the kernel: {e:#}",
                self.name,
                add.len()
            );
        }
    }

    fn save(&mut self) {
        if let Err(e) = self.bans.save(&self.cfg.state) {
            ComponentCounters::add(&self.counters.errors, 1);
            crate::rate_limited_warn!("guard `{}`: saving its state failed: {e:#}", self.name);
        }
    }
}

/// An address (`192.0.2.7`) or a prefix (`192.0.2.0/24`, host bits cleared).
fn parse_prefix(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Each ban with its time left.
fn remaining(bans: &Bans, t: f64) -> Vec<(IpNet, std::time::Duration)> {
    bans.iter()
        .map(|b| {
            (
                b.prefix,
                std::time::Duration::from_secs_f64((b.until - t).max(0.001)),
            )
        })
        .collect()
}

impl Transform for Guard {
    fn apply(&mut self, batch: &mut Vec<Event>) {
        let mut out = Vec::new();
        for e in batch.iter() {
            match e {
                Event::Line(l) => self.line(l, &mut out),
                Event::Packet(p) => self.packet(p, &mut out),
                _ => {}
            }
        }
        self.flush();
        // A guard hands on its decisions, not what it read.
        *batch = out;
    }

    fn another(&self) -> Box<dyn Transform> {
        unreachable!("a guard is stateful: one instance, in its own thread")
    }

    fn tick(&mut self, out: &mut Vec<Event>) {
        let t = now();
        while let Ok((req, reply)) = self.inbox.try_recv() {
            let answer = self.request(req, out);
            self.flush();
            let _ = reply.send(answer);
        }
        if self.enforcer.lost() {
            ComponentCounters::add(&self.counters.restored, 1);
            let all = remaining(&self.bans, t);
            match self.enforcer.install(&all) {
                Ok(()) => tracing::warn!(
                    "guard `{}`: its nftables table was removed (a ruleset flush?); put back with {} bans",
                    self.name,
                    all.len()
                ),
                Err(e) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    tracing::warn!("guard `{}`: putting its table back failed: {e:#}", self.name);
                }
            }
        }
        let expired = self.bans.expire(t);
        if !expired.is_empty() {
            let remove: Vec<IpNet> = expired.iter().map(|b| b.prefix).collect();
            // The kernel's timeouts removed them already; this is for backends without.
            if let Err(e) = self.enforcer.apply(&[], &remove) {
                ComponentCounters::add(&self.counters.errors, 1);
                tracing::warn!("guard `{}`: unbanning failed: {e:#}", self.name);
            }
            for b in &expired {
                ComponentCounters::add(&self.counters.unbans, 1);
                out.push(self.unbanned(b, "expired"));
            }
        }
        self.counters
            .banned
            .store(self.bans.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if self.bans.dirty && t - self.last_save >= 1.0 {
            self.last_save = t;
            self.save();
        }
        // Forget what no window needs any more: once a minute, or at once when a flood of
        // distinct sources has grown a table past a million entries (memory stays bounded).
        let crowded = [self.failures.len(), self.scans.len(), self.conns.len()]
            .iter()
            .any(|&n| n > 1_000_000);
        if t - self.last_sweep >= 60.0 || crowded {
            self.last_sweep = t;
            let longest = self
                .detectors
                .iter()
                .map(|d| d.find_time)
                .fold(0.0, f64::max);
            self.failures
                .retain(|_, v| v.back().is_some_and(|&l| l >= t - longest));
            self.scans
                .retain(|_, v| v.iter().any(|(_, s)| *s >= t - longest));
            self.conns.retain(|_, c| c.seen >= t - longest.max(600.0));
            // Still crowded within the windows: partial counts are forgotten rather than
            // memory grown without end (bans already made stand).
            if [self.failures.len(), self.scans.len(), self.conns.len()]
                .iter()
                .any(|&n| n > 1_000_000)
            {
                self.failures.clear();
                self.scans.clear();
                self.conns.clear();
                crate::rate_limited_warn!(
                    "guard `{}`: over a million sources with failures in their windows; their counts start again",
                    self.name
                );
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The table stays in the kernel: bans keep holding while nflogd restarts, and their
        // timeouts end them if it does not come back.
        if self.bans.dirty {
            self.save();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(extra: &str) -> (Guard, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "nflogd-guard-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = format!(
            r#"inputs = ["x"]
dry_run = true
allow = ["192.0.2.0/24"]
allow_own = false
state_file = "{d}/state.json"
control_socket = "{d}/g.sock"
{extra}
[detectors.sshd]
max_retry = 3
[detectors.portscan]
ports = 5
find_time = "10s"
"#,
            d = dir.display()
        );
        let cfg: GuardConfig = toml::from_str(&toml).unwrap();
        cfg.validate().unwrap();
        let ctx = TransformContext {
            name: "g".into(),
            counters: Arc::new(ComponentCounters::default()),
        };
        (Guard::new(&cfg, &ctx).unwrap(), dir)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn line(msg: &str) -> Event {
        Event::Line(Box::new(event::LogLine {
            time: Timestamp::now(),
            host: None,
            program: Some("sshd".into()),
            pid: Some(1),
            message: msg.into(),
            origin: "t".into(),
        }))
    }

    fn decisions(g: &mut Guard, events: Vec<Event>) -> Vec<(String, String, u32)> {
        let mut b = events;
        g.apply(&mut b);
        b.iter()
            .map(|e| match e {
                Event::Decision(d) => (
                    d.verdict.as_str().to_string(),
                    d.prefix.to_string(),
                    d.evidence,
                ),
                other => panic!("a guard gave {other:?}"),
            })
            .collect()
    }

    /// An invalid user writes three lines per try: each try counts once, and the third try
    /// bans. A mistyped password, also several lines, counts one.
    #[test]
    fn one_try_counts_once_and_the_threshold_bans() {
        let (mut g, dir) = guard("");
        let try_ = |port: u16| {
            vec![
                line(&format!("Invalid user admin from 203.0.113.5 port {port}")),
                line(&format!(
                    "Failed password for invalid user admin from 203.0.113.5 port {port} ssh2"
                )),
                line(&format!(
                    "Connection closed by invalid user admin 203.0.113.5 port {port} [preauth]"
                )),
            ]
        };
        assert!(decisions(&mut g, try_(1000)).is_empty());
        assert!(decisions(&mut g, try_(1001)).is_empty());
        let typo = vec![
            line("Failed password for bob from 198.51.100.9 port 2000 ssh2"),
            line("Connection closed by authenticating user bob 198.51.100.9 port 2000 [preauth]"),
        ];
        assert!(decisions(&mut g, typo).is_empty());
        assert_eq!(
            decisions(&mut g, try_(1002)),
            [("ban".to_string(), "203.0.113.5/32".to_string(), 3)]
        );
        // Three passwords tried in one connection are three tries.
        let three: Vec<Event> = (0..3)
            .map(|_| line("Failed password for root from 198.51.100.20 port 3000 ssh2"))
            .collect();
        assert_eq!(decisions(&mut g, three).len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// IPv6 tries from one /64 add up and ban the /64; allowed addresses are never banned.
    #[test]
    fn ipv6_prefixes_add_up_and_allowed_addresses_never_ban() {
        let (mut g, dir) = guard("");
        let v6: Vec<Event> = (1..=3)
            .map(|i| line(&format!("Invalid user x from 2001:db8:5:6::{i} port {i}")))
            .collect();
        assert_eq!(
            decisions(&mut g, v6),
            [("ban".to_string(), "2001:db8:5:6::/64".to_string(), 3)]
        );
        let allowed: Vec<Event> = (1..=10)
            .map(|i| line(&format!("Invalid user x from 192.0.2.8 port {i}")))
            .collect();
        assert!(decisions(&mut g, allowed).is_empty());
        assert_eq!(
            g.counters
                .allowed
                .load(std::sync::atomic::Ordering::Relaxed),
            10
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Repeat offenders get `ban_time_factor` times longer, up to `max_ban_time`; a manual
    /// unban and the list go through the control requests.
    #[test]
    fn repeat_offenders_and_manual_requests() {
        let (mut g, dir) = guard("ban_time = \"60s\"\nmax_ban_time = \"200s\"");
        let mut out = Vec::new();
        let mut lengths = Vec::new();
        for _ in 0..3 {
            let r = g.request(
                control::Request::Ban {
                    address: "198.51.100.7".into(),
                    seconds: None,
                },
                &mut out,
            );
            lengths.push(r["seconds"].as_u64().unwrap());
            g.request(
                control::Request::Unban {
                    address: "198.51.100.7".into(),
                },
                &mut out,
            );
        }
        assert_eq!(lengths, [60, 120, 200]);
        let r = g.request(
            control::Request::Ban {
                address: "192.0.2.1".into(),
                seconds: None,
            },
            &mut out,
        );
        assert!(r["error"].as_str().unwrap().contains("allowed"));
        g.request(
            control::Request::Ban {
                address: "198.51.100.0/24".into(),
                seconds: Some(30),
            },
            &mut out,
        );
        let list = g.request(control::Request::List, &mut out);
        assert_eq!(list["bans"][0]["prefix"], "198.51.100.0/24");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn syn(src: &str, dport: u16) -> Event {
        let line = format!("DROP IN=eth0 OUT= MAC= SRC={src} DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=40000 DPT={dport} WINDOW=0 RES=0x00 SYN URGP=0 ");
        let mut p = logline::parse(&line).unwrap().event;
        p.time = Timestamp::now();
        p.action = Some(Action::Drop);
        Event::Packet(p)
    }

    /// Five distinct ports ban; one port hit again and again does not.
    #[test]
    fn port_scans_count_distinct_ports() {
        let (mut g, dir) = guard("");
        let same: Vec<Event> = (0..50).map(|_| syn("198.51.100.50", 22)).collect();
        assert!(decisions(&mut g, same).is_empty());
        let scan: Vec<Event> = (1..=5).map(|p| syn("198.51.100.51", p)).collect();
        assert_eq!(
            decisions(&mut g, scan),
            [("ban".to_string(), "198.51.100.51/32".to_string(), 5)]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
