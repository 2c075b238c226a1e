//! Packet traces: nf_tables' trace events gathered per traced packet into its path through the
//! ruleset — each step's table, chain, rule (handle and text) and verdict — with the packet it
//! is about. `nflogd trace` (cmd.rs) sets the trace flag on the packets a filter matches and
//! prints their paths.

pub mod cmd;
pub mod rules;

use nfnetlink::trace::{TraceEvent, TraceType, Verdict};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    /// The rule's text, when the ruleset listing has it.
    pub rule: Option<String>,
    /// `accept`, `drop`, `continue`, `jump c`, `goto c`, `return`, or `policy accept|drop`.
    pub verdict: String,
}

/// A traced packet and its path so far.
#[derive(Debug, Clone)]
pub struct Traced {
    pub id: u32,
    /// The first event's view of the packet (interfaces, mark, headers, conntrack).
    pub packet: TraceEvent,
    pub steps: Vec<Step>,
    pub last: Instant,
    pub time: event::Timestamp,
}

impl Traced {
    /// Whether the packet's fate is sealed: dropped by a rule or a policy.
    fn ended(&self) -> bool {
        self.steps
            .last()
            .is_some_and(|s| s.verdict == "drop" || s.verdict == "policy drop")
    }

    /// The last verdict that decided something (accept/drop, by rule or policy).
    pub fn outcome(&self) -> Option<&str> {
        self.steps.iter().rev().find_map(|s| {
            let v = s.verdict.trim_start_matches("policy ");
            matches!(v, "accept" | "drop" | "queue" | "stolen").then_some(v)
        })
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
        let step = (!skip).then(|| Step {
            family: ev.family,
            table: ev.table.clone(),
            chain: ev.chain.clone(),
            handle: ev.handle,
            rule: ev
                .handle
                .and_then(|h| rules.get(ev.family, &ev.table, &ev.chain, h)),
            verdict,
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
pub fn headers(t: &TraceEvent) -> packet::Headers {
    let mut bytes = t.network_header.clone().unwrap_or_default();
    bytes.extend_from_slice(t.transport_header.as_deref().unwrap_or_default());
    let ethertype = match (t.nfproto, bytes.first().map(|b| b >> 4)) {
        (Some(10), _) | (_, Some(6)) => packet::ethertype::IPV6,
        _ => packet::ethertype::IPV4,
    };
    packet::decode_ethertype(ethertype, &bytes)
}

/// `tcp 10.0.0.1:40000 → 10.0.0.2:22`, or what can be said.
pub fn summary(t: &Traced, ifname: &mut dyn FnMut(u32) -> String) -> String {
    let h = headers(&t.packet);
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
    if let Some(i) = t.packet.iif {
        s += &format!(" in {}", ifname(i));
    }
    if let Some(o) = t.packet.oif {
        s += &format!(" out {}", ifname(o));
    }
    if let Some(m) = t.packet.mark.filter(|&m| m != 0) {
        s += &format!(" mark 0x{m:x}");
    }
    s
}

/// The path as a readable tree: the packet, then a line per step.
pub fn tree(t: &Traced, ifname: &mut dyn FnMut(u32) -> String) -> String {
    let mut out = format!(
        "trace {:08x} {}{}\n",
        t.id,
        summary(t, ifname),
        t.outcome().map(|o| format!(" → {o}")).unwrap_or_default()
    );
    for s in &t.steps {
        let place = format!("{} {} {}", rules::family_name(s.family), s.table, s.chain);
        match (&s.rule, s.handle) {
            (Some(r), Some(h)) => out += &format!("  {place} [{h}] {r} → {}\n", s.verdict),
            (None, Some(h)) => out += &format!("  {place} [{h}] → {}\n", s.verdict),
            _ => out += &format!("  {place} → {}\n", s.verdict),
        }
    }
    out
}

/// One ECS document: the packet's fields and `netfilter.trace.path`.
pub fn ecs(t: &Traced, ifname: &mut dyn FnMut(u32) -> String) -> Value {
    let h = headers(&t.packet);
    let mut stamp = Vec::new();
    t.time.write_rfc3339_utc(&mut stamp);
    let mut doc = json!({
        "@timestamp": String::from_utf8_lossy(&stamp),
        "event": {"kind": "event", "category": ["network"], "module": "netfilter", "dataset": "netfilter.trace"},
        "netfilter": {"trace": {
            "id": format!("{:08x}", t.id),
            "path": t.steps.iter().map(|s| json!({
                "family": rules::family_name(s.family),
                "table": s.table,
                "chain": s.chain,
                "handle": s.handle,
                "rule": s.rule,
                "verdict": s.verdict,
            })).collect::<Vec<_>>(),
        }},
    });
    if let Some(o) = t.outcome() {
        doc["event"]["action"] = json!(o);
    }
    let (src, dst) = match &h.network {
        packet::Network::Ipv4(ip) => (Some(ip.src.to_string()), Some(ip.dst.to_string())),
        packet::Network::Ipv6(ip) => (Some(ip.src.to_string()), Some(ip.dst.to_string())),
        _ => (None, None),
    };
    if let (Some(s), Some(d)) = (src, dst) {
        doc["source"] = json!({"ip": s});
        doc["destination"] = json!({"ip": d});
        if let Some((sp, dp)) = h.ports() {
            doc["source"]["port"] = json!(sp);
            doc["destination"]["port"] = json!(dp);
        }
    }
    if let packet::Network::Ipv4(ip) = &h.network {
        // As the ECS schema has it (Elastic's iptables fields): tells apart packets that the
        // kernel gave the same trace id.
        doc["iptables"] = json!({"id": ip.id, "ttl": ip.ttl});
    }
    if let Some(p) = h.protocol() {
        doc["network"] = json!({"iana_number": p.to_string()});
        if let Some(n) = packet::proto::name(p) {
            doc["network"]["transport"] = json!(n);
        }
    }
    if let Some(i) = t.packet.iif {
        doc["observer"]["ingress"]["interface"]["name"] = json!(ifname(i));
    }
    if let Some(o) = t.packet.oif {
        doc["observer"]["egress"]["interface"]["name"] = json!(ifname(o));
    }
    if let Some(m) = t.packet.mark {
        doc["netfilter"]["mark"] = json!(m);
    }
    if let Some(id) = t.packet.ct_id {
        doc["netfilter"]["ct"] = json!({"id": id, "state": t.packet.ct_state, "status": t.packet.ct_status, "direction": t.packet.ct_direction});
    }
    doc
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
        let verdicts: Vec<&str> = done.steps.iter().map(|s| s.verdict.as_str()).collect();
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
