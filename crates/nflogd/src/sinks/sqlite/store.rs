//! SQLite as the embedded store: one file in WAL mode, one transaction per batch, prepared
//! statements, retention by age and by size.

use crate::sinks::database::Store;
use crate::store::ddl::{self, Dialect, VERSION_TABLE};
use crate::store::rollup::{self, Totals};
use crate::store::rows::{time_text, Change, Table, Value};
use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// Binds `v` as parameter `i` of `st`. Text made here (times, addresses, MACs) is composed in
/// `scratch` and copied by SQLite: formatting each into a fresh String was a fifth of the
/// sink's CPU per row.
fn bind(
    st: &mut rusqlite::CachedStatement<'_>,
    i: usize,
    v: &Value,
    scratch: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    let text = |st: &mut rusqlite::CachedStatement<'_>, b: &[u8]| {
        st.raw_bind_parameter(i, ToSqlOutput::Borrowed(ValueRef::Text(b)))
    };
    scratch.clear();
    match v {
        Value::Null => st.raw_bind_parameter(i, ToSqlOutput::Borrowed(ValueRef::Null)),
        Value::Time(t) => {
            t.write_rfc3339_utc(scratch);
            text(st, scratch)
        }
        Value::Text(s) => text(st, s.as_bytes()),
        Value::Int(n) => st.raw_bind_parameter(i, *n),
        Value::Inet(a) => {
            crate::schema::ip_text(*a, scratch);
            text(st, scratch)
        }
        Value::Mac(m) => {
            crate::schema::mac_colon(m, scratch);
            text(st, scratch)
        }
        Value::Bool(b) => st.raw_bind_parameter(i, *b as i64),
    }
}

/// `in_cidr(address, 'net/len')`: the CIDR filter of `nflogd query`, since SQLite keeps
/// addresses as text.
fn register_functions(c: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    c.create_scalar_function(
        "in_cidr",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let addr: Option<String> = ctx.get(0)?;
            let net: String = ctx.get(1)?;
            let (Some(addr), Ok(net)) = (addr, net.parse::<ipnet::IpNet>()) else {
                return Ok(false);
            };
            Ok(addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| net.contains(&a)))
        },
    )?;
    Ok(())
}

/// Opens a store file for reading (`nflogd query`).
pub fn open_for_query(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    register_functions(&c)?;
    Ok(c)
}

pub struct SqliteStore {
    /// The running totals of the transaction being written (`store::rollup`).
    totals: Totals,
    packet_columns: rollup::Columns,
    /// The INSERT of each table, by table code: of one row, and of `ROWS_PER_INSERT` rows.
    inserts: Vec<(String, String)>,
    path: PathBuf,
    conn: Option<Connection>,
    checkpointer: Option<Checkpointer>,
    retention: std::time::Duration,
    max_size: u64,
}

/// Copies the write-ahead log into the database from a thread and connection of its own, so
/// the sink's thread only appends to the log. Done by the writer itself (SQLite's automatic
/// checkpoint), it was 7 % of the sink's CPU per row on a flood, on the thread that limits it.
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(1))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    // PASSIVE never waits for the writer: what it cannot copy yet waits for the
                    // next round.
                    if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        crate::rate_limited_warn!("sqlite: checkpoint failed: {e}");
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    /// Writes the counts held in memory. A failure leaves them there for the next try (the
    /// packets themselves are written; queries count what the totals lack from the rows).
    fn flush_totals(&mut self) {
        let Some(c) = self.conn.as_mut() else { return };
        if self.totals.is_empty() {
            return;
        }
        if let Err(e) = self.totals.write(c) {
            crate::rate_limited_warn!("sqlite: writing packet totals: {e:#}");
        }
    }

    pub fn new(path: PathBuf, retention: std::time::Duration, max_size: u64) -> Self {
        SqliteStore {
            inserts: Table::ALL
                .iter()
                .map(|t| (insert_sql(*t, 1), insert_sql(*t, ROWS_PER_INSERT)))
                .collect(),
            path,
            conn: None,
            checkpointer: None,
            retention,
            max_size,
            totals: Totals::default(),
            packet_columns: rollup::Columns::of_packets(),
        }
    }

    fn open(&self) -> Result<Connection> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::files::refuse_symlink(&self.path)?;
        let c = Connection::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        // Before any table exists, so a new file can give deleted space back.
        c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        // The checkpointer thread does it (and the last connection to close).
        c.pragma_update(None, "wal_autocheckpoint", 0)?;
        prepare_schema(&c).with_context(|| format!("{}", self.path.display()))?;
        Ok(c)
    }
}

fn prepare_schema(c: &Connection) -> Result<()> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let version: Option<i64> = if tables.iter().any(|t| t == VERSION_TABLE) {
        c.query_row(
            &format!("SELECT max(version) FROM {VERSION_TABLE}"),
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten()
    } else {
        None
    };
    for (statements, reached) in
        ddl::steps(Dialect::Sqlite, version, &tables, "", "use another file")?
    {
        let tx = c.unchecked_transaction()?;
        for s in &statements {
            tx.execute_batch(s)?;
        }
        tx.execute(
            &format!("INSERT INTO {VERSION_TABLE} VALUES (?1, datetime('now'))"),
            [reached],
        )?;
        tx.commit()?;
        tracing::info!("sqlite: schema at version {reached}");
    }
    Ok(())
}

/// Rows bound to one INSERT statement: one step then writes them all, which took a sixth off
/// the sink's CPU per row against a statement per row.
const ROWS_PER_INSERT: usize = 16;

fn insert_sql(t: Table, rows: usize) -> String {
    let cols = t.columns();
    let names: Vec<_> = cols.iter().map(|c| c.name).collect();
    let marks: Vec<_> = (0..rows)
        .map(|r| {
            let row: Vec<_> = (1..=cols.len())
                .map(|i| format!("?{}", r * cols.len() + i))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    // A NEW seen twice (a resync after lost events) replaces its open row.
    let verb = if t == Table::OpenFlows {
        "INSERT OR REPLACE"
    } else {
        "INSERT"
    };
    format!(
        "{verb} INTO {} ({}) VALUES {}",
        t.name(),
        names.join(", "),
        marks.join(", ")
    )
}

impl Store for SqliteStore {
    fn connect(&mut self) -> Result<()> {
        let mut c = self.open()?;
        // What an upgrade or a crash left uncounted (at most a flush interval's packets).
        let n = rollup::catch_up(&mut c)
            .with_context(|| format!("{}: counting packet totals", self.path.display()))?;
        if n > 0 {
            tracing::info!("sqlite: counted {n} stored packets into the running totals");
        }
        rollup::compact(&mut c, event::Timestamp::now())?;
        rollup::sum_days(&mut c)?;
        self.totals = Totals::default();
        self.conn = Some(c);
        self.checkpointer = Some(Checkpointer::start(&self.path)?);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn disconnect(&mut self) {
        self.checkpointer = None;
        self.flush_totals();
        if let Some(c) = self.conn.take() {
            let _ = c.pragma_update(None, "optimize", "");
        }
    }

    fn write(&mut self, changes: &[Change]) -> Result<()> {
        // This transaction's counts, kept only once it is committed.
        let mut counted = Totals::default();
        let c = self.conn.as_mut().context("not open")?;
        let tx = c.transaction()?;
        let mut scratch = Vec::with_capacity(64);
        let mut rest = changes;
        while let Some(first) = rest.first() {
            match first {
                Change::Insert(r) => {
                    // A run of rows for one table shares one statement lookup.
                    let run = rest
                        .iter()
                        .position(|c| !matches!(c, Change::Insert(o) if o.table == r.table))
                        .unwrap_or(rest.len());
                    let (one, many) = &self.inserts[r.table.code() as usize];
                    let rows = || {
                        rest[..run].iter().filter_map(|c| match c {
                            Change::Insert(row) => Some(&row.values),
                            Change::Close { .. } => None,
                        })
                    };
                    if r.table == Table::Packets {
                        for values in rows() {
                            counted.count(self.packet_columns, values);
                        }
                    }
                    let whole = run / ROWS_PER_INSERT * ROWS_PER_INSERT;
                    if whole > 0 {
                        let mut st = tx.prepare_cached(many)?;
                        let mut i = 0;
                        for values in rows().take(whole) {
                            for v in values {
                                i += 1;
                                bind(&mut st, i, v, &mut scratch)?;
                            }
                            if i == values.len() * ROWS_PER_INSERT {
                                st.raw_execute()?;
                                i = 0;
                            }
                        }
                    }
                    let mut st = tx.prepare_cached(one)?;
                    for values in rows().skip(whole) {
                        for (i, v) in values.iter().enumerate() {
                            bind(&mut st, i + 1, v, &mut scratch)?;
                        }
                        st.raw_execute()?;
                    }
                    if r.table == Table::Packets {
                        counted.last_rowid = tx.last_insert_rowid();
                    }
                    rest = &rest[run..];
                }
                Change::Close { host, ct_id } => {
                    let mut st = tx
                        .prepare_cached("DELETE FROM open_flows WHERE host IS ?1 AND ct_id = ?2")?;
                    st.execute(rusqlite::params![host, ct_id])?;
                    rest = &rest[1..];
                }
            }
        }
        tx.commit()?;
        if !counted.is_empty() {
            self.totals.merge(counted);
        }
        if self.totals.due() {
            self.flush_totals();
        }
        Ok(())
    }

    fn maintain(&mut self) -> Result<()> {
        self.flush_totals();
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        rollup::compact(c, event::Timestamp::now())?;
        rollup::sum_days(c)?;
        if !self.retention.is_zero() {
            let now = event::Timestamp::now();
            let cutoff = time_text(event::Timestamp {
                secs: now.secs - self.retention.as_secs() as i64,
                micros: 0,
            });
            for t in Table::ALL.iter().filter(|t| **t != Table::OpenFlows) {
                let n = c.execute(
                    &format!("DELETE FROM {} WHERE time < ?1", t.name()),
                    [&cutoff],
                )?;
                if n > 0 {
                    tracing::info!("sqlite: retention deleted {n} rows from {}", t.name());
                }
            }
            // The hour (and minute) the cutoff falls in keeps its totals.
            rollup::prune(
                c,
                event::Timestamp {
                    secs: now.secs - self.retention.as_secs() as i64,
                    micros: 0,
                },
            )?;
        }
        if self.max_size > 0 {
            // Deleted rows leave free pages that new rows reuse: what counts is the pages in use.
            let used = |c: &Connection| -> Result<u64> {
                let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                let count: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
                Ok(((count - free) * page) as u64)
            };
            let mut rounds = 0;
            while used(c)? > self.max_size && rounds < 20 {
                rounds += 1;
                // The running totals are appended in time order like the rows: they are
                // trimmed alike, or a log of new addresses would keep them over the cap.
                let tables = [Table::Packets, Table::Flows, Table::RawLines]
                    .map(|t| t.name())
                    .into_iter()
                    .chain(rollup::TABLES);
                for t in tables {
                    // The oldest tenth, by insertion order.
                    c.execute(
                        &format!(
                            "DELETE FROM {t} WHERE rowid <= (SELECT min(rowid) + (max(rowid) - min(rowid)) / 10 FROM {t})"
                        ),
                        [],
                    )?;
                }
                tracing::warn!(
                    "sqlite: {} is over max_size; deleted the oldest tenth of packets and flows",
                    self.path.display()
                );
                // Totals of the hours whose packets are all gone.
                let oldest: Option<String> =
                    c.query_row("SELECT min(time) FROM packets", [], |r| r.get(0))?;
                if let Some(t) = oldest.and_then(|t| crate::query_cmd::parse_time(&t).ok()) {
                    rollup::prune(c, t)?;
                }
            }
            c.execute_batch("PRAGMA incremental_vacuum")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store made by schema version 1 (packets indexed by address and port, no decisions
    /// table) is brought to version 3 at the next start: those indexes go, the guards' table
    /// comes, the rows stay, each step is recorded.
    #[test]
    fn a_version_1_store_is_migrated() {
        let dir = std::env::temp_dir().join(format!("nflogd-sqlite-mig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("old.db");
        let mut st = SqliteStore::new(path.clone(), std::time::Duration::ZERO, 0);
        st.connect().unwrap();
        st.disconnect();
        // What version 1 left: its three indexes and its version row.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE INDEX packets_src ON packets (src_ip);
             CREATE INDEX packets_dst ON packets (dst_ip);
             CREATE INDEX packets_dport ON packets (dst_port);
             DROP TABLE decisions;
             DROP TABLE packets_by_source; DROP TABLE packets_by_port; DROP TABLE packets_by_minute;
             DELETE FROM nflogd_schema;
             INSERT INTO nflogd_schema VALUES (1, '2026-11-01 00:00:00');
             INSERT INTO packets (time, src_ip, dst_port) VALUES ('2026-11-01T00:00:00.000000Z', '192.0.2.1', 22);",
        )
        .unwrap();
        drop(c);
        let indexes = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'packets' ORDER BY 1")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        st.connect().unwrap();
        st.disconnect();
        let c = Connection::open(&path).unwrap();
        assert_eq!(indexes(&c), ["packets_time"]);
        let versions: Vec<i64> = c
            .prepare("SELECT version FROM nflogd_schema ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(versions, [1, 2, 3, 4]);
        // Version 4 counted the packet already there into the running totals.
        let total: (String, String, i64) = c
            .query_row(
                "SELECT hour, src_ip, packets FROM packets_by_source",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            total,
            ("2026-11-01T00:00:00.000000Z".into(), "192.0.2.1".into(), 1)
        );
        let decisions: i64 = c
            .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(decisions, 0);
        let kept: i64 = c
            .query_row(
                "SELECT count(*) FROM packets WHERE src_ip = '192.0.2.1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A statement's rows, as `nflogd query` reads them.
    fn rows_of(path: &Path, s: &crate::store::query::Statement) -> Vec<Vec<Option<String>>> {
        crate::store::db::Db::Sqlite(open_for_query(path).unwrap())
            .run(s)
            .unwrap()
    }

    /// The running totals answer exactly what the rows answer, for ranges that start and end
    /// inside hours and minutes, with and without an action filter.
    #[test]
    fn totals_answer_as_the_rows_do() {
        use crate::store::ddl::Dialect;
        use crate::store::query::{self, Filters, Step, Top};
        use crate::store::rows::{Row, PACKET_COLUMNS};
        let dir = std::env::temp_dir().join(format!("nflogd-sqlite-totals-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("t.db");
        let mut st = SqliteStore::new(path.clone(), std::time::Duration::ZERO, 0);
        st.connect().unwrap();
        let at = |name: &str| PACKET_COLUMNS.iter().position(|c| c.name == name).unwrap();
        let start = 1_795_442_400; // 2026-11-23T14:00:00Z
        let mut changes = Vec::new();
        let mut x: u64 = 7;
        for i in 0..3000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut values = vec![Value::Null; PACKET_COLUMNS.len()];
            // Over three and a half days; the last hundred rows come late, into the first day.
            let secs = if i >= 2900 { (i - 2900) * 300 } else { i * 97 };
            values[at("time")] = Value::Time(event::Timestamp {
                secs: start + secs as i64,
                micros: (x >> 40) as u32 % 1_000_000,
            });
            values[at("action")] = match x >> 60 {
                0..=7 => Value::Text("drop".into()),
                8..=11 => Value::Text("accept".into()),
                12..=13 => Value::Text("reject".into()),
                _ => Value::Null,
            };
            if x >> 59 & 1 == 0 {
                values[at("src_ip")] =
                    Value::Inet(std::net::IpAddr::from([198, 51, 100, (x >> 33) as u8 % 7]));
            }
            values[at("protocol")] = Value::Int(17);
            values[at("dst_port")] = Value::Int(((x >> 20) % 5) as i64 + 20);
            changes.push(Change::Insert(Row {
                table: Table::Packets,
                values,
            }));
            if changes.len() == 500 {
                st.write(&changes).unwrap();
                changes.clear();
            }
            // Two thirds written to the totals and merged by hour, the rest still in memory
            // (counted from the rows by the queries).
            if i == 2000 {
                st.maintain().unwrap();
            }
        }
        st.write(&changes).unwrap();
        let c0 = open_for_query(&path).unwrap();
        let (counted, merged): (i64, i64) = c0
            .query_row(
                "SELECT (SELECT counted_rowid FROM packet_totals_state), (SELECT count(*) FROM packets_by_minute)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!((1500..3000).contains(&counted), "{counted}");
        assert!(merged > 0);
        drop(c0);
        let run = |s: &query::Statement| rows_of(&path, s);
        let compare = || {
            let t = |secs: i64, micros: u32| {
                Some(event::Timestamp {
                    secs: start + secs,
                    micros,
                })
            };
            for (since, until) in [
                (None, None),
                (t(0, 0), t(3 * 3600, 0)),
                (t(1234, 5), t(7777, 9)),
                (t(3599, 999_999), None),
                (None, t(10_000, 1)),
                (t(100, 0), t(200, 0)),
                (t(1234, 5), t(200_000, 9)),
                (t(36_000, 0), t(122_400, 0)),
                (None, t(150_000, 1)),
                (t(30_000, 0), None),
            ] {
                for action in [
                    None,
                    Some("drop,reject".to_string()),
                    Some("accept".to_string()),
                ] {
                    let totals = Filters {
                        since,
                        until,
                        action: action.clone(),
                        ..Default::default()
                    };
                    // A protocol filter every row passes makes the same question go to the rows.
                    let rows = Filters {
                        protocol: Some(17),
                        ..totals.clone()
                    };
                    for which in [Top::Sources, Top::DroppedPorts] {
                        let a = query::top(Dialect::Sqlite, which, &totals, 50).unwrap();
                        let b = query::top(Dialect::Sqlite, which, &rows, 50).unwrap();
                        assert_ne!(a.sql, b.sql);
                        assert_eq!(
                            run(&a),
                            run(&b),
                            "{which:?} {since:?}..{until:?} {action:?}\n{}",
                            a.sql
                        );
                    }
                    for step in [Step::Minute, Step::TenMinutes, Step::Hour] {
                        let a = query::timeline(Dialect::Sqlite, &totals, step).unwrap();
                        let b = query::timeline(Dialect::Sqlite, &rows, step).unwrap();
                        assert_eq!(run(&a), run(&b), "{step:?} {since:?}..{until:?} {action:?}");
                    }
                }
            }
        };
        // The last rows still in memory (counted from the rows), then written (late rows of a
        // summed day go into the day's totals too).
        compare();
        st.maintain().unwrap();
        let late: i64 = open_for_query(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM packets_by_source_day", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(late > 0);
        compare();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
