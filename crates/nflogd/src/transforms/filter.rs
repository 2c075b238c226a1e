//! `filter`: keeps the events that match every condition given (or, with `drop = true`, removes
//! them), so that a sink can take a subset. A condition is a list; an event matches it when it
//! matches any entry. An event without the field a condition asks about (a flow has no log
//! prefix, an ARP packet no ports, a raw line nothing) does not match that condition.

use super::{Transform, TransformContext, TransformType};
use crate::metrics::ComponentCounters;
use crate::sources::conntrack::protocol_number;
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
    pub protocols: Vec<String>,
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
                .map(|p| protocol_number(p))
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
            Event::Raw(_) | Event::Counter(_) => (None, None, None),
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
