//! Packet traces: nf_tables' trace events gathered per traced packet into its path through the
//! ruleset — each step's table, chain, rule (handle and text) and verdict — with the packet it
//! is about. `nflogd trace` (cmd.rs) sets the trace flag on the packets a filter matches and
//! prints their paths; the `nftrace` source hands them to sinks. `legacy` gathers iptables'
//! TRACE lines and `xtables-monitor --trace` output into the same paths.

pub mod cmd;
pub mod legacy;
pub mod listen;
pub mod rules;
pub mod table;

use event::{Action, Interface, LinkHeader, PacketEvent, TraceStep};
use nfnetlink::trace::{TraceEvent, TraceType, Verdict};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A traced packet and its path so far.
#[derive(Debug, Clone)]
pub struct Traced {
    pub id: u32,
    /// The first event's view of the packet (interfaces, mark, headers, conntrack).
    pub packet: TraceEvent,
    pub steps: Vec<TraceStep>,
    pub last: Instant,
    pub time: event::Timestamp,
}

impl Traced {
    /// Whether the packet's fate is sealed: dropped by a rule or a policy.
    fn ended(&self) -> bool {
        self.steps.last().and_then(TraceStep::outcome) == Some("drop")
    }

    /// The last verdict that decided something (accept/drop, by rule or policy).
    pub fn outcome(&self) -> Option<&str> {
        self.steps.iter().rev().find_map(TraceStep::outcome)
    }
}

/// Gathers events into packets; a packet is done when dropped, or when no event came for it
/// for `idle` (it may pass several hooks: prerouting, input…).
pub struct Gatherer {
    open: HashMap<u32, Traced>,
    idle: Duration,
    /// Steps in these tables are left out (the tracer's own).
    pub skip_table: Option<(u8, String)>,
}

impl Gatherer {
    pub fn new(idle: Duration) -> Self {
        Gatherer {
            open: HashMap::new(),
            idle,
            skip_table: None,
        }
    }

    /// Adds an event; returns the packets it ended: its own when dropped, and an earlier one
    /// the kernel gave the same trace id (ids are reused) when the headers say it is another.
    pub fn add(&mut self, ev: TraceEvent, rules: &mut rules::RuleTexts) -> Vec<Traced> {
        let now = Instant::now();
        let mut done = Vec::new();
        if let Some(open) = self.open.get(&ev.id) {
            if another_packet(&open.packet, &ev) {
                done.extend(self.open.remove(&ev.id));
            }
        }
        // The tracer's own steps, and the end of a chain (no rule: the kernel reports falling
        // off it as a step without a handle), are not shown — as `nft monitor trace` does not.
        let skip = self
            .skip_table
            .as_ref()
            .is_some_and(|(f, t)| *f == ev.family && *t == ev.table)
            || (ev.handle.is_none() && ev.kind != Some(TraceType::Policy));
        let verdict = match (ev.kind, &ev.verdict, ev.policy) {
            (Some(TraceType::Policy), _, Some(p)) => format!(
                "policy {}",
                match p {
                    0 => "drop",
                    1 => "accept",
                    _ => "other",
                }
            ),
            (Some(TraceType::Return), _, _) => "return".into(),
            (_, Some(v), _) => v.text(),
            _ => "continue".into(),
        };
        let step = (!skip).then(|| TraceStep {
            family: ev.family,
            table: Arc::from(ev.table.as_str()),
            chain: Arc::from(ev.chain.as_str()),
            handle: ev.handle,
            rule: ev
                .handle
                .and_then(|h| rules.get(ev.family, &ev.table, &ev.chain, h))
                .map(Arc::from),
            verdict: Arc::from(verdict),
        });
        let final_verdict = ev.verdict.as_ref().is_some_and(Verdict::is_final)
            || (ev.kind == Some(TraceType::Policy) && ev.policy == Some(0));
        let id = ev.id;
        let t = self.open.entry(id).or_insert_with(|| Traced {
            id,
            packet: ev.clone(),
            steps: Vec::new(),
            last: now,
            time: event::Timestamp::now(),
        });
        if t.packet.network_header.is_none() && ev.network_header.is_some() {
            t.packet = ev;
        }
        t.last = now;
        if let Some(s) = step {
            t.steps.push(s);
        }
        if final_verdict {
            done.extend(self.open.remove(&id));
        }
        done
    }

    /// Packets no event came for during `idle`, oldest first.
    pub fn expired(&mut self) -> Vec<Traced> {
        let idle = self.idle;
        let mut done: Vec<Traced> = Vec::new();
        self.open.retain(|_, t| {
            if t.last.elapsed() >= idle {
                done.push(t.clone());
                false
            } else {
                true
            }
        });
        done.retain(|t| !t.steps.is_empty() || !t.ended());
        done.sort_by_key(|t| t.last);
        done
    }

    /// Everything still open (at exit).
    pub fn drain(&mut self) -> Vec<Traced> {
        let mut v: Vec<Traced> = self.open.drain().map(|(_, t)| t).collect();
        v.sort_by_key(|t| t.last);
        v
    }
}

/// Whether two events with one trace id are about different packets: their network headers
/// differ outside the fields a hop changes (TTL/hop limit, checksum; NAT changes addresses,
/// so the IPv4 id, the IPv6 flow label and the length decide).
fn another_packet(a: &TraceEvent, b: &TraceEvent) -> bool {
    let (Some(x), Some(y)) = (&a.network_header, &b.network_header) else {
        return false;
    };
    let key = |h: &[u8]| -> Option<Vec<u8>> {
        match h.first()? >> 4 {
            4 => Some([h.get(2..4)?, h.get(4..6)?].concat()),
            6 => Some([h.get(1..4)?, h.get(4..6)?].concat()),
            _ => None,
        }
    };
    key(x) != key(y)
}

/// The packet's headers, decoded from what the trace carried.
fn headers(t: &TraceEvent) -> packet::Headers {
    let mut bytes = t.network_header.clone().unwrap_or_default();
    bytes.extend_from_slice(t.transport_header.as_deref().unwrap_or_default());
    let ethertype = match (t.nfproto, bytes.first().map(|b| b >> 4)) {
        (Some(10), _) | (_, Some(6)) => packet::ethertype::IPV6,
        _ => packet::ethertype::IPV4,
    };
    packet::decode_ethertype(ethertype, &bytes)
}

/// nft's `ct state` bit → conntrack's ctinfo (`ct.info`), with the direction.
fn ctinfo(state: Option<u32>, direction: Option<u8>) -> Option<u32> {
    let base = match state? {
        2 => 0, // established
        4 => 1, // related
        8 => 2, // new
        _ => return None,
    };
    // A reply's ctinfo is IP_CT_IS_REPLY (3) on from its base; new has no reply form.
    Some(if direction == Some(1) && base < 2 {
        base + 3
    } else {
        base
    })
}

/// The traced packet as a packet record: headers, interfaces, mark, conntrack state, the
/// verdict that decided, and its path.
pub fn to_event(t: &Traced, ifname: &mut dyn FnMut(u32) -> Interface) -> PacketEvent {
    let ev = &t.packet;
    let mut p = PacketEvent::default();
    p.time = t.time;
    p.family = ev
        .nfproto
        .and_then(|f| u8::try_from(f).ok())
        .unwrap_or(ev.family);
    p.headers = headers(ev);
    p.hw_protocol = match &p.headers.network {
        packet::Network::Ipv6(_) => packet::ethertype::IPV6,
        _ => packet::ethertype::IPV4,
    };
    p.payload_len = (ev.network_header.as_ref().map_or(0, Vec::len)
        + ev.transport_header.as_ref().map_or(0, Vec::len)) as u32;
    p.indev = ev.iif.map(&mut *ifname);
    p.outdev = ev.oif.map(&mut *ifname);
    p.link = ev.ll_header.as_ref().map(|h| LinkHeader {
        hwtype: ev.iiftype,
        header: h.iter().copied().take(32).collect(),
        ..LinkHeader::default()
    });
    p.mark = ev.mark.unwrap_or(0);
    if ev.ct_id.is_some() || ev.ct_status.is_some() {
        p.ct = Some(Box::new(event::Conntrack {
            id: ev.ct_id,
            status: ev.ct_status,
            ..event::Conntrack::default()
        }));
        p.ct_info = ctinfo(ev.ct_state, ev.ct_direction);
    }
    p.action = match t.outcome() {
        Some("accept") => Some(Action::Accept),
        Some("drop") => Some(Action::Drop),
        Some("reject") => Some(Action::Reject),
        _ => None,
    };
    p.trace = Some(Box::new(event::Trace {
        id: Some(t.id),
        path: t.steps.clone(),
    }));
    p
}

/// `tcp 10.0.0.1:40000 → 10.0.0.2:22 in eth0`, or what can be said.
pub fn summary(p: &PacketEvent) -> String {
    let h = &p.headers;
    let proto = h
        .protocol()
        .map(|p| packet::proto::name(p).map_or(p.to_string(), str::to_string))
        .unwrap_or_else(|| "?".into());
    let (src, dst) = match &h.network {
        packet::Network::Ipv4(ip) => (ip.src.to_string(), ip.dst.to_string()),
        packet::Network::Ipv6(ip) => (format!("[{}]", ip.src), format!("[{}]", ip.dst)),
        _ => ("?".into(), "?".into()),
    };
    let mut s = match h.ports() {
        Some((sp, dp)) => format!("{proto} {src}:{sp} → {dst}:{dp}"),
        None => format!("{proto} {src} → {dst}"),
    };
    let name = |i: &Interface| {
        if i.name.is_empty() {
            i.index.map_or("?".into(), |x| x.to_string())
        } else {
            i.name.to_string()
        }
    };
    if let Some(i) = &p.indev {
        s += &format!(" in {}", name(i));
    }
    if let Some(o) = &p.outdev {
        s += &format!(" out {}", name(o));
    }
    if p.mark != 0 {
        s += &format!(" mark 0x{:x}", p.mark);
    }
    s
}

/// The path as a readable tree: the packet, then a line per step.
pub fn tree(p: &PacketEvent) -> String {
    let Some(t) = &p.trace else {
        return String::new();
    };
    let outcome = t.deciding().and_then(TraceStep::outcome);
    let mut out = format!(
        "trace {} {}{}\n",
        t.id.map_or("-".into(), |i| format!("{i:08x}")),
        summary(p),
        outcome.map(|o| format!(" → {o}")).unwrap_or_default()
    );
    for s in &t.path {
        let place = format!("{} {} {}", rules::family_name(s.family), s.table, s.chain);
        match (&s.rule, s.handle) {
            (Some(r), Some(h)) => out += &format!("  {place} [{h}] {r} → {}\n", s.verdict),
            (None, Some(h)) => out += &format!("  {place} [{h}] → {}\n", s.verdict),
            _ => out += &format!("  {place} → {}\n", s.verdict),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        id: u32,
        chain: &str,
        handle: Option<u64>,
        kind: TraceType,
        v: Option<Verdict>,
    ) -> TraceEvent {
        TraceEvent {
            family: 1,
            id,
            table: "filter".into(),
            chain: chain.into(),
            handle,
            kind: Some(kind),
            verdict: v,
            ..TraceEvent::default()
        }
    }

    #[test]
    fn a_path_ends_at_a_drop_and_keeps_its_order() {
        let mut g = Gatherer::new(Duration::from_millis(100));
        let mut rules = rules::RuleTexts::default();
        g.skip_table = Some((1, "nflogd_trace".into()));
        let mut own = ev(1, "pre", Some(2), TraceType::Rule, Some(Verdict::Continue));
        own.table = "nflogd_trace".into();
        assert!(g.add(own, &mut rules).is_empty());
        assert!(g
            .add(
                ev(
                    1,
                    "input",
                    Some(4),
                    TraceType::Rule,
                    Some(Verdict::Jump("ssh".into()))
                ),
                &mut rules
            )
            .is_empty());
        // Falling off the end of `ssh` (no handle) is not a step.
        assert!(g
            .add(ev(1, "ssh", None, TraceType::Return, None), &mut rules)
            .is_empty());
        let mut policy = ev(1, "input", None, TraceType::Policy, None);
        policy.policy = Some(0);
        let done = g
            .add(policy, &mut rules)
            .pop()
            .expect("a policy drop ends the path");
        let verdicts: Vec<&str> = done.steps.iter().map(|s| &*s.verdict).collect();
        assert_eq!(verdicts, ["jump ssh", "policy drop"]);
        assert_eq!(done.outcome(), Some("drop"));
        assert!(g.drain().is_empty());
    }

    #[test]
    fn a_reused_trace_id_starts_another_packet() {
        let mut g = Gatherer::new(Duration::from_secs(10));
        let mut rules = rules::RuleTexts::default();
        let ip = |id: u8| {
            let mut h = vec![0x45, 0, 0, 28, 0, id, 0, 0, 64, 17, 0, 0];
            h.extend([10, 0, 0, 1, 10, 0, 0, 2]);
            h
        };
        let mut a = ev(5, "input", Some(4), TraceType::Rule, Some(Verdict::Accept));
        a.network_header = Some(ip(1));
        let mut b = a.clone();
        b.network_header = Some(ip(2));
        assert!(g.add(a.clone(), &mut rules).is_empty());
        assert!(
            g.add(a, &mut rules).is_empty(),
            "the same packet at another hook"
        );
        let done = g.add(b, &mut rules);
        assert_eq!(
            done.len(),
            1,
            "the first packet ends when another takes its id"
        );
        assert_eq!(done[0].steps.len(), 2);
    }

    #[test]
    fn an_accepted_packet_is_done_when_quiet() {
        let mut g = Gatherer::new(Duration::from_millis(20));
        let mut rules = rules::RuleTexts::default();
        g.add(
            ev(2, "input", Some(4), TraceType::Rule, Some(Verdict::Accept)),
            &mut rules,
        );
        assert!(g.expired().is_empty());
        std::thread::sleep(Duration::from_millis(30));
        let done = g.expired();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].outcome(), Some("accept"));
    }
}
