//! ClickHouse: each batch is one `INSERT … FORMAT RowBinary` per table, over HTTP.
//!
//! Own RowBinary encoding rather than the `clickhouse` crate: the rows here are one column
//! list shared with SQLite and PostgreSQL (store::rows), not a Rust struct per table, and the
//! sink threads are synchronous; the crate wants both (and a tokio runtime). The encoding of
//! the few types used is a dozen lines. Works with ClickHouse 18.16 (Debian 12) and later.

use super::config::ClickHouseSinkConfig;
use super::http::{Client, Endpoint, Unreachable};
use crate::sinks::database::Store;
use crate::store::ddl::{self, Dialect, VERSION_TABLE};
use crate::store::rows::{Change, Kind, Row, Table, Value};
use anyhow::Result;
use std::net::IpAddr;

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// One value in RowBinary; every column but `time` is Nullable.
fn encode(v: &Value, k: Kind, nullable: bool, out: &mut Vec<u8>) {
    if nullable {
        if *v == Value::Null {
            out.push(1);
            return;
        }
        out.push(0);
    }
    match (v, k) {
        (Value::Time(t), _) => {
            out.extend_from_slice(&(t.secs * 1_000_000 + t.micros as i64).to_le_bytes())
        }
        (Value::Text(s), _) => {
            varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        (Value::Int(i), Kind::I16) => out.extend_from_slice(
            &((*i).clamp(i16::MIN as i64, i16::MAX as i64) as i16).to_le_bytes(),
        ),
        (Value::Int(i), Kind::I32) => out.extend_from_slice(
            &((*i).clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_le_bytes(),
        ),
        (Value::Int(i), _) => out.extend_from_slice(&i.to_le_bytes()),
        (Value::Inet(IpAddr::V4(a)), _) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (Value::Inet(IpAddr::V6(a)), _) => out.extend_from_slice(&a.octets()),
        (Value::Mac(m), _) => {
            let mut b = [0u8; 8];
            b[2..].copy_from_slice(m);
            out.extend_from_slice(&u64::from_be_bytes(b).to_le_bytes());
        }
        (Value::Bool(b), _) => out.push(*b as u8),
        // A value of another type than its column (cannot happen with store::rows): the
        // column's zero, so the row still has its shape.
        (_, Kind::Time | Kind::I64 | Kind::Mac) => out.extend_from_slice(&[0; 8]),
        (_, Kind::I32) => out.extend_from_slice(&[0; 4]),
        (_, Kind::I16) => out.extend_from_slice(&[0; 2]),
        (_, Kind::Inet) => out.extend_from_slice(&[0; 16]),
        (_, Kind::Text | Kind::Bool) => out.push(0),
    }
}

fn misfit(v: &Value, k: Kind) -> bool {
    match (v, k) {
        (Value::Int(i), Kind::I16) => i16::try_from(*i).is_err(),
        (Value::Int(i), Kind::I32) => i32::try_from(*i).is_err(),
        _ => false,
    }
}

pub struct ClickHouseStore {
    client: Client,
    database: String,
    ready: bool,
    coerced: u64,
    body: Vec<u8>,
}

impl ClickHouseStore {
    pub fn new(cfg: &ClickHouseSinkConfig) -> Result<Self> {
        use base64::Engine;
        let endpoint = Endpoint::parse(&cfg.url)?;
        let tls = if endpoint.tls {
            Some(crate::tls::http_client_config(
                cfg.ca_file.as_deref(),
                cfg.cert_file.as_deref(),
                cfg.key_file.as_deref(),
            )?)
        } else {
            None
        };
        let auth = cfg.user.as_ref().map(|u| {
            base64::engine::general_purpose::STANDARD
                .encode(format!("{u}:{}", cfg.password.as_deref().unwrap_or("")))
        });
        Ok(ClickHouseStore {
            client: Client::new(endpoint, auth, tls),
            database: cfg.database.clone(),
            ready: false,
            coerced: 0,
            body: Vec::new(),
        })
    }

    fn prepare_schema(&self) -> Result<()> {
        let db = &self.database;
        self.client
            .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        let tables: Vec<String> = self
            .client
            .query(&format!("SHOW TABLES FROM {db}"))?
            .lines()
            .map(str::to_string)
            .collect();
        let version = if tables.iter().any(|t| t == VERSION_TABLE) {
            self.client
                .query(&format!("SELECT max(version) FROM {db}.{VERSION_TABLE}"))?
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
        } else {
            None
        };
        for (statements, reached) in ddl::steps(
            Dialect::ClickHouse,
            version,
            &tables,
            db,
            "use another database",
        )? {
            for s in &statements {
                self.client.query(s)?;
            }
            self.client.query(&format!(
                "INSERT INTO {db}.{VERSION_TABLE} VALUES ({reached}, now())"
            ))?;
            tracing::info!("clickhouse: schema in {db} at version {reached}");
        }
        Ok(())
    }

    fn insert(&mut self, t: Table, rows: &[&Row]) -> Result<()> {
        let cols = t.columns();
        self.body.clear();
        for r in rows {
            for (v, c) in r.values.iter().zip(cols) {
                if misfit(v, c.kind) {
                    self.coerced += 1;
                }
                encode(v, c.kind, c.name != "time", &mut self.body);
            }
        }
        let names: Vec<_> = cols.iter().map(|c| c.name).collect();
        let q = format!(
            "INSERT INTO {}.{} ({}) FORMAT RowBinary",
            self.database,
            t.name(),
            names.join(", ")
        );
        self.client.post(&q, &self.body)?;
        Ok(())
    }
}

impl Store for ClickHouseStore {
    fn connect(&mut self) -> Result<()> {
        self.prepare_schema()?;
        self.ready = true;
        Ok(())
    }

    fn connected(&self) -> bool {
        self.ready
    }

    fn disconnect(&mut self) {
        self.ready = false;
    }

    /// One INSERT per table. ClickHouse has no transaction across them: after a failure in
    /// the middle, the retry writes the tables that had succeeded again (at-least-once).
    fn write(&mut self, changes: &[Change]) -> Result<()> {
        let mut by_table: Vec<(Table, Vec<&Row>)> = Vec::new();
        for ch in changes {
            // open_flows lives in SQLite and PostgreSQL only; see ddl::create.
            if let Change::Insert(r) = ch {
                if r.table == Table::OpenFlows {
                    continue;
                }
                match by_table.iter_mut().find(|(t, _)| *t == r.table) {
                    Some((_, v)) => v.push(r),
                    None => by_table.push((r.table, vec![r])),
                }
            }
        }
        for (t, rows) in by_table {
            if let Err(e) = self.insert(t, &rows) {
                if e.downcast_ref::<Unreachable>().is_some() {
                    self.ready = false;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn take_coerced(&mut self) -> u64 {
        std::mem::take(&mut self.coerced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_binary_values() {
        let mut b = Vec::new();
        encode(&Value::Null, Kind::I32, true, &mut b);
        encode(&Value::Int(258), Kind::I16, true, &mut b);
        encode(
            &Value::Text("é".repeat(100).into()),
            Kind::Text,
            false,
            &mut b,
        );
        assert_eq!(&b[..4], &[1, 0, 2, 1]);
        assert_eq!(&b[4..6], &[200, 1], "varint 200");
        let mut b = Vec::new();
        encode(
            &Value::Inet("10.0.0.1".parse().unwrap()),
            Kind::Inet,
            false,
            &mut b,
        );
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]);
        let mut b = Vec::new();
        encode(
            &Value::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
            Kind::Mac,
            false,
            &mut b,
        );
        assert_eq!(u64::from_le_bytes(b.try_into().unwrap()), 0x0011_2233_4455);
    }
}
