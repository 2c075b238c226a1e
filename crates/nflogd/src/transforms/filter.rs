//! `filter`: keeps the events that match every condition given (or, with `drop = true`, removes
//! them), so that a sink can take a subset. A condition is a list; an event matches it when it
//! matches any entry. An event without the field a condition asks about (a flow has no log
//! prefix, an ARP packet no ports, a raw line nothing) does not match that condition.

use super::{Transform, TransformContext, TransformType};
use crate::metrics::ComponentCounters;
use crate::units::Protocol;
use anyhow::{bail, Result};
use event::{Action, Event, FlowKey};
use ipnet::IpNet;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub inputs: Vec<String>,
    /// The log prefix starts with one of these.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// The rule's verdict: "accept", "drop", "reject", or "none" (no verdict known).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Source address in one of these networks.
    #[serde(default)]
    pub src: Vec<IpNet>,
    /// Destination address in one of these networks.
    #[serde(default)]
    pub dst: Vec<IpNet>,
    /// Source or destination address in one of these networks.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Destination port.
    #[serde(default)]
    pub dst_ports: Vec<u16>,
    /// Source or destination port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// IP protocol by name or number ("tcp", "udp", "icmp", "ipv6-icmp", "sctp", 47).
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// Remove what matches instead of keeping it.
    #[serde(default)]
    pub drop: bool,
}

/// The conditions, compiled.
#[derive(Debug, Clone)]
struct Conditions {
    prefixes: Vec<String>,
    actions: Vec<Option<Action>>,
    src: Vec<IpNet>,
    dst: Vec<IpNet>,
    addresses: Vec<IpNet>,
    dst_ports: Vec<u16>,
    ports: Vec<u16>,
    protocols: Vec<u8>,
}

fn action(name: &str) -> Result<Option<Action>> {
    Ok(match name {
        "accept" => Some(Action::Accept),
        "drop" => Some(Action::Drop),
        "reject" => Some(Action::Reject),
        "none" => None,
        _ => bail!("actions: unknown action `{name}` (accept, drop, reject, none)"),
    })
}

impl FilterConfig {
    fn conditions(&self) -> Result<Conditions> {
        Ok(Conditions {
            prefixes: self.prefixes.clone(),
            actions: self
                .actions
                .iter()
                .map(|a| action(a))
                .collect::<Result<_>>()?,
            src: self.src.clone(),
            dst: self.dst.clone(),
            addresses: self.addresses.clone(),
            dst_ports: self.dst_ports.clone(),
            ports: self.ports.clone(),
            protocols: self
                .protocols
                .iter()
                .map(Protocol::number)
                .collect::<Result<_>>()?,
        })
    }
}

impl Conditions {
    fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
            && self.actions.is_empty()
            && self.src.is_empty()
            && self.dst.is_empty()
            && self.addresses.is_empty()
            && self.dst_ports.is_empty()
            && self.ports.is_empty()
            && self.protocols.is_empty()
    }

    fn matches(&self, e: &Event) -> bool {
        let (prefix, action, key): (Option<&str>, Option<Option<Action>>, Option<FlowKey>) = match e
        {
            Event::Packet(p) => (Some(&p.prefix), Some(p.action), p.key()),
            Event::Flow(f) => (None, None, f.key()),
            Event::Raw(_) | Event::Counter(_) | Event::Line(_) | Event::Decision(_) => {
                (None, None, None)
            }
        };
        let any_net = |nets: &[IpNet], ip: Option<std::net::IpAddr>| {
            ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
        };
        let ports = key.and_then(|k| k.ports);
        (self.prefixes.is_empty()
            || prefix.is_some_and(|p| self.prefixes.iter().any(|x| p.starts_with(x.as_str()))))
            && (self.actions.is_empty() || action.is_some_and(|a| self.actions.contains(&a)))
            && (self.src.is_empty() || any_net(&self.src, key.map(|k| k.src)))
            && (self.dst.is_empty() || any_net(&self.dst, key.map(|k| k.dst)))
            && (self.addresses.is_empty()
                || any_net(&self.addresses, key.map(|k| k.src))
                || any_net(&self.addresses, key.map(|k| k.dst)))
            && (self.dst_ports.is_empty()
                || ports.is_some_and(|(_, d)| self.dst_ports.contains(&d)))
            && (self.ports.is_empty()
                || ports.is_some_and(|(s, d)| self.ports.contains(&s) || self.ports.contains(&d)))
            && (self.protocols.is_empty()
                || key.is_some_and(|k| self.protocols.contains(&k.protocol)))
    }
}

impl TransformType for FilterConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn validate(&self) -> Result<()> {
        if self.conditions()?.is_empty() {
            bail!("a filter needs at least one condition (prefixes, actions, src, dst, addresses, dst_ports, ports, protocols)");
        }
        Ok(())
    }

    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Filter {
            when: self.conditions()?,
            keep: !self.drop,
            counters: ctx.counters.clone(),
        }))
    }
}

#[derive(Clone)]
struct Filter {
    when: Conditions,
    /// Keep what matches (true) or remove it.
    keep: bool,
    counters: Arc<ComponentCounters>,
}

impl Transform for Filter {
    fn apply(&mut self, batch: &mut Vec<Event>) {
        let before = batch.len() as u64;
        batch.retain(|e| self.when.matches(e) == self.keep);
        let after = batch.len() as u64;
        ComponentCounters::add(&self.counters.received, before);
        ComponentCounters::add(&self.counters.sent, after);
        ComponentCounters::add(&self.counters.ignored, before - after);
    }

    fn another(&self) -> Box<dyn Transform> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event::{FlowEvent, FlowKind};

    fn packet(prefix: &str, action: Option<Action>, line: &str) -> Event {
        let mut p = logline::parse(&format!("{prefix}{line}")).unwrap().event;
        p.action = action;
        Event::Packet(p)
    }

    const TCP: &str = "IN=eth0 OUT= MAC= SRC=192.0.2.1 DST=10.0.0.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ";
    const ICMP: &str = "IN=eth0 OUT= MAC= SRC=10.0.0.7 DST=192.0.2.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1 ";

    fn flow() -> Event {
        let ct = event::Conntrack {
            orig: nfnetlink::ctnetlink::Tuple {
                src: Some("10.0.0.7".parse().unwrap()),
                dst: Some("198.51.100.9".parse().unwrap()),
                protocol: 17,
                sport: Some(5353),
                dport: Some(53),
                ..Default::default()
            },
            ..Default::default()
        };
        Event::Flow(FlowEvent {
            time: Default::default(),
            kind: FlowKind::New,
            family: 2,
            ct,
            recovered: false,
            enrich: None,
        })
    }

    fn filter(toml_text: &str) -> Box<dyn Transform> {
        let cfg: FilterConfig = toml::from_str(&format!("inputs = [\"x\"]\n{toml_text}")).unwrap();
        cfg.validate().unwrap();
        cfg.build(&TransformContext {
            name: "t".into(),
            counters: Default::default(),
        })
        .unwrap()
    }

    /// Which of: a TCP drop, an ICMP packet without verdict, a UDP flow, a raw line, are kept.
    fn kept(toml_text: &str) -> Vec<usize> {
        let raw = Event::Raw(Box::new(event::RawLine {
            time: Default::default(),
            host: None,
            origin: "t".into(),
            position: None,
            line: "x".into(),
            reason: String::new(),
        }));
        let mut batch = vec![
            packet("DROP ", Some(Action::Drop), TCP),
            packet("LOG ", None, ICMP),
            flow(),
            raw,
        ];
        let tags: Vec<String> = batch.iter().map(|e| format!("{e:?}")).collect();
        filter(toml_text).apply(&mut batch);
        batch
            .iter()
            .map(|e| tags.iter().position(|t| *t == format!("{e:?}")).unwrap())
            .collect()
    }

    #[test]
    fn each_condition_and_what_lacks_its_field() {
        assert_eq!(kept("prefixes = [\"DROP\"]"), [0]);
        assert_eq!(
            kept("actions = [\"none\"]"),
            [1],
            "a flow has no verdict to match"
        );
        assert_eq!(kept("actions = [\"drop\", \"none\"]"), [0, 1]);
        assert_eq!(kept("src = [\"10.0.0.0/8\"]"), [1, 2]);
        assert_eq!(kept("dst = [\"192.0.2.0/24\"]"), [1]);
        assert_eq!(kept("addresses = [\"192.0.2.1/32\"]"), [0, 1]);
        assert_eq!(kept("dst_ports = [22, 53]"), [0, 2]);
        assert_eq!(kept("ports = [5353]"), [2], "either side");
        assert_eq!(kept("protocols = [\"icmp\", 17]"), [1, 2]);
        assert_eq!(
            kept("protocols = [\"tcp\"]\nports = [22]"),
            [0],
            "every condition given"
        );
        assert_eq!(
            kept("protocols = [\"tcp\"]\ndrop = true"),
            [1, 2, 3],
            "drop removes what matches"
        );
    }

    #[test]
    fn bad_conditions_are_refused() {
        for (t, want) in [
            ("", "at least one condition"),
            ("actions = [\"deny\"]", "unknown action `deny`"),
            ("protocols = [\"tcpp\"]", "unknown protocol `tcpp`"),
        ] {
            let cfg: FilterConfig = toml::from_str(&format!("inputs = [\"x\"]\n{t}")).unwrap();
            let e = cfg.validate().unwrap_err();
            assert!(format!("{e:#}").contains(want), "{t}: {e:#}");
        }
        assert!(toml::from_str::<FilterConfig>("inputs = [\"x\"]\nsrc = [\"nonsense\"]").is_err());
    }
}
