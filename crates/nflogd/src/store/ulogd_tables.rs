//! ulogd2's own PostgreSQL tables (its pgsql-ulogd2.sql: `ulog2` with the per-protocol tables
//! `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `mac`, `hwhdr`; `ulog2_ct`; `nfacct`), so users of
//! ulogd's PGSQL output keep their queries and views when they switch.
//!
//! Values come the way ulogd's own database plugins take them: the event is rendered with the
//! `ulogd` schema (checked key by key against ulogd2 itself) and each column takes the key of
//! its name with `_` read as `.`, except where ulogd's JSON renames a key (`src_ip`…).

use super::rows::{Change, Column, Kind, Row, Table, Value};
use crate::schema::Renderer;
use event::Event;

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}
use Kind::*;

/// A logged packet as INSERT_PACKET_FULL takes it: the `ulog2` columns, then those of the
/// protocol tables, then the link layer.
pub const PACKET_COLUMNS: &[Column] = &[
    // ulog2
    col("oob_time_sec", I32),
    col("oob_time_usec", I32),
    col("oob_hook", I16),
    col("oob_prefix", Text),
    col("oob_mark", I32),
    col("oob_in", Text),
    col("oob_out", Text),
    col("oob_family", I16),
    col("ip_saddr_str", Inet),
    col("ip_daddr_str", Inet),
    col("ip_protocol", I16),
    col("ip_tos", I16),
    col("ip_ttl", I16),
    col("ip_totlen", I16),
    col("ip_ihl", I16),
    col("ip_csum", I32),
    col("ip_id", I32),
    col("ip_fragoff", I16),
    col("ip6_payloadlen", I64),
    col("ip6_priority", I16),
    col("ip6_hoplimit", I16),
    col("ip6_flowlabel", I64),
    col("ip6_fragoff", I32),
    col("ip6_fragid", I64),
    col("label", I16),
    // tcp
    col("tcp_sport", I32),
    col("tcp_dport", I32),
    col("tcp_seq", I64),
    col("tcp_ackseq", I64),
    col("tcp_window", I32),
    col("tcp_urg", Bool),
    col("tcp_urgp", I32),
    col("tcp_ack", Bool),
    col("tcp_psh", Bool),
    col("tcp_rst", Bool),
    col("tcp_syn", Bool),
    col("tcp_fin", Bool),
    // udp
    col("udp_sport", I32),
    col("udp_dport", I32),
    col("udp_len", I16),
    // icmp
    col("icmp_type", I16),
    col("icmp_code", I16),
    col("icmp_echoid", I32),
    col("icmp_echoseq", I32),
    col("icmp_gateway", I32),
    col("icmp_fragmtu", I16),
    // icmpv6
    col("icmpv6_type", I16),
    col("icmpv6_code", I16),
    col("icmpv6_echoid", I32),
    col("icmpv6_echoseq", I32),
    col("icmpv6_csum", I32),
    // sctp
    col("sctp_sport", I32),
    col("sctp_dport", I32),
    col("sctp_csum", I16),
    // mac / hwhdr
    col("raw_type", I32),
    col("raw_header", Text),
    col("mac_saddr", Mac),
    col("mac_daddr", Mac),
    col("mac_protocol", I32),
];

/// Where each table's columns sit in PACKET_COLUMNS: (table, id column, first, end).
pub const PACKET_TABLES: &[(&str, &str, usize, usize)] = &[
    ("ulog2", "_id", 0, 25),
    ("tcp", "_tcp_id", 25, 37),
    ("udp", "_udp_id", 37, 40),
    ("icmp", "_icmp_id", 40, 46),
    ("icmpv6", "_icmpv6_id", 46, 51),
    ("sctp", "_sctp_id", 51, 54),
];

pub const FLOW_COLUMNS: &[Column] = &[
    col("oob_family", I16),
    col("orig_ip_saddr_str", Inet),
    col("orig_ip_daddr_str", Inet),
    col("orig_ip_protocol", I16),
    col("orig_l4_sport", I32),
    col("orig_l4_dport", I32),
    col("orig_raw_pktlen", I64),
    col("orig_raw_pktcount", I64),
    col("reply_ip_saddr_str", Inet),
    col("reply_ip_daddr_str", Inet),
    col("reply_ip_protocol", I16),
    col("reply_l4_sport", I32),
    col("reply_l4_dport", I32),
    col("reply_raw_pktlen", I64),
    col("reply_raw_pktcount", I64),
    col("icmp_code", I16),
    col("icmp_type", I16),
    col("ct_mark", I64),
    col("flow_start_sec", I64),
    col("flow_start_usec", I64),
    col("flow_end_sec", I64),
    col("flow_end_usec", I64),
    col("ct_event", I16),
];

pub const COUNTER_COLUMNS: &[Column] = &[
    col("sum_name", Text),
    col("sum_pkts", I32),
    col("sum_bytes", I32),
    col("oob_time_sec", I32),
    col("oob_time_usec", I32),
];

/// The ulogd key a column takes (before the `_` → `.` rule).
fn key_of(column: &str, protocol: Option<i64>) -> String {
    let renamed = match column {
        "ip_saddr_str" | "orig_ip_saddr_str" => Some("src_ip"),
        "ip_daddr_str" | "orig_ip_daddr_str" => Some("dest_ip"),
        "mac_saddr" => Some("mac.saddr.str"),
        "mac_daddr" => Some("mac.daddr.str"),
        "mac_protocol" => Some("oob.protocol"),
        // The `ulog` view (whose columns name ulogd's keys) calls it mac_str.
        "raw_header" => Some("mac.str"),
        "label" => Some("raw.label"),
        _ => None,
    };
    if let Some(k) = renamed {
        return k.to_string();
    }
    // ulogd's JSON names the ports of every protocol src_port/dest_port.
    let port = |p: i64, side: &str| (protocol == Some(p)).then(|| side.to_string());
    let by_port = match column {
        "tcp_sport" => port(6, "src_port"),
        "tcp_dport" => port(6, "dest_port"),
        "udp_sport" => port(17, "src_port").or(port(136, "src_port")),
        "udp_dport" => port(17, "dest_port").or(port(136, "dest_port")),
        "sctp_sport" => port(132, "src_port"),
        "sctp_dport" => port(132, "dest_port"),
        _ => None,
    };
    by_port.unwrap_or_else(|| column.replace('_', "."))
}

fn value(v: Option<&serde_json::Value>, kind: Kind) -> Value {
    use serde_json::Value as J;
    match (v, kind) {
        (None | Some(J::Null), _) => Value::Null,
        (Some(J::Number(n)), Bool) => Value::Bool(n.as_i64() != Some(0)),
        (Some(J::Number(n)), _) => n.as_i64().map_or(Value::Null, Value::Int),
        (Some(J::String(s)), Inet) => s.parse().map_or(Value::Null, Value::Inet),
        (Some(J::String(s)), Mac) => {
            let b: Vec<u8> = s
                .split(':')
                .filter_map(|x| u8::from_str_radix(x, 16).ok())
                .collect();
            b.try_into().map_or(Value::Null, Value::Mac)
        }
        (Some(J::String(s)), _) => Value::Text(s.as_str().into()),
        (Some(J::Bool(b)), _) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// The rows an event makes in ulogd's tables (raw lines and guard decisions have no table there
/// and make none).
pub fn rows(ev: &Event, renderer: &mut Renderer, buf: &mut Vec<u8>, out: &mut Vec<Change>) {
    let (table, columns) = match ev {
        Event::Packet(_) => (Table::UlogdPacket, PACKET_COLUMNS),
        Event::Flow(_) => (Table::UlogdFlow, FLOW_COLUMNS),
        Event::Counter(_) => (Table::UlogdCounter, COUNTER_COLUMNS),
        Event::Raw(_) | Event::Line(_) | Event::Decision(_) => return,
    };
    buf.clear();
    renderer.render(ev, buf);
    let Ok(serde_json::Value::Object(keys)) = serde_json::from_slice(buf) else {
        return;
    };
    let protocol = keys.get("ip.protocol").and_then(|v| v.as_i64());
    let values = columns
        .iter()
        .map(|c| value(keys.get(&key_of(c.name, protocol)), c.kind))
        .collect();
    out.push(Change::Insert(Row { table, values }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_split_the_packet_columns_whole() {
        let mut next = 0;
        for (_, _, a, b) in PACKET_TABLES {
            assert_eq!(*a, next);
            next = *b;
        }
        assert_eq!(PACKET_COLUMNS[next].name, "raw_type");
        assert_eq!(key_of("ip_tos", Some(6)), "ip.tos");
        assert_eq!(key_of("tcp_dport", Some(6)), "dest_port");
        assert_eq!(key_of("tcp_dport", Some(17)), "tcp.dport");
    }
}
