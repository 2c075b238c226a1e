//! PostgreSQL: each batch is one transaction of binary COPYs, one per table; packets and
//! flows go to daily partitions, which retention drops whole; `open_flows` follows NEW and
//! DESTROY inside the same transaction.

use super::config::{PostgresSinkConfig, TableSet};
use crate::sinks::database::{SchemaError, Store};
use crate::store::ddl::{self, Dialect, VERSION_TABLE};
use crate::store::rows::{Change, Kind, Row, Table, Value};
use anyhow::{Context, Result};
use bytes::{BufMut, BytesMut};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800 * 1_000_000;

/// One value in COPY's binary format, typed by its column.
#[derive(Debug)]
struct Cell<'a>(&'a Value, Kind);

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self.0, self.1) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (Value::Time(t), _) => {
                out.put_i64(t.secs * 1_000_000 + t.micros as i64 - PG_EPOCH_MICROS)
            }
            // PostgreSQL text cannot hold NUL; `coerce` counted it.
            (Value::Text(s), _) if s.contains('\0') => {
                out.put_slice(s.replace('\0', "\u{FFFD}").as_bytes())
            }
            (Value::Text(s), _) => out.put_slice(s.as_bytes()),
            (Value::Int(i), Kind::I16) => {
                out.put_i16((*i).clamp(i16::MIN as i64, i16::MAX as i64) as i16)
            }
            (Value::Int(i), Kind::I32) => {
                out.put_i32((*i).clamp(i32::MIN as i64, i32::MAX as i64) as i32)
            }
            (Value::Int(i), _) => out.put_i64(*i),
            (Value::Inet(a), _) => return a.to_sql(ty, out),
            (Value::Mac(m), _) => out.put_slice(m),
            (Value::Bool(b), _) => out.put_u8(*b as u8),
        }
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// Whether a value must change to fit its column.
fn misfit(v: &Value, k: Kind) -> bool {
    match (v, k) {
        (Value::Text(s), _) => s.contains('\0'),
        (Value::Int(i), Kind::I16) => i16::try_from(*i).is_err(),
        (Value::Int(i), Kind::I32) => i32::try_from(*i).is_err(),
        _ => false,
    }
}

fn pg_type(k: Kind) -> Type {
    match k {
        Kind::Time => Type::TIMESTAMPTZ,
        Kind::Text => Type::TEXT,
        Kind::I16 => Type::INT2,
        Kind::I32 => Type::INT4,
        Kind::I64 => Type::INT8,
        Kind::Inet => Type::INET,
        Kind::Mac => Type::MACADDR,
        Kind::Bool => Type::BOOL,
    }
}

fn day_of(t: event::Timestamp) -> i64 {
    t.secs.div_euclid(86_400)
}

fn day_text(day: i64) -> String {
    let (y, m, d, ..) = event::Timestamp {
        secs: day * 86_400,
        micros: 0,
    }
    .civil(0);
    format!("{y:04}-{m:02}-{d:02}")
}

fn partition_name(t: Table, day: i64) -> String {
    format!("{}_p{}", t.name(), day_text(day).replace('-', ""))
}

fn column_index(t: Table, name: &str) -> usize {
    t.columns().iter().position(|c| c.name == name).unwrap_or(0)
}

pub struct PostgresStore {
    cfg: PostgresSinkConfig,
    client: Option<Client>,
    /// Days whose partitions exist (or could not be made: their rows go to the default one).
    partitions: HashSet<i64>,
    coerced: u64,
}

impl PostgresStore {
    pub fn new(cfg: PostgresSinkConfig) -> Self {
        PostgresStore {
            cfg,
            client: None,
            partitions: HashSet::new(),
            coerced: 0,
        }
    }

    /// Makes the day's partitions of packets and flows; a failure (rows of that day already
    /// in the default partition, say) only means they keep going there.
    fn ensure_partitions(&mut self, day: i64) {
        if !self.partitions.insert(day) {
            return;
        }
        let Some(c) = self.client.as_mut() else {
            return;
        };
        for t in Table::ALL.into_iter().filter(|t| ddl::partitioned(*t)) {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
                partition_name(t, day),
                t.name(),
                day_text(day),
                day_text(day + 1)
            );
            if let Err(e) = c.batch_execute(&sql) {
                tracing::warn!(
                    "postgres: cannot make partition {}: {e}; its rows go to {}_default",
                    partition_name(t, day),
                    t.name()
                );
            }
        }
    }

    fn copy(tx: &mut Transaction, t: Table, rows: &[&Row], coerced: &mut u64) -> Result<()> {
        let cols: Vec<(&str, Kind)> = t.columns().iter().map(|c| (c.name, c.kind)).collect();
        let rows: Vec<&[Value]> = rows.iter().map(|r| r.values.as_slice()).collect();
        copy_values(tx, t.name(), &cols, &rows, coerced)
    }
}

/// COPY of `rows` (values in the order of `cols`) into table `name`, in binary.
fn copy_values(
    tx: &mut Transaction,
    name: &str,
    cols: &[(&str, Kind)],
    rows: &[&[Value]],
    coerced: &mut u64,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = cols.iter().map(|c| c.0).collect();
    let types: Vec<Type> = cols.iter().map(|c| pg_type(c.1)).collect();
    let w = tx.copy_in(&format!(
        "COPY {name} ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    ))?;
    let mut w = BinaryCopyInWriter::new(w, &types);
    for r in rows {
        *coerced += r.iter().zip(cols).filter(|(v, c)| misfit(v, c.1)).count() as u64;
        w.write_raw(r.iter().zip(cols).map(|(v, c)| Cell(v, c.1)))
            .with_context(|| format!("COPY {name}"))?;
    }
    w.finish().with_context(|| format!("COPY {name}"))?;
    Ok(())
}

/// ulogd2's schema must be there already: nflogd writes into it and never changes it.
fn check_ulogd_schema(c: &mut Client) -> Result<()> {
    let missing: Vec<String> = c
        .query(
            "SELECT t FROM unnest(ARRAY['ulog2', 'tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'mac', 'hwhdr', 'ulog2_ct', 'nfacct']) AS t \
             WHERE to_regclass(t) IS NULL",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !missing.is_empty() {
        return Err(SchemaError(format!(
            "tables = \"ulogd\" writes into ulogd2's tables, and {} are missing: load ulogd2's \
             pgsql-ulogd2.sql into this database first",
            missing.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// A batch into ulogd2's tables, as its INSERT_PACKET_FULL, INSERT_CT and INSERT_NFACCT would
/// write it, but by COPY: packet ids are taken from ulog2's sequence for the whole batch, MAC
/// rows are shared (deduplicated) as INSERT_OR_SELECT_MAC does.
fn write_ulogd(tx: &mut Transaction, changes: &[Change], coerced: &mut u64) -> Result<()> {
    use crate::store::ulogd_tables::{
        COUNTER_COLUMNS, FLOW_COLUMNS, PACKET_COLUMNS, PACKET_TABLES,
    };
    let of = |t: Table| -> Vec<&[Value]> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Insert(r) if r.table == t => Some(r.values.as_slice()),
                _ => None,
            })
            .collect()
    };
    let cols = |c: &[crate::store::rows::Column]| -> Vec<(&'static str, Kind)> {
        c.iter().map(|c| (c.name, c.kind)).collect()
    };
    let packets = of(Table::UlogdPacket);
    if !packets.is_empty() {
        let ix = |name: &str| {
            PACKET_COLUMNS
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(0)
        };
        let (raw_type, raw_header) = (ix("raw_type"), ix("raw_header"));
        let (mac_s, mac_d, mac_p) = (ix("mac_saddr"), ix("mac_daddr"), ix("mac_protocol"));
        let ids: Vec<i64> = tx
            .query(
                "SELECT nextval('ulog2__id_seq') FROM generate_series(1, $1::bigint)",
                &[&(packets.len() as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let text = |v: &Value| match v {
            Value::Mac(m) => Some(crate::store::rows::mac_text(m)),
            _ => None,
        };
        let int = |v: &Value| match v {
            Value::Int(i) => Some(*i as i32),
            _ => None,
        };
        let is_ether = |p: &[Value]| p[raw_type] == Value::Int(1) && text(&p[mac_s]).is_some();
        // The MAC rows this batch needs, made if missing, and their ids.
        let mut macs: Vec<(String, Option<String>, Option<i32>)> = packets
            .iter()
            .filter(|p| is_ether(p))
            .map(|p| {
                (
                    text(&p[mac_s]).unwrap_or_default(),
                    text(&p[mac_d]),
                    int(&p[mac_p]),
                )
            })
            .collect();
        macs.sort();
        macs.dedup();
        let mut mac_ids = HashMap::new();
        if !macs.is_empty() {
            let s: Vec<&str> = macs.iter().map(|m| m.0.as_str()).collect();
            let d: Vec<Option<&str>> = macs.iter().map(|m| m.1.as_deref()).collect();
            let p: Vec<Option<i32>> = macs.iter().map(|m| m.2).collect();
            let keys = "unnest($1::text[], $2::text[], $3::int[]) AS k(s, d, p)";
            let same =
                "m.mac_saddr = k.s::macaddr AND m.mac_daddr IS NOT DISTINCT FROM k.d::macaddr \
                        AND m.mac_protocol IS NOT DISTINCT FROM k.p";
            tx.execute(
                &format!(
                    "INSERT INTO mac (mac_saddr, mac_daddr, mac_protocol) SELECT k.s::macaddr, k.d::macaddr, k.p \
                     FROM {keys} WHERE NOT EXISTS (SELECT 1 FROM mac m WHERE {same})"
                ),
                &[&s, &d, &p],
            )?;
            for r in tx.query(
                &format!(
                    "SELECT m._mac_id, m.mac_saddr::text, m.mac_daddr::text, m.mac_protocol FROM mac m JOIN {keys} ON {same}"
                ),
                &[&s, &d, &p],
            )? {
                let key: (String, Option<String>, Option<i32>) = (r.get(1), r.get(2), r.get(3));
                mac_ids.insert(key, r.get::<_, i64>(0));
            }
        }
        // ulog2, with its id and mac_id.
        let mut ulog2_cols = vec![("_id", Kind::I64)];
        ulog2_cols.extend(cols(
            &PACKET_COLUMNS[PACKET_TABLES[0].2..PACKET_TABLES[0].3],
        ));
        ulog2_cols.push(("mac_id", Kind::I64));
        let rows: Vec<Vec<Value>> = packets
            .iter()
            .zip(&ids)
            .map(|(p, id)| {
                let mut v = vec![Value::Int(*id)];
                v.extend_from_slice(&p[PACKET_TABLES[0].2..PACKET_TABLES[0].3]);
                let mac = is_ether(p)
                    .then(|| {
                        let key = (
                            text(&p[mac_s]).unwrap_or_default(),
                            text(&p[mac_d]),
                            int(&p[mac_p]),
                        );
                        mac_ids.get(&key).copied()
                    })
                    .flatten();
                v.push(mac.map_or(Value::Null, Value::Int));
                v
            })
            .collect();
        let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        copy_values(tx, "ulog2", &ulog2_cols, &refs, coerced)?;
        // The protocol tables, chosen by ip_protocol as INSERT_PACKET_FULL does.
        let proto_ix = ix("ip_protocol");
        for (table, id_col, a, b) in &PACKET_TABLES[1..] {
            let want = match *table {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                "icmpv6" => 58,
                _ => 132,
            };
            let mut tcols = vec![(*id_col, Kind::I64)];
            tcols.extend(cols(&PACKET_COLUMNS[*a..*b]));
            let rows: Vec<Vec<Value>> = packets
                .iter()
                .zip(&ids)
                .filter(|(p, _)| p[proto_ix] == Value::Int(want))
                .map(|(p, id)| {
                    let mut v = vec![Value::Int(*id)];
                    v.extend_from_slice(&p[*a..*b]);
                    v
                })
                .collect();
            let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
            copy_values(tx, table, &tcols, &refs, coerced)?;
        }
        // Other link layers: their type in hwhdr.
        let rows: Vec<Vec<Value>> = packets
            .iter()
            .zip(&ids)
            .filter(|(p, _)| !is_ether(p))
            .map(|(p, id)| vec![Value::Int(*id), p[raw_type].clone(), p[raw_header].clone()])
            .collect();
        let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        copy_values(
            tx,
            "hwhdr",
            &[
                ("_hw_id", Kind::I64),
                ("raw_type", Kind::I32),
                ("raw_header", Kind::Text),
            ],
            &refs,
            coerced,
        )?;
    }
    copy_values(
        tx,
        "ulog2_ct",
        &cols(FLOW_COLUMNS),
        &of(Table::UlogdFlow),
        coerced,
    )?;
    copy_values(
        tx,
        "nfacct",
        &cols(COUNTER_COLUMNS),
        &of(Table::UlogdCounter),
        coerced,
    )?;
    Ok(())
}

fn prepare_schema(c: &mut Client) -> Result<()> {
    let mut tx = c.transaction()?;
    // Several nflogd hosts may start against one database at once.
    tx.batch_execute("SELECT pg_advisory_xact_lock(7461006)")?;
    let tables: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let version: Option<i64> = if tables.iter().any(|t| t == VERSION_TABLE) {
        tx.query_one(
            &format!("SELECT max(version)::bigint FROM {VERSION_TABLE}"),
            &[],
        )?
        .get(0)
    } else {
        None
    };
    for (statements, reached) in ddl::steps(
        Dialect::Postgres,
        version,
        &tables,
        "",
        "use another database or schema (search_path)",
    )? {
        for s in &statements {
            tx.batch_execute(s)?;
        }
        tx.execute(
            &format!("INSERT INTO {VERSION_TABLE} (version) VALUES ($1)"),
            &[&(reached as i32)],
        )?;
        tracing::info!("postgres: schema at version {reached}");
    }
    tx.commit()?;
    Ok(())
}

/// Connects as the sink's URL says, over TLS unless it says `sslmode=disable` (or names only
/// Unix sockets). There is no plaintext fallback: `prefer` (the default) would connect in the
/// clear to a server, or to whoever is in the middle, that declines TLS. The server's
/// certificate is checked against `ca_file`, or the system's CAs.
pub fn connect(cfg: &PostgresSinkConfig) -> Result<Client> {
    use postgres::config::{Host, SslMode};
    let mut pg: postgres::Config = cfg.url.parse().context("url")?;
    let local = pg.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
    let plaintext = local || pg.get_ssl_mode() == SslMode::Disable;
    let client = if plaintext {
        pg.connect(postgres::NoTls)
    } else {
        pg.ssl_mode(SslMode::Require);
        let tls = crate::tls::client_config(
            cfg.ca_file.as_deref(),
            cfg.cert_file.as_deref(),
            cfg.key_file.as_deref(),
        )?;
        pg.connect(tokio_postgres_rustls::MakeRustlsConnect::new(
            (*tls).clone(),
        ))
    };
    let how = if plaintext {
        "in plaintext (sslmode=disable)"
    } else {
        "over TLS (a server without it needs sslmode=disable in the url)"
    };
    // The URL may carry a password: name only where it failed.
    let hosts = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    client.with_context(|| format!("cannot connect to PostgreSQL at {hosts} {how}"))
}

impl Store for PostgresStore {
    fn connect(&mut self) -> Result<()> {
        let mut c = connect(&self.cfg)?;
        if self.cfg.tables == TableSet::Ulogd {
            check_ulogd_schema(&mut c)?;
            self.client = Some(c);
            return Ok(());
        }
        prepare_schema(&mut c)?;
        self.client = Some(c);
        self.partitions.clear();
        let today = day_of(event::Timestamp::now());
        self.ensure_partitions(today);
        self.ensure_partitions(today + 1);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    fn disconnect(&mut self) {
        self.client = None;
    }

    fn write(&mut self, changes: &[Change]) -> Result<()> {
        if self.cfg.tables == TableSet::Ulogd {
            let client = self.client.as_mut().context("not connected")?;
            let mut tx = client.transaction()?;
            write_ulogd(&mut tx, changes, &mut self.coerced)?;
            tx.commit()?;
            return Ok(());
        }
        let mut days = BTreeSet::new();
        for ch in changes {
            if let Change::Insert(r) = ch {
                if ddl::partitioned(r.table) {
                    if let Some(Value::Time(t)) = r.values.first() {
                        days.insert(day_of(*t));
                    }
                }
            }
        }
        // Only days near now get partitions; a clock far off fills the default partition
        // rather than creating thousands of tables.
        let today = day_of(event::Timestamp::now());
        let keep = (self.cfg.retention.0.as_secs() / 86_400).max(31) as i64;
        for d in days
            .into_iter()
            .filter(|d| *d >= today - keep && *d <= today + 1)
        {
            self.ensure_partitions(d);
        }
        let mut by_table: HashMap<Table, Vec<&Row>> = HashMap::new();
        // The last word on each open connection in this batch: its row, or closed.
        let mut open: HashMap<(String, i64), Option<&Row>> = HashMap::new();
        let (host_ix, id_ix) = (
            column_index(Table::OpenFlows, "host"),
            column_index(Table::OpenFlows, "ct_id"),
        );
        for ch in changes {
            match ch {
                Change::Insert(r) if r.table == Table::OpenFlows => {
                    let host = match &r.values[host_ix] {
                        Value::Text(h) => h.to_string(),
                        _ => String::new(),
                    };
                    if let Value::Int(id) = r.values[id_ix] {
                        open.insert((host, id), Some(r));
                    }
                }
                Change::Insert(r) => by_table.entry(r.table).or_default().push(r),
                Change::Close { host, ct_id } => {
                    open.insert((host.clone(), *ct_id), None);
                }
            }
        }
        let client = self.client.as_mut().context("not connected")?;
        let mut tx = client.transaction()?;
        for t in [
            Table::Packets,
            Table::Flows,
            Table::Counters,
            Table::RawLines,
        ] {
            if let Some(rows) = by_table.get(&t) {
                Self::copy(&mut tx, t, rows, &mut self.coerced)?;
            }
        }
        if !open.is_empty() {
            let hosts: Vec<&str> = open.keys().map(|k| k.0.as_str()).collect();
            let ids: Vec<i64> = open.keys().map(|k| k.1).collect();
            tx.execute(
                "DELETE FROM open_flows o USING unnest($1::text[], $2::bigint[]) AS k(host, id) \
                 WHERE o.host = k.host AND o.ct_id = k.id",
                &[&hosts, &ids],
            )?;
            let rows: Vec<&Row> = open.values().filter_map(|r| *r).collect();
            Self::copy(&mut tx, Table::OpenFlows, &rows, &mut self.coerced)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn maintain(&mut self) -> Result<()> {
        if self.cfg.tables == TableSet::Ulogd {
            // ulogd2's tables are the user's: no partitions, no retention.
            return Ok(());
        }
        let today = day_of(event::Timestamp::now());
        self.ensure_partitions(today);
        self.ensure_partitions(today + 1);
        let days = self.cfg.retention.0.as_secs() / 86_400;
        if days == 0 {
            return Ok(());
        }
        let oldest = today - days as i64;
        let c = self.client.as_mut().context("not connected")?;
        for t in Table::ALL.into_iter().filter(|t| ddl::partitioned(*t)) {
            let parts: Vec<String> = c
                .query(
                    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = $1::text::regclass",
                    &[&t.name()],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let prefix = format!("{}_p", t.name());
            for p in parts {
                let Some(day) = p.strip_prefix(&prefix) else {
                    continue;
                };
                if day.len() == 8 && *day < *day_text(oldest).replace('-', "") {
                    c.batch_execute(&format!("DROP TABLE IF EXISTS {p}"))?;
                    tracing::info!("postgres: retention dropped partition {p}");
                }
            }
        }
        let cutoff = format!("{} 00:00:00+00", day_text(oldest));
        for t in [
            "packets_default",
            "flows_default",
            Table::Counters.name(),
            Table::RawLines.name(),
        ] {
            c.execute(
                &format!("DELETE FROM {t} WHERE time < $1::text::timestamptz"),
                &[&cutoff],
            )?;
        }
        self.partitions.retain(|d| *d >= oldest);
        Ok(())
    }

    fn take_coerced(&mut self) -> u64 {
        std::mem::take(&mut self.coerced)
    }
}
