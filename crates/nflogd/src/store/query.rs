//! `nflogd query` as SQL: the filters, the NAT question and the `--top` summaries, written once
//! for SQLite and PostgreSQL. Pure: it builds statements and parameters; running them and
//! printing is query_cmd's.

use super::ddl::Dialect;
use super::rollup;
use super::rows::{Kind, Table};
use anyhow::{bail, Result};
use event::Timestamp;
use std::net::IpAddr;

/// A statement parameter; every one is bound, never spliced into the SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
}

#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// An address or a network (`10.0.0.0/8`), on either side.
    pub addr: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    /// A port on either side.
    pub port: Option<u16>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub protocol: Option<u8>,
    /// packets: accept, drop or reject, or several with commas.
    pub action: Option<String>,
    /// packets: part of the log prefix, any case.
    pub prefix: Option<String>,
    /// flows: new, update or destroy.
    pub event: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Top {
    /// Sources with the most packets logged.
    Sources,
    /// Destination ports of dropped or rejected packets.
    DroppedPorts,
    /// Sources with the most bytes in ended connections.
    Talkers,
    /// The ended connections that lasted longest.
    LongestFlows,
}

impl std::str::FromStr for Top {
    type Err = String;
    fn from_str(s: &str) -> Result<Top, String> {
        match s {
            "sources" => Ok(Top::Sources),
            "dropped-ports" => Ok(Top::DroppedPorts),
            "talkers" => Ok(Top::Talkers),
            "longest-flows" => Ok(Top::LongestFlows),
            _ => Err(format!(
                "unknown summary `{s}` (sources, dropped-ports, talkers, longest-flows)"
            )),
        }
    }
}

/// A statement and what its columns hold.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
    pub columns: Vec<(String, Kind)>,
}

struct Builder {
    d: Dialect,
    params: Vec<Param>,
    wheres: Vec<String>,
}

impl Builder {
    fn new(d: Dialect) -> Self {
        Builder {
            d,
            params: Vec::new(),
            wheres: Vec::new(),
        }
    }

    /// A placeholder for a new parameter. PostgreSQL gets text and integers as such (bigint),
    /// text then cast to the column's type (`pg_cast`, e.g. "::inet").
    fn bind(&mut self, p: Param, pg_cast: &str) -> String {
        let pg = match &p {
            Param::Text(_) => format!("::text{pg_cast}"),
            Param::Int(_) => "::bigint".to_string(),
        };
        self.params.push(p);
        let n = self.params.len();
        match self.d {
            Dialect::Postgres => format!("${n}{pg}"),
            _ => format!("?{n}"),
        }
    }

    fn time(&mut self, t: Timestamp) -> String {
        let mut v = Vec::new();
        t.write_rfc3339_utc(&mut v);
        self.bind(
            Param::Text(String::from_utf8_lossy(&v).into_owned()),
            "::timestamptz",
        )
    }

    /// `column` is the address, or lies in the network.
    fn address(&mut self, column: &str, value: &str) -> Result<String> {
        if value.contains('/') {
            let net: ipnet::IpNet = value
                .parse()
                .map_err(|e| anyhow::anyhow!("`{value}`: {e}"))?;
            let p = self.bind(Param::Text(net.to_string()), "::inet");
            Ok(match self.d {
                Dialect::Postgres => format!("{column} <<= {p}"),
                _ => format!("in_cidr({column}, {p})"),
            })
        } else {
            let ip: IpAddr = value
                .parse()
                .map_err(|e| anyhow::anyhow!("`{value}`: {e}"))?;
            let p = self.bind(Param::Text(ip.to_string()), "::inet");
            Ok(format!("{column} = {p}"))
        }
    }

    fn filters(&mut self, t: Table, f: &Filters) -> Result<()> {
        if let Some(s) = f.since {
            let p = self.time(s);
            self.wheres.push(format!("time >= {p}"));
        }
        if let Some(u) = f.until {
            let p = self.time(u);
            self.wheres.push(format!("time < {p}"));
        }
        let has_addresses = matches!(t, Table::Packets | Table::Flows);
        if (f.addr.is_some() || f.src.is_some() || f.dst.is_some() || f.port.is_some())
            && !has_addresses
        {
            bail!("addresses and ports filter packets and flows only");
        }
        if let Some(a) = &f.addr {
            let s = self.address("src_ip", a)?;
            let d = self.address("dst_ip", a)?;
            let mut either = vec![s, d];
            if t == Table::Flows {
                either.push(self.address("nat_src_ip", a)?);
                either.push(self.address("nat_dst_ip", a)?);
            }
            self.wheres.push(format!("({})", either.join(" OR ")));
        }
        if let Some(a) = &f.src {
            let w = self.address("src_ip", a)?;
            self.wheres.push(w);
        }
        if let Some(a) = &f.dst {
            let w = self.address("dst_ip", a)?;
            self.wheres.push(w);
        }
        if let Some(p) = f.port {
            let a = self.bind(Param::Int(p.into()), "");
            let b = self.bind(Param::Int(p.into()), "");
            self.wheres
                .push(format!("(src_port = {a} OR dst_port = {b})"));
        }
        for (col, v) in [("src_port", f.sport), ("dst_port", f.dport)] {
            if let Some(p) = v {
                let x = self.bind(Param::Int(p.into()), "");
                self.wheres.push(format!("{col} = {x}"));
            }
        }
        if let Some(p) = f.protocol {
            let x = self.bind(Param::Int(p.into()), "");
            self.wheres.push(format!("protocol = {x}"));
        }
        if let Some(a) = &f.action {
            if t != Table::Packets {
                bail!("--action filters packets");
            }
            // One action, or several with commas (`drop,reject`).
            let list: Vec<String> = a
                .split(',')
                .map(|one| self.bind(Param::Text(one.trim().to_lowercase()), ""))
                .collect();
            self.wheres.push(format!("action IN ({})", list.join(", ")));
        }
        if let Some(p) = &f.prefix {
            if t != Table::Packets {
                bail!("--prefix filters packets");
            }
            let x = self.bind(Param::Text(format!("%{p}%")), "");
            // SQLite's LIKE ignores ASCII case already.
            let like = if self.d == Dialect::Postgres {
                "ILIKE"
            } else {
                "LIKE"
            };
            self.wheres.push(format!("prefix {like} {x}"));
        }
        if let Some(e) = &f.event {
            if t != Table::Flows {
                bail!("--event filters flows");
            }
            let x = self.bind(Param::Text(e.to_lowercase()), "");
            self.wheres.push(format!("event = {x}"));
        }
        Ok(())
    }

    fn where_clause(&self) -> String {
        if self.wheres.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.wheres.join(" AND "))
        }
    }
}

/// How a column is selected so that both databases print it the same way.
fn select_expr(d: Dialect, name: &str, k: Kind) -> String {
    match (d, k) {
        (Dialect::Postgres, Kind::Time) => {
            format!("to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
        (Dialect::Postgres, Kind::Inet) => format!("host({name})"),
        (Dialect::Postgres, Kind::Mac | Kind::Bool) => format!("{name}::text"),
        (_, Kind::Bool) => format!("CASE {name} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"),
        _ => name.to_string(),
    }
}

/// Rows of a table that pass the filters, newest first.
pub fn select(d: Dialect, t: Table, f: &Filters, limit: u64) -> Result<Statement> {
    let mut b = Builder::new(d);
    b.filters(t, f)?;
    let cols = t.columns();
    let list: Vec<String> = cols
        .iter()
        .map(|c| format!("{} AS {}", select_expr(d, c.name, c.kind), c.name))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY time DESC LIMIT {limit}",
        list.join(", "),
        t.name(),
        b.where_clause()
    );
    Ok(Statement {
        sql,
        params: b.params,
        columns: cols.iter().map(|c| (c.name.to_string(), c.kind)).collect(),
    })
}

pub fn top(d: Dialect, which: Top, f: &Filters, limit: u64) -> Result<Statement> {
    if matches!(which, Top::Sources | Top::DroppedPorts) && from_totals(d, f) {
        if let Some(st) = top_from_totals(which, f, limit) {
            return Ok(st);
        }
    }
    let mut b = Builder::new(d);
    let (table, group, value, extra): (Table, &[(&str, Kind)], &str, Option<&str>) = match which {
        Top::LongestFlows => return longest_flows(d, f, limit),
        Top::Sources => (Table::Packets, &[("src_ip", Kind::Inet)], "count(*)", None),
        Top::DroppedPorts => (
            Table::Packets,
            &[("protocol", Kind::I16), ("dst_port", Kind::I32)],
            "count(*)",
            Some("action IN ('drop', 'reject')"),
        ),
        Top::Talkers => (
            Table::Flows,
            &[("src_ip", Kind::Inet)],
            "sum(coalesce(orig_bytes, 0) + coalesce(reply_bytes, 0))",
            Some("event = 'destroy'"),
        ),
    };
    b.filters(table, f)?;
    if let Some(e) = extra {
        b.wheres.push(e.to_string());
    }
    let names: Vec<&str> = group.iter().map(|g| g.0).collect();
    let list: Vec<String> = group
        .iter()
        .map(|(n, k)| format!("{} AS {n}", select_expr(d, n, *k)))
        .collect();
    let label = if which == Top::Talkers {
        "bytes"
    } else {
        "packets"
    };
    let sql = format!(
        "SELECT {}, {value} AS {label} FROM {}{} GROUP BY {} ORDER BY {label} DESC, {} LIMIT {limit}",
        list.join(", "),
        table.name(),
        b.where_clause(),
        names.join(", "),
        names.join(", ")
    );
    let mut columns: Vec<(String, Kind)> = group.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    columns.push((label.to_string(), Kind::I64));
    if which == Top::Talkers {
        // The flow count, next to the bytes.
        let sql = sql.replace(
            &format!(" AS {label} FROM"),
            &format!(" AS {label}, count(*) AS flows FROM"),
        );
        columns.push(("flows".into(), Kind::I64));
        return Ok(Statement {
            sql,
            params: b.params,
            columns,
        });
    }
    Ok(Statement {
        sql,
        params: b.params,
        columns,
    })
}

/// Ended connections by how long they lasted, longest first.
fn longest_flows(d: Dialect, f: &Filters, limit: u64) -> Result<Statement> {
    let mut b = Builder::new(d);
    b.filters(Table::Flows, f)?;
    b.wheres.push("event = 'destroy'".into());
    b.wheres
        .push("flow_start IS NOT NULL AND flow_end IS NOT NULL".into());
    let seconds = match d {
        Dialect::Postgres => "extract(epoch FROM flow_end - flow_start)::bigint",
        _ => "CAST(round((julianday(flow_end) - julianday(flow_start)) * 86400) AS INTEGER)",
    };
    let cols: [(&str, Kind); 8] = [
        ("protocol", Kind::I16),
        ("src_ip", Kind::Inet),
        ("src_port", Kind::I32),
        ("dst_ip", Kind::Inet),
        ("dst_port", Kind::I32),
        ("nat_src_ip", Kind::Inet),
        ("flow_start", Kind::Time),
        ("flow_end", Kind::Time),
    ];
    let list: Vec<String> = cols
        .iter()
        .map(|(n, k)| format!("{} AS {n}", select_expr(d, n, *k)))
        .collect();
    let sql = format!(
        "SELECT {}, {seconds} AS seconds, coalesce(orig_bytes, 0) + coalesce(reply_bytes, 0) AS bytes \
         FROM flows{} ORDER BY seconds DESC, flow_start LIMIT {limit}",
        list.join(", "),
        b.where_clause()
    );
    let mut columns: Vec<(String, Kind)> = cols.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    columns.push(("seconds".into(), Kind::I64));
    columns.push(("bytes".into(), Kind::I64));
    Ok(Statement {
        sql,
        params: b.params,
        columns,
    })
}

/// How finely `timeline` counts: the length of the UTC time text kept (`2026-12-02T19:4` is a
/// ten-minute bucket), so both databases bucket the same way without date arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Minute,
    TenMinutes,
    Hour,
    Day,
}

impl Step {
    fn chars(self) -> usize {
        match self {
            Step::Minute => 16,
            Step::TenMinutes => 15,
            Step::Hour => 13,
            Step::Day => 10,
        }
    }

    /// The finest step that gives at most about 200 buckets over `seconds`.
    pub fn for_span(seconds: i64) -> Step {
        match seconds {
            s if s <= 200 * 60 => Step::Minute,
            s if s <= 2000 * 60 => Step::TenMinutes,
            s if s <= 200 * 3600 => Step::Hour,
            _ => Step::Day,
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Step::Minute => 60,
            Step::TenMinutes => 600,
            Step::Hour => 3600,
            Step::Day => 86400,
        }
    }
}

/// Packets logged per time bucket and action (drops and accepts over time).
pub fn timeline(d: Dialect, f: &Filters, step: Step) -> Result<Statement> {
    if from_totals(d, f) {
        if let Some(st) = timeline_from_totals(f, step) {
            return Ok(st);
        }
    }
    let mut b = Builder::new(d);
    b.filters(Table::Packets, f)?;
    let text = match d {
        Dialect::Postgres => {
            "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')".to_string()
        }
        _ => "time".to_string(),
    };
    let sql = format!(
        "SELECT substr({text}, 1, {}) AS bucket, coalesce(action, '') AS action, count(*) AS packets \
         FROM packets{} GROUP BY 1, 2 ORDER BY 1, 2",
        step.chars(),
        b.where_clause()
    );
    Ok(Statement {
        sql,
        params: b.params,
        columns: vec![
            ("bucket".into(), Kind::Text),
            ("action".into(), Kind::Text),
            ("packets".into(), Kind::I64),
        ],
    })
}

/// Whether SQLite's running totals (`rollup`) can answer: only time and action filter.
fn from_totals(d: Dialect, f: &Filters) -> bool {
    d == Dialect::Sqlite
        && f.addr.is_none()
        && f.src.is_none()
        && f.dst.is_none()
        && f.port.is_none()
        && f.sport.is_none()
        && f.dport.is_none()
        && f.protocol.is_none()
        && f.prefix.is_none()
        && f.event.is_none()
}

/// A time range cut for the running totals: the whole `unit`s inside it (conditions on the
/// totals' key), the rows of the partial units at its ends, and the rows the totals do not
/// hold yet (each a `WHERE` of its own, so that each reads by its index: time, or rowid).
struct Parts {
    whole: Vec<String>,
    raw: Vec<String>,
    /// `action IN (…)`, for every part.
    action: Option<String>,
    /// The whole units' bounds.
    first: Option<Timestamp>,
    end: Option<Timestamp>,
}

impl Parts {
    /// `WHERE` on the totals, with `more` conditions.
    fn whole_where(&self, more: &[String]) -> String {
        let all: Vec<&String> = self
            .whole
            .iter()
            .chain(more)
            .chain(self.action.as_ref())
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE {}",
                all.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" AND ")
            )
        }
    }

    /// The `UNION ALL` of `select` (the columns of a row) over each raw part, with `more`.
    fn raw_union(&self, select: &str, more: Option<&str>) -> String {
        self.raw
            .iter()
            .map(|w| {
                let mut w = w.clone();
                for c in self.action.iter().map(String::as_str).chain(more) {
                    w.push_str(" AND ");
                    w.push_str(c);
                }
                format!(" UNION ALL SELECT {select} FROM packets WHERE {w}")
            })
            .collect()
    }
}

/// None when no whole unit lies inside the range (the rows alone answer then).
fn split_range(b: &mut Builder, f: &Filters, unit: i64, key: &str) -> Option<Parts> {
    let first = f.since.map(|t| rollup::ceil(t, unit));
    let end = f.until.map(|t| rollup::floor(t, unit));
    if let (Some(a), Some(z)) = (first, end) {
        if a.secs >= z.secs {
            return None;
        }
    }
    let counted = rollup::COUNTED;
    let mut whole = Vec::new();
    let mut edges = Vec::new();
    let mut fresh = vec![format!("rowid > {counted}")];
    if let (Some(s), Some(a)) = (f.since, first) {
        let (p_a, p_s, p_a2, p_s2) = (b.time(a), b.time(s), b.time(a), b.time(s));
        whole.push(format!("{key} >= {p_a}"));
        edges.push(format!("(time >= {p_s} AND time < {p_a2})"));
        // `+time`: read by rowid (the few rows not counted yet), not by the time index.
        fresh.push(format!("+time >= {p_s2}"));
    }
    if let (Some(u), Some(z)) = (f.until, end) {
        let (p_z, p_z2, p_u, p_u2) = (b.time(z), b.time(z), b.time(u), b.time(u));
        whole.push(format!("{key} < {p_z}"));
        edges.push(format!("(time >= {p_z2} AND time < {p_u})"));
        fresh.push(format!("+time < {p_u2}"));
    }
    let mut raw = Vec::new();
    if !edges.is_empty() {
        raw.push(format!("({}) AND rowid <= {counted}", edges.join(" OR ")));
    }
    raw.push(fresh.join(" AND "));
    let action = f.action.as_ref().map(|a| {
        let list: Vec<String> = a
            .split(',')
            .map(|one| b.bind(Param::Text(one.trim().to_lowercase()), ""))
            .collect();
        format!("action IN ({})", list.join(", "))
    });
    Some(Parts {
        whole,
        raw,
        action,
        first,
        end,
    })
}

fn top_from_totals(which: Top, f: &Filters, limit: u64) -> Option<Statement> {
    let mut b = Builder::new(Dialect::Sqlite);
    let parts = split_range(&mut b, f, 3600, "hour")?;
    let (sql, columns) = match which {
        Top::Sources => {
            // Finished whole days from their own table, the whole hours around them from the
            // hours' (each part a range of its index), the rest from the rows.
            let (h1, h2) = (parts.first, parts.end);
            let d1 = h1.map(|t| rollup::ceil(t, 86400));
            let d2 = h2.map(|t| rollup::floor(t, 86400));
            let days_until = rollup::DAYS_UNTIL;
            let dz = match d2 {
                Some(d) => format!("min({}, {days_until})", b.time(d)),
                None => days_until.to_string(),
            };
            let action = parts
                .action
                .as_ref()
                .map(|a| format!(" AND {a}"))
                .unwrap_or_default();
            let mut selects = Vec::new();
            let mut days = vec![format!("day < {dz}")];
            if let Some(d) = d1 {
                days.push(format!("day >= {}", b.time(d)));
            }
            selects.push(format!(
                "SELECT src_ip, packets AS n FROM {} WHERE {}{action}",
                rollup::BY_SOURCE_DAY,
                days.join(" AND ")
            ));
            let before_end = h2.map(|t| format!(" AND hour < {}", b.time(t)));
            let before_end = before_end.unwrap_or_default();
            if let (Some(h), Some(d)) = (h1, d1) {
                selects.push(format!(
                    "SELECT src_ip, packets FROM {} WHERE hour >= {} AND hour < {}{before_end}{action}",
                    rollup::BY_SOURCE,
                    b.time(h),
                    b.time(d)
                ));
            }
            let after_days = match d1 {
                Some(d) => format!("max({}, {dz})", b.time(d)),
                None => dz.clone(),
            };
            let from_start = h1
                .map(|t| format!(" AND hour >= {}", b.time(t)))
                .unwrap_or_default();
            selects.push(format!(
                "SELECT src_ip, packets FROM {} WHERE hour >= {after_days}{from_start}{before_end}{action}",
                rollup::BY_SOURCE
            ));
            let raw = parts.raw_union("coalesce(src_ip, ''), 1", None);
            (
                format!(
                    "SELECT nullif(src_ip, '') AS src_ip, sum(n) AS packets FROM \
                     ({}{raw}) GROUP BY 1 ORDER BY packets DESC, 1 LIMIT {limit}",
                    selects.join(" UNION ALL ")
                ),
                vec![
                    ("src_ip".to_string(), Kind::Inet),
                    ("packets".into(), Kind::I64),
                ],
            )
        }
        _ => {
            let dropped = "action IN ('drop', 'reject')";
            let raw = parts.raw_union(
                "coalesce(protocol, -1), coalesce(dst_port, -1), 1",
                Some(dropped),
            );
            (
                format!(
                    "SELECT nullif(protocol, -1) AS protocol, nullif(dst_port, -1) AS dst_port, sum(n) AS packets FROM \
                     (SELECT protocol, dst_port, packets AS n FROM {}{}{raw}) \
                     GROUP BY protocol, dst_port ORDER BY packets DESC, 1, 2 LIMIT {limit}",
                    rollup::BY_PORT,
                    parts.whole_where(&[dropped.to_string()]),
                ),
                vec![
                    ("protocol".to_string(), Kind::I16),
                    ("dst_port".into(), Kind::I32),
                    ("packets".into(), Kind::I64),
                ],
            )
        }
    };
    Some(Statement {
        sql,
        params: b.params,
        columns,
    })
}

fn timeline_from_totals(f: &Filters, step: Step) -> Option<Statement> {
    let mut b = Builder::new(Dialect::Sqlite);
    let parts = split_range(&mut b, f, 60, "minute")?;
    let n = step.chars();
    let raw = parts.raw_union(
        &format!("substr(time, 1, {n}), coalesce(action, ''), 1"),
        None,
    );
    Some(Statement {
        sql: format!(
            "SELECT bucket, action, sum(n) AS packets FROM \
             (SELECT substr(minute, 1, {n}) AS bucket, action, packets AS n FROM {}{}{raw}) \
             GROUP BY 1, 2 ORDER BY 1, 2",
            rollup::BY_MINUTE,
            parts.whole_where(&[]),
        ),
        params: b.params,
        columns: vec![
            ("bucket".into(), Kind::Text),
            ("action".into(), Kind::Text),
            ("packets".into(), Kind::I64),
        ],
    })
}

/// The NAT question: the connections that left through `ip`:`port` (source NAT) or came in to
/// it and were forwarded inside (destination NAT) and were open at `at`. A connection's rows
/// (NEW, DESTROY) are taken together; one whose end was never recorded is listed, with
/// `open` telling whether `open_flows` still has it.
pub fn nat(d: Dialect, ip: IpAddr, port: Option<u16>, at: Timestamp) -> Statement {
    let mut b = Builder::new(d);
    let ip_s = b.bind(Param::Text(ip.to_string()), "::inet");
    let ip_d = b.bind(Param::Text(ip.to_string()), "::inet");
    let (snat, dnat) = match port {
        Some(p) => {
            let a = b.bind(Param::Int(p.into()), "");
            let c = b.bind(Param::Int(p.into()), "");
            (
                format!("nat_src_ip = {ip_s} AND nat_src_port = {a}"),
                format!("dst_ip = {ip_d} AND dst_port = {c} AND nat_dst_ip IS NOT NULL"),
            )
        }
        None => (
            format!("nat_src_ip = {ip_s}"),
            format!("dst_ip = {ip_d} AND nat_dst_ip IS NOT NULL"),
        ),
    };
    let t1 = b.time(at);
    let t2 = b.time(at);
    let cols: [(&str, Kind); 12] = [
        ("host", Kind::Text),
        ("protocol", Kind::I16),
        ("src_ip", Kind::Inet),
        ("src_port", Kind::I32),
        ("dst_ip", Kind::Inet),
        ("dst_port", Kind::I32),
        ("nat_src_ip", Kind::Inet),
        ("nat_src_port", Kind::I32),
        ("nat_dst_ip", Kind::Inet),
        ("nat_dst_port", Kind::I32),
        ("ct_id", Kind::I64),
        ("zone", Kind::I32),
    ];
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let list: Vec<String> = cols
        .iter()
        .map(|(n, k)| format!("{} AS {n}", select_expr(d, n, *k)))
        .collect();
    let start = select_expr(d, "min(flow_start)", Kind::Time);
    let end = select_expr(d, "max(flow_end)", Kind::Time);
    let sql = format!(
        "SELECT {}, {start} AS flow_start, {end} AS flow_end, \
         EXISTS (SELECT 1 FROM open_flows o WHERE o.host = f.host AND o.ct_id = f.ct_id) AS open \
         FROM flows f WHERE (({snat}) OR ({dnat})) AND flow_start IS NOT NULL \
         GROUP BY {} HAVING min(flow_start) <= {t1} AND (max(flow_end) IS NULL OR max(flow_end) >= {t2}) \
         ORDER BY min(flow_start) DESC LIMIT 1000",
        list.join(", "),
        names.join(", "),
    );
    let mut columns: Vec<(String, Kind)> = cols.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    columns.push(("flow_start".into(), Kind::Time));
    columns.push(("flow_end".into(), Kind::Time));
    columns.push(("open".into(), Kind::Bool));
    Statement {
        sql,
        params: b.params,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_a_parameter() {
        let f = Filters {
            src: Some("10.0.0.0/8".into()),
            dport: Some(22),
            prefix: Some("x'; DROP TABLE packets; --".into()),
            ..Default::default()
        };
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let s = select(d, Table::Packets, &f, 10).unwrap();
            assert!(!s.sql.contains("DROP"), "{}", s.sql);
            assert_eq!(s.params.len(), 3);
        }
        let s = select(Dialect::Postgres, Table::Packets, &f, 10).unwrap();
        assert!(s.sql.contains("src_ip <<= $1::text::inet"), "{}", s.sql);
        let s = select(Dialect::Sqlite, Table::Packets, &f, 10).unwrap();
        assert!(s.sql.contains("in_cidr(src_ip, ?1)"), "{}", s.sql);
    }

    #[test]
    fn filters_that_do_not_fit_the_table_are_refused() {
        let f = Filters {
            action: Some("drop".into()),
            ..Default::default()
        };
        assert!(select(Dialect::Sqlite, Table::Flows, &f, 1).is_err());
        let f = Filters {
            src: Some("not an address".into()),
            ..Default::default()
        };
        assert!(select(Dialect::Sqlite, Table::Packets, &f, 1).is_err());
    }
}
