//! The typed events that flow through nflogd: what sources produce, transforms enrich and
//! schemas render. Field names here are Rust names; the output names belong to the schemas.

mod action;
mod enrich;
mod key;
mod line;
mod time;

pub use action::Action;
pub use enrich::{Endpoint, Enrichment, Place};
pub use key::FlowKey;
pub use line::{Decision, LogLine, Verdict};
pub use nfnetlink::ctnetlink::Conntrack;
pub use packet::Headers;
pub use time::Timestamp;

use arrayvec::ArrayVec;
use std::sync::Arc;

/// Netfilter protocol families (NFPROTO_*), the `family` of a hook.
pub mod family {
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const ARP: u8 = 3;
    pub const NETDEV: u8 = 5;
    pub const BRIDGE: u8 = 7;
    pub const IPV6: u8 = 10;
}

/// Netfilter hooks of the inet families, by number.
pub fn hook_name(family: u8, hook: u8) -> &'static str {
    match family {
        family::ARP => match hook {
            0 => "input",
            1 => "output",
            2 => "forward",
            _ => "unknown",
        },
        family::NETDEV => match hook {
            0 => "ingress",
            1 => "egress",
            _ => "unknown",
        },
        _ => match hook {
            0 => "prerouting",
            1 => "input",
            2 => "forward",
            3 => "output",
            4 => "postrouting",
            _ => "unknown",
        },
    }
}

/// A network interface: index as the kernel gave it and name as resolved (empty if unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: Option<u32>,
    pub name: Arc<str>,
    /// ARPHRD_* type of the device, when known.
    pub hwtype: Option<u16>,
}

/// The link-layer header of a received packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkHeader {
    /// ARPHRD_* type of the receiving device.
    pub hwtype: Option<u16>,
    /// The device's hard header as captured (hard_header_len bytes; at most 32 kept).
    pub header: ArrayVec<u8, 32>,
    /// Hardware source address as the device parses it.
    pub hwaddr: Option<ArrayVec<u8, 8>>,
    /// Hardware-accelerated VLAN tag: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
}

pub const ARPHRD_ETHER: u16 = 1;

impl LinkHeader {
    /// Ethernet view of the header, when the device is Ethernet-like and the header long enough.
    pub fn ethernet(&self) -> Option<packet::ethernet::Ethernet> {
        match self.hwtype {
            Some(ARPHRD_ETHER) | Some(772) | None => packet::ethernet::parse(&self.header),
            _ => None,
        }
    }
}

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketEvent {
    pub time: Timestamp,
    /// NFPROTO family of the hook that logged it.
    pub family: u8,
    pub hook: Option<u8>,
    /// NFLOG group, for packets from NFLOG.
    pub group: Option<u16>,
    /// The packet's ethertype (skb->protocol).
    pub hw_protocol: u16,
    /// The rule's log prefix, exactly as given.
    pub prefix: Arc<str>,
    /// The verdict the rule's author meant, when known.
    pub action: Option<Action>,
    /// ulogd's `numeric_label`, a constant per source.
    pub label: u8,
    pub mark: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub seq: Option<u32>,
    pub seq_global: Option<u32>,
    pub indev: Option<Interface>,
    pub outdev: Option<Interface>,
    pub physindev: Option<Interface>,
    pub physoutdev: Option<Interface>,
    pub link: Option<LinkHeader>,
    /// Bytes of payload captured (from the network header on).
    pub payload_len: u32,
    pub headers: Headers,
    pub ct: Option<Box<Conntrack>>,
    pub ct_info: Option<u32>,
    /// The host that logged it, when it came from another machine (syslog).
    pub host: Option<Arc<str>>,
    /// printk level / syslog severity, for packets read from log lines.
    pub level: Option<u8>,
    /// LOG flags (`NF_LOG_*` bits) a parsed line showed; renders it back as it was.
    pub log_flags: Option<u8>,
    /// What transforms added about its endpoints.
    pub enrich: Option<Box<Enrichment>>,
    /// The packet's bytes as logged, from the network header on: kept only when a consumer
    /// writes them (a pcap sink), or when they were read from a capture.
    pub payload: Option<Arc<[u8]>>,
    /// Read from a log line that matched no known layout: the fields that could be read are
    /// here, the others are missing.
    pub partial: bool,
    /// The line a partial record was read from, as it came (text schemas write it back).
    pub original: Option<Arc<str>>,
    /// For a traced packet: its path through the ruleset.
    pub trace: Option<Box<Trace>>,
}

impl PacketEvent {
    /// The frame's VLAN tags, outermost first: the one the kernel took out of the frame on
    /// receive (NFLOG's VLAN attribute), those in the captured link header, and those still at
    /// the start of the payload.
    pub fn vlans(&self) -> ArrayVec<packet::ethernet::Vlan, 4> {
        let mut tags = ArrayVec::new();
        let link = self.link.as_ref();
        if let Some((tpid, tci)) = link.and_then(|l| l.vlan) {
            tags.push(packet::ethernet::Vlan { tpid, tci });
        }
        let in_header = link.and_then(LinkHeader::ethernet).map(|e| e.vlans);
        for v in in_header
            .into_iter()
            .flatten()
            .chain(self.headers.vlans)
            .flatten()
        {
            let _ = tags.try_push(v);
        }
        tags
    }

    /// A record with its prefix and nothing else. Decoders start from this rather than from
    /// `Default` plus a prefix: that made and dropped an empty shared string per packet, an
    /// atomic operation that took a seventh of `logline::parse`'s own samples in a profile.
    pub fn with_prefix(prefix: Arc<str>) -> Self {
        PacketEvent {
            time: Timestamp::default(),
            family: 0,
            hook: None,
            group: None,
            hw_protocol: 0,
            prefix,
            action: None,
            label: 0,
            mark: 0,
            uid: None,
            gid: None,
            seq: None,
            seq_global: None,
            indev: None,
            outdev: None,
            physindev: None,
            physoutdev: None,
            link: None,
            payload_len: 0,
            headers: Headers::default(),
            ct: None,
            ct_info: None,
            host: None,
            level: None,
            log_flags: None,
            enrich: None,
            payload: None,
            partial: false,
            original: None,
            trace: None,
        }
    }
}

impl Default for PacketEvent {
    fn default() -> Self {
        PacketEvent::with_prefix(Arc::from(""))
    }
}

/// A traced packet's path through the ruleset (nf_tables trace events, iptables' TRACE lines).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// The kernel's trace id (nf_tables); iptables' TRACE lines have none.
    pub id: Option<u32>,
    pub path: Vec<TraceStep>,
}

impl Trace {
    /// The last step that decided the packet's fate: accepted or dropped, by a rule or a
    /// chain's policy.
    pub fn deciding(&self) -> Option<&TraceStep> {
        self.path.iter().rev().find(|s| s.outcome().is_some())
    }
}

/// One step of a path: a rule that matched, a chain's policy, or a return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// NFPROTO family of the table.
    pub family: u8,
    pub table: Arc<str>,
    pub chain: Arc<str>,
    /// The rule's handle (nf_tables) or its number in the chain (iptables).
    pub handle: Option<u64>,
    /// The rule's text, when the ruleset (or the trace line) gave it.
    pub rule: Option<Arc<str>>,
    /// `accept`, `drop`, `continue`, `jump CHAIN`, `goto CHAIN`, `return`, `policy accept`…;
    /// for an iptables TRACE line whose rule could not be looked up, what the line says
    /// (`rule`, `return`, `policy`).
    pub verdict: Arc<str>,
}

impl TraceStep {
    /// `accept`, `drop`, `queue` or `stolen` when this step decided the packet's fate.
    pub fn outcome(&self) -> Option<&str> {
        let v = self.verdict.trim_start_matches("policy ");
        matches!(v, "accept" | "drop" | "reject" | "queue" | "stolen").then_some(v)
    }
}

/// A line that should have been a netfilter record and is not: kept, with why, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub time: Timestamp,
    pub host: Option<Arc<str>>,
    /// Where it came from: a file path, "kmsg", "stdin", a syslog peer.
    pub origin: Arc<str>,
    /// Line number or byte offset in the origin, when it has one.
    pub position: Option<u64>,
    pub line: String,
    pub reason: String,
}

/// What a conntrack event says happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowKind {
    New,
    Update,
    Destroy,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::New => "new",
            FlowKind::Update => "update",
            FlowKind::Destroy => "destroy",
        }
    }
}

/// One conntrack event: the connection's two tuples, NAT, counters and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    /// When nflogd received the event.
    pub time: Timestamp,
    pub kind: FlowKind,
    /// Layer-3 family (2 IPv4, 10 IPv6).
    pub family: u8,
    pub ct: Conntrack,
    /// Recorded from a table dump after the kernel lost events (ENOBUFS), not from the event
    /// itself: the flow's NEW or DESTROY was lost, and its times are approximate.
    pub recovered: bool,
    /// What transforms added about its endpoints.
    pub enrich: Option<Box<Enrichment>>,
}

impl FlowEvent {
    /// Source NAT: the address and port the connection left with, when they differ from the
    /// original source (the reply goes to them).
    pub fn snat(&self) -> Option<(std::net::IpAddr, Option<u16>)> {
        let (o, r) = (&self.ct.orig, &self.ct.reply);
        let ip = r.dst?;
        (Some(ip) != o.src || r.dport != o.sport).then_some((ip, r.dport))
    }

    /// Destination NAT: where the connection really went, when that differs from the original
    /// destination (the reply comes from it).
    pub fn dnat(&self) -> Option<(std::net::IpAddr, Option<u16>)> {
        let (o, r) = (&self.ct.orig, &self.ct.reply);
        let ip = r.src?;
        (Some(ip) != o.dst || r.sport != o.dport).then_some((ip, r.sport))
    }
}

/// Everything that flows through a pipeline. Packets and flows are stored inline: they travel
/// in batch vectors, and boxing each would cost an allocation per event on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Packet(PacketEvent),
    Raw(Box<RawLine>),
    Flow(FlowEvent),
    Counter(Box<CounterEvent>),
    /// A log line that is not a netfilter record, for a guard (sinks are not handed these).
    Line(Box<LogLine>),
    /// What a guard decided.
    Decision(Box<Decision>),
}

impl Event {
    pub fn is_line(&self) -> bool {
        matches!(self, Event::Line(_))
    }
}

/// The counters of one accounting object (nfacct) at a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterEvent {
    pub time: Timestamp,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod flow_tests {
    use super::*;
    use nfnetlink::ctnetlink::Tuple;

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            protocol: 6,
            sport: Some(sport),
            dport: Some(dport),
            ..Tuple::default()
        }
    }

    fn flow(orig: Tuple, reply: Tuple) -> FlowEvent {
        FlowEvent {
            time: Timestamp { secs: 0, micros: 0 },
            kind: FlowKind::New,
            family: family::IPV4,
            ct: Conntrack {
                orig,
                reply,
                ..Conntrack::default()
            },
            recovered: false,
            enrich: None,
        }
    }

    #[test]
    fn masquerade_is_source_nat_with_the_new_port() {
        let f = flow(
            tcp("10.0.0.2", 40000, "192.0.2.1", 80),
            tcp("192.0.2.1", 80, "198.51.100.7", 61000),
        );
        assert_eq!(
            f.snat(),
            Some(("198.51.100.7".parse().unwrap(), Some(61000)))
        );
        assert_eq!(f.dnat(), None);
    }

    #[test]
    fn port_forward_is_destination_nat() {
        let f = flow(
            tcp("192.0.2.9", 5000, "198.51.100.7", 8080),
            tcp("10.0.0.5", 80, "192.0.2.9", 5000),
        );
        assert_eq!(f.dnat(), Some(("10.0.0.5".parse().unwrap(), Some(80))));
        assert_eq!(f.snat(), None);
    }

    #[test]
    fn untranslated_flow_has_no_nat() {
        let f = flow(
            tcp("10.0.0.2", 40000, "10.0.0.3", 22),
            tcp("10.0.0.3", 22, "10.0.0.2", 40000),
        );
        assert_eq!((f.snat(), f.dnat()), (None, None));
    }
}
