//! The tables every database sink writes, and how an event becomes a row of one of them.
//!
//! One definition serves SQLite, PostgreSQL and ClickHouse: each column has a logical type that
//! the dialects map to their own (`store::ddl`), so the three stores hold the same columns.

use event::{Action, Event, FlowEvent, FlowKind, PacketEvent, Timestamp};
use packet::{Network, Transport};
use std::net::IpAddr;

/// A column's logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An instant, microsecond precision, UTC.
    Time,
    Text,
    /// Integers, by the width the value needs (PostgreSQL and ClickHouse store them so).
    I16,
    I32,
    I64,
    /// An IPv4 or IPv6 address.
    Inet,
    /// A 6-byte hardware address.
    Mac,
    Bool,
}

pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// The tables of nflogd's own schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Packets,
    Flows,
    /// The connections open now: a row per NEW, deleted by its DESTROY.
    OpenFlows,
    Counters,
    RawLines,
    /// What guards decided (ban, unban).
    Decisions,
    /// ulogd2's tables (store::ulogd_tables), for `tables = "ulogd"`.
    UlogdPacket,
    UlogdFlow,
    UlogdCounter,
}

impl Table {
    /// nflogd's own tables.
    pub const ALL: [Table; 6] = [
        Table::Packets,
        Table::Flows,
        Table::OpenFlows,
        Table::Counters,
        Table::RawLines,
        Table::Decisions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Packets => "packets",
            Table::Flows => "flows",
            Table::OpenFlows => "open_flows",
            Table::Counters => "counters",
            Table::RawLines => "raw_lines",
            Table::Decisions => "decisions",
            Table::UlogdPacket => "ulog2",
            Table::UlogdFlow => "ulog2_ct",
            Table::UlogdCounter => "nfacct",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Packets => PACKET_COLUMNS,
            Table::Flows => FLOW_COLUMNS,
            // Same columns as the history: a row moves from one to the other unchanged.
            Table::OpenFlows => FLOW_COLUMNS,
            Table::Counters => COUNTER_COLUMNS,
            Table::RawLines => RAW_COLUMNS,
            Table::Decisions => DECISION_COLUMNS,
            Table::UlogdPacket => super::ulogd_tables::PACKET_COLUMNS,
            Table::UlogdFlow => super::ulogd_tables::FLOW_COLUMNS,
            Table::UlogdCounter => super::ulogd_tables::COUNTER_COLUMNS,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<Table> {
        [
            Table::Packets,
            Table::Flows,
            Table::OpenFlows,
            Table::Counters,
            Table::RawLines,
            Table::UlogdPacket,
            Table::UlogdFlow,
            Table::UlogdCounter,
            Table::Decisions,
        ]
        .into_iter()
        .find(|t| t.code() == c)
    }
}

use Kind::*;

pub const PACKET_COLUMNS: &[Column] = &[
    col("time", Time),
    col("host", Text),
    col("family", Text),
    col("hook", Text),
    col("nflog_group", I32),
    col("prefix", Text),
    col("action", Text),
    col("in_iface", Text),
    col("out_iface", Text),
    col("mac_src", Mac),
    col("mac_dst", Mac),
    col("src_ip", Inet),
    col("dst_ip", Inet),
    col("protocol", I16),
    col("src_port", I32),
    col("dst_port", I32),
    col("length", I32),
    col("ttl", I16),
    col("tcp_flags", Text),
    col("icmp_type", I16),
    col("icmp_code", I16),
    col("mark", I64),
    col("uid", I64),
    col("gid", I64),
];

pub const FLOW_COLUMNS: &[Column] = &[
    col("time", Time),
    col("host", Text),
    col("event", Text),
    col("family", Text),
    col("protocol", I16),
    col("src_ip", Inet),
    col("src_port", I32),
    col("dst_ip", Inet),
    col("dst_port", I32),
    col("nat_src_ip", Inet),
    col("nat_src_port", I32),
    col("nat_dst_ip", Inet),
    col("nat_dst_port", I32),
    col("flow_start", Time),
    col("flow_end", Time),
    col("orig_packets", I64),
    col("orig_bytes", I64),
    col("reply_packets", I64),
    col("reply_bytes", I64),
    col("icmp_type", I16),
    col("icmp_code", I16),
    col("mark", I64),
    col("zone", I32),
    col("ct_id", I64),
    col("recovered", Bool),
];

pub const COUNTER_COLUMNS: &[Column] = &[
    col("time", Time),
    col("host", Text),
    col("name", Text),
    col("packets", I64),
    col("bytes", I64),
];

pub const RAW_COLUMNS: &[Column] = &[
    col("time", Time),
    col("host", Text),
    col("origin", Text),
    col("position", I64),
    col("line", Text),
    col("reason", Text),
];

pub const DECISION_COLUMNS: &[Column] = &[
    col("time", Time),
    col("host", Text),
    col("guard", Text),
    col("action", Text),
    col("address", Inet),
    col("prefix", Text),
    col("detector", Text),
    col("evidence", I32),
    col("offense", I32),
    col("duration", I64),
    col("dry_run", Bool),
    col("reason", Text),
];

/// One value of a row; `Null` where the event has nothing for the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Time(Timestamp),
    /// Text; most values (names, prefixes, flags) are short enough to stay inline.
    Text(compact_str::CompactString),
    Int(i64),
    Inet(IpAddr),
    Mac([u8; 6]),
    Bool(bool),
}

impl Value {
    fn opt_int<T: Into<i64>>(v: Option<T>) -> Value {
        v.map_or(Value::Null, |x| Value::Int(x.into()))
    }
    fn opt_ip(v: Option<IpAddr>) -> Value {
        v.map_or(Value::Null, Value::Inet)
    }
    fn text(s: &str) -> Value {
        if s.is_empty() {
            Value::Null
        } else {
            Value::Text(s.into())
        }
    }
}

/// A time as text: RFC 3339 UTC with microseconds (how SQLite keeps it; sortable).
pub fn time_text(t: event::Timestamp) -> String {
    let mut v = Vec::with_capacity(27);
    t.write_rfc3339_utc(&mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// A MAC as text: `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub table: Table,
    pub values: Vec<Value>,
}

/// The rows an event makes: one, except a conntrack event, which also changes `open_flows`
/// (an insert on NEW, a delete on DESTROY: `Change::Close`).
pub fn rows(ev: &Event, host: &str, out: &mut Vec<Change>) {
    match ev {
        Event::Packet(p) => out.push(Change::Insert(packet_row(p, host))),
        Event::Flow(f) => {
            let row = flow_row(f, host);
            match f.kind {
                FlowKind::New => {
                    let mut open = row.clone();
                    open.table = Table::OpenFlows;
                    out.push(Change::Insert(row));
                    if f.ct.id.is_some() {
                        out.push(Change::Insert(open));
                    }
                }
                FlowKind::Destroy => {
                    out.push(Change::Insert(row));
                    if let Some(id) = f.ct.id {
                        out.push(Change::Close {
                            host: host.to_string(),
                            ct_id: id.into(),
                        });
                    }
                }
                FlowKind::Update => out.push(Change::Insert(row)),
            }
        }
        Event::Counter(c) => out.push(Change::Insert(Row {
            table: Table::Counters,
            values: vec![
                Value::Time(c.time),
                Value::text(host),
                Value::Text(c.name.as_str().into()),
                Value::Int(c.packets as i64),
                Value::Int(c.bytes as i64),
            ],
        })),
        Event::Decision(d) => out.push(Change::Insert(Row {
            table: Table::Decisions,
            values: vec![
                Value::Time(d.time),
                Value::text(host),
                Value::text(&d.guard),
                Value::text(d.verdict.as_str()),
                Value::Inet(d.address),
                Value::Text(d.prefix.to_string().into()),
                Value::text(&d.detector),
                Value::Int(d.evidence.into()),
                Value::Int(d.offense.into()),
                Value::Int(d.duration_secs.min(i64::MAX as u64) as i64),
                Value::Bool(d.dry_run),
                Value::Text(d.reason.as_str().into()),
            ],
        })),
        // Lines for a guard are not records of the store.
        Event::Line(_) => {}
        Event::Raw(r) => out.push(Change::Insert(Row {
            table: Table::RawLines,
            values: vec![
                Value::Time(r.time),
                Value::text(r.host.as_deref().unwrap_or(host)),
                Value::text(&r.origin),
                Value::opt_int(r.position.map(|p| p as i64)),
                Value::Text(r.line.as_str().into()),
                Value::Text(r.reason.as_str().into()),
            ],
        })),
    }
}

/// What a database sink does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Insert(Row),
    /// The connection `ct_id` of `host` ended: its `open_flows` row goes.
    Close {
        host: String,
        ct_id: i64,
    },
}

fn family_name(f: u8) -> &'static str {
    match f {
        event::family::INET => "inet",
        event::family::IPV4 => "ipv4",
        event::family::IPV6 => "ipv6",
        event::family::ARP => "arp",
        event::family::BRIDGE => "bridge",
        event::family::NETDEV => "netdev",
        _ => "unknown",
    }
}

fn mac(b: &[u8]) -> Value {
    b.try_into().map_or(Value::Null, Value::Mac)
}

pub fn packet_row(p: &PacketEvent, host: &str) -> Row {
    let (mut src, mut dst, mut ttl, mut length) = (None, None, None, None);
    let mut transport = None;
    match &p.headers.network {
        Network::Ipv4(ip) => {
            (src, dst) = (Some(IpAddr::from(ip.src)), Some(IpAddr::from(ip.dst)));
            ttl = Some(ip.ttl as i64);
            length = Some(ip.total_len as i64);
            transport = Some(&ip.transport);
        }
        Network::Ipv6(ip) => {
            (src, dst) = (Some(IpAddr::from(ip.src)), Some(IpAddr::from(ip.dst)));
            ttl = Some(ip.hop_limit as i64);
            length = Some(ip.payload_len as i64 + 40);
            transport = Some(&ip.transport);
        }
        Network::Arp(a) => {
            src = a.addrs.map(|x| IpAddr::from(x.sender_ip));
            dst = a.addrs.map(|x| IpAddr::from(x.target_ip));
        }
        _ => {}
    }
    let (mut flags, mut icmp) = (None, None);
    match transport {
        Some(Transport::Tcp(t)) => flags = Some(t.flag_names().collect::<Vec<_>>().join(" ")),
        Some(Transport::Icmp(i)) => icmp = Some((i.icmp_type, i.code)),
        Some(Transport::Icmpv6(i)) => icmp = Some((i.icmp_type, i.code)),
        _ => {}
    }
    let ports = p.headers.ports();
    let eth = p.link.as_ref().and_then(|l| l.ethernet());
    let iface =
        |d: &Option<event::Interface>| d.as_ref().map_or(Value::Null, |d| Value::text(&d.name));
    Row {
        table: Table::Packets,
        values: vec![
            Value::Time(p.time),
            Value::text(p.host.as_deref().unwrap_or(host)),
            Value::text(family_name(p.family)),
            p.hook
                .map_or(Value::Null, |h| Value::text(event::hook_name(p.family, h))),
            Value::opt_int(p.group),
            Value::text(p.prefix.trim()),
            p.action
                .map_or(Value::Null, |a: Action| Value::text(a.as_str())),
            iface(&p.indev),
            iface(&p.outdev),
            eth.as_ref().map_or(Value::Null, |e| mac(&e.src)),
            eth.as_ref().map_or(Value::Null, |e| mac(&e.dst)),
            Value::opt_ip(src),
            Value::opt_ip(dst),
            Value::opt_int(p.headers.protocol()),
            Value::opt_int(ports.map(|x| x.0)),
            Value::opt_int(ports.map(|x| x.1)),
            Value::opt_int(length.or(Some(p.payload_len as i64)).filter(|&l| l > 0)),
            Value::opt_int(ttl),
            flags.map_or(Value::Null, |f| Value::Text(f.into())),
            Value::opt_int(icmp.map(|x| x.0)),
            Value::opt_int(icmp.map(|x| x.1)),
            Value::Int(p.mark as i64),
            Value::opt_int(p.uid),
            Value::opt_int(p.gid),
        ],
    }
}

fn ns_time(ns: u64) -> Timestamp {
    Timestamp {
        secs: (ns / 1_000_000_000) as i64,
        micros: (ns % 1_000_000_000 / 1000) as u32,
    }
}

pub fn flow_row(f: &FlowEvent, host: &str) -> Row {
    let (o, ct) = (&f.ct.orig, &f.ct);
    let snat = f.snat();
    let dnat = f.dnat();
    // Without conntrack timestamps a NEW has no start; its receive time is the closest.
    let start = ct
        .start_ns
        .filter(|&n| n != 0)
        .map(ns_time)
        .or(match f.kind {
            FlowKind::New => Some(f.time),
            _ => None,
        });
    let end = ct
        .stop_ns
        .filter(|&n| n != 0)
        .map(ns_time)
        .or(match f.kind {
            FlowKind::Destroy => Some(f.time),
            _ => None,
        });
    let time = |t: Option<Timestamp>| t.map_or(Value::Null, Value::Time);
    let counters = |c: Option<nfnetlink::ctnetlink::Counters>| {
        c.map_or((Value::Null, Value::Null), |c| {
            (Value::Int(c.packets as i64), Value::Int(c.bytes as i64))
        })
    };
    let (op, ob) = counters(ct.counters_orig);
    let (rp, rb) = counters(ct.counters_reply);
    Row {
        table: Table::Flows,
        values: vec![
            Value::Time(f.time),
            Value::text(host),
            Value::text(f.kind.as_str()),
            Value::text(family_name(f.family)),
            Value::Int(o.protocol as i64),
            Value::opt_ip(o.src),
            Value::opt_int(o.sport),
            Value::opt_ip(o.dst),
            Value::opt_int(o.dport),
            Value::opt_ip(snat.map(|x| x.0)),
            Value::opt_int(snat.and_then(|x| x.1)),
            Value::opt_ip(dnat.map(|x| x.0)),
            Value::opt_int(dnat.and_then(|x| x.1)),
            time(start),
            time(end),
            op,
            ob,
            rp,
            rb,
            Value::opt_int(o.icmp_type),
            Value::opt_int(o.icmp_code),
            Value::opt_int(ct.mark.map(i64::from)),
            Value::opt_int(ct.zone),
            Value::opt_int(ct.id.map(i64::from)),
            Value::Bool(f.recovered),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard's decision is a row of `decisions`, one value per column; a guard's input line
    /// makes none.
    #[test]
    fn decisions_have_their_table() {
        let d = event::Decision {
            time: Timestamp::default(),
            guard: "g".into(),
            verdict: event::Verdict::Ban,
            address: "2001:db8::5".parse().unwrap(),
            prefix: "2001:db8::/64".parse().unwrap(),
            detector: "sshd".into(),
            evidence: 5,
            offense: 2,
            duration_secs: 1200,
            dry_run: false,
            reason: "sshd: 5 failures".into(),
        };
        let mut out = Vec::new();
        rows(&Event::Decision(Box::new(d)), "h", &mut out);
        let Change::Insert(r) = &out[0] else { panic!() };
        assert_eq!(r.table, Table::Decisions);
        assert_eq!(r.values.len(), DECISION_COLUMNS.len());
        assert_eq!(r.values[4], Value::Inet("2001:db8::5".parse().unwrap()));
        assert_eq!(r.values[5], Value::Text("2001:db8::/64".into()));
        assert_eq!(r.values[9], Value::Int(1200));
        let line = event::LogLine {
            time: Timestamp::default(),
            host: None,
            program: None,
            pid: None,
            message: "x".into(),
            origin: "o".into(),
        };
        out.clear();
        rows(&Event::Line(Box::new(line)), "h", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn rows_match_their_columns() {
        let p = packet_row(&PacketEvent::default(), "h");
        assert_eq!(p.values.len(), PACKET_COLUMNS.len());
        let f = FlowEvent {
            time: Timestamp::default(),
            kind: FlowKind::Destroy,
            family: event::family::IPV4,
            ct: event::Conntrack {
                id: Some(7),
                ..Default::default()
            },
            recovered: false,
            enrich: None,
        };
        let mut out = Vec::new();
        rows(&Event::Flow(f), "h", &mut out);
        let Change::Insert(r) = &out[0] else { panic!() };
        assert_eq!(r.values.len(), FLOW_COLUMNS.len());
        assert_eq!(
            out[1],
            Change::Close {
                host: "h".into(),
                ct_id: 7
            }
        );
    }
}
