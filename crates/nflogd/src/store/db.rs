//! Running a `store::query` statement on the SQLite or PostgreSQL store, for `nflogd query`
//! and the HTTP API: every value comes back as text, and `json_rows` types them again.

use super::ddl::Dialect;
use super::query::{Param, Statement};
use super::rows::Kind;
use crate::config::{Config, SinkConfig};
use crate::sinks::postgres::PostgresSinkConfig;
use anyhow::{bail, Context, Result};

/// Where the store is: a SQLite file or a PostgreSQL URL, with the TLS files of the sink it
/// came from.
#[derive(Clone, Debug)]
pub struct StoreSpec {
    pub spec: String,
    pub postgres: Option<Box<PostgresSinkConfig>>,
}

impl StoreSpec {
    /// The first sqlite or postgres sink of a configuration.
    pub fn of_config(cfg: &Config) -> Option<StoreSpec> {
        cfg.sinks.values().find_map(|s| match s {
            SinkConfig::Sqlite(s) => Some(StoreSpec {
                spec: s.path.display().to_string(),
                postgres: None,
            }),
            SinkConfig::Postgres(p) => Some(StoreSpec {
                spec: p.url.clone(),
                postgres: Some(Box::new(p.clone())),
            }),
            _ => None,
        })
    }

    pub fn open(&self) -> Result<Db> {
        Db::open(&self.spec, self.postgres.as_deref())
    }
}

pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Db {
    /// Opens `spec`: a SQLite file, or a PostgreSQL URL, connected with the TLS files of the
    /// sink it came from (`sink`), if any.
    pub fn open(spec: &str, sink: Option<&PostgresSinkConfig>) -> Result<Db> {
        let is_pg = spec.starts_with("postgres://")
            || spec.starts_with("postgresql://")
            || spec.contains("host=")
            || spec.contains("dbname=");
        if is_pg {
            let url_only = PostgresSinkConfig::for_url(spec);
            return Ok(Db::Postgres(Box::new(crate::sinks::postgres::connect(
                sink.unwrap_or(&url_only),
            )?)));
        }
        let path = spec.strip_prefix("sqlite:").unwrap_or(spec);
        if !std::path::Path::new(path).exists() {
            bail!("{path}: no such store (has nflogd written to it yet?)");
        }
        Ok(Db::Sqlite(crate::sinks::sqlite::open_for_query(
            path.as_ref(),
        )?))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }
    /// Runs a statement; every value comes back as text (None for NULL).
    pub fn run(&mut self, st: &Statement) -> Result<Vec<Vec<Option<String>>>> {
        match self {
            Db::Sqlite(c) => {
                let mut s = c.prepare(&st.sql).context("preparing the query")?;
                let params: Vec<rusqlite::types::Value> = st
                    .params
                    .iter()
                    .map(|p| match p {
                        Param::Text(t) => rusqlite::types::Value::Text(t.clone()),
                        Param::Int(i) => rusqlite::types::Value::Integer(*i),
                    })
                    .collect();
                let n = st.columns.len();
                let rows = s.query_map(rusqlite::params_from_iter(params), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                                rusqlite::types::Value::Null => None,
                                rusqlite::types::Value::Integer(v) => Some(v.to_string()),
                                rusqlite::types::Value::Real(v) => Some(v.to_string()),
                                rusqlite::types::Value::Text(v) => Some(v),
                                rusqlite::types::Value::Blob(v) => {
                                    Some(String::from_utf8_lossy(&v).into_owned())
                                }
                            })
                        })
                        .collect()
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Db::Postgres(c) => {
                let params: Vec<Box<dyn postgres::types::ToSql + Sync>> = st
                    .params
                    .iter()
                    .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                        match p {
                            Param::Text(t) => Box::new(t.clone()),
                            Param::Int(i) => Box::new(*i),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|b| b.as_ref()).collect();
                // Cast every column to text on the server: one decoding path for all types.
                let sql = format!(
                    "SELECT {} FROM ({}) q",
                    (0..st.columns.len())
                        .map(|i| format!("q.{}::text", quote(&st.columns[i].0)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    st.sql
                );
                let rows = c.query(&sql, &refs).context("running the query")?;
                Ok(rows
                    .iter()
                    .map(|r| (0..st.columns.len()).map(|i| r.get(i)).collect())
                    .collect())
            }
        }
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Rows as JSON objects: integers and booleans typed, NULLs left out.
pub fn json_rows(st: &Statement, rows: &[Vec<Option<String>>]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for ((name, kind), v) in st.columns.iter().zip(r) {
                let v = match (v, kind) {
                    (None, _) => continue,
                    (Some(s), Kind::I16 | Kind::I32 | Kind::I64) => s
                        .parse::<i64>()
                        .map(serde_json::Value::from)
                        .unwrap_or_else(|_| s.clone().into()),
                    (Some(s), Kind::Bool) => (s == "true").into(),
                    (Some(s), _) => s.clone().into(),
                };
                o.insert(name.clone(), v);
            }
            serde_json::Value::Object(o)
        })
        .collect()
}
