//! SQLite as the embedded store: one file in WAL mode, one transaction per batch, prepared
//! statements, retention by age and by size.

use crate::sinks::database::Store;
use crate::store::ddl::{self, Dialect, VERSION_TABLE};
use crate::store::rows::{mac_text, time_text, Change, Table, Value};
use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// A row value as SQLite stores it.
struct Cell<'a>(&'a Value);

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Time(t) => ToSqlOutput::from(time_text(*t)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(i) => ToSqlOutput::from(*i),
            Value::Inet(a) => ToSqlOutput::from(a.to_string()),
            Value::Mac(m) => ToSqlOutput::from(mac_text(m)),
            Value::Bool(b) => ToSqlOutput::from(*b as i64),
        })
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
    /// The INSERT of each table, by table code.
    inserts: Vec<String>,
    path: PathBuf,
    conn: Option<Connection>,
    retention: std::time::Duration,
    max_size: u64,
}

impl SqliteStore {
    pub fn new(path: PathBuf, retention: std::time::Duration, max_size: u64) -> Self {
        SqliteStore {
            inserts: Table::ALL.iter().map(|t| insert_sql(*t)).collect(),
            path,
            conn: None,
            retention,
            max_size,
        }
    }

    fn open(&self) -> Result<Connection> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let c = Connection::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        // Before any table exists, so a new file can give deleted space back.
        c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
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

fn insert_sql(t: Table) -> String {
    let cols = t.columns();
    let names: Vec<_> = cols.iter().map(|c| c.name).collect();
    let marks: Vec<_> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    // A NEW seen twice (a resync after lost events) replaces its open row.
    let verb = if t == Table::OpenFlows {
        "INSERT OR REPLACE"
    } else {
        "INSERT"
    };
    format!(
        "{verb} INTO {} ({}) VALUES ({})",
        t.name(),
        names.join(", "),
        marks.join(", ")
    )
}

impl Store for SqliteStore {
    fn connect(&mut self) -> Result<()> {
        self.conn = Some(self.open()?);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.pragma_update(None, "optimize", "");
        }
    }

    fn write(&mut self, changes: &[Change]) -> Result<()> {
        let c = self.conn.as_mut().context("not open")?;
        let tx = c.transaction()?;
        for ch in changes {
            match ch {
                Change::Insert(r) => {
                    let mut st = tx.prepare_cached(&self.inserts[r.table.code() as usize])?;
                    st.execute(params_from_iter(r.values.iter().map(Cell)))?;
                }
                Change::Close { host, ct_id } => {
                    let mut st = tx
                        .prepare_cached("DELETE FROM open_flows WHERE host IS ?1 AND ct_id = ?2")?;
                    st.execute(rusqlite::params![host, ct_id])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn maintain(&mut self) -> Result<()> {
        let Some(c) = self.conn.as_ref() else {
            return Ok(());
        };
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
                for t in [Table::Packets, Table::Flows, Table::RawLines] {
                    // The oldest tenth, by insertion order.
                    c.execute(
                        &format!(
                            "DELETE FROM {0} WHERE rowid <= (SELECT min(rowid) + (max(rowid) - min(rowid)) / 10 FROM {0})",
                            t.name()
                        ),
                        [],
                    )?;
                }
                tracing::warn!(
                    "sqlite: {} is over max_size; deleted the oldest tenth of packets and flows",
                    self.path.display()
                );
            }
            c.execute_batch("PRAGMA incremental_vacuum")?;
        }
        Ok(())
    }
}
