//! The schema each database gets: tables from `rows`, the indexes the queries use, and the
//! version row by which nflogd recognises (and migrates) a schema it made.

use super::rows::{Column, Kind, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    ClickHouse,
}

/// Bumped with every change to the tables; `migrations` lists how to get from each older one.
pub const SCHEMA_VERSION: i64 = 4;

/// The table that records the schema version, so a start can tell ours from a foreign schema.
pub const VERSION_TABLE: &str = "nflogd_schema";

/// The statements that bring a schema to version `to` from the one before. A dialect a version
/// did not change has an empty step (only the version row is written).
fn migration(d: Dialect, to: i64, clickhouse_database: &str) -> Vec<String> {
    match (to, d) {
        // 2: SQLite's packets lose their address and port indexes (see `indexes`).
        (2, Dialect::Sqlite) => [
            "DROP INDEX IF EXISTS packets_src",
            "DROP INDEX IF EXISTS packets_dst",
            "DROP INDEX IF EXISTS packets_dport",
        ]
        .map(String::from)
        .to_vec(),
        // 3: the guards' `decisions` table; the creating statements are safe to run again, so
        // they add it and leave the rest alone.
        (3, _) => create(d, clickhouse_database),
        // 4: SQLite's running totals of packets (`rollup`); the start after it counts the rows
        // already there.
        (4, Dialect::Sqlite) => super::rollup::create(),
        _ => Vec::new(),
    }
}

fn sql_type(d: Dialect, k: Kind) -> &'static str {
    match (d, k) {
        // SQLite keeps times as fixed-width RFC 3339 UTC text: readable, sortable, and what
        // its date functions take.
        (Dialect::Sqlite, Kind::Time | Kind::Text | Kind::Inet | Kind::Mac) => "TEXT",
        (Dialect::Sqlite, _) => "INTEGER",
        (Dialect::Postgres, Kind::Time) => "timestamptz",
        (Dialect::Postgres, Kind::Text) => "text",
        (Dialect::Postgres, Kind::I16) => "smallint",
        (Dialect::Postgres, Kind::I32) => "integer",
        (Dialect::Postgres, Kind::I64) => "bigint",
        (Dialect::Postgres, Kind::Inet) => "inet",
        (Dialect::Postgres, Kind::Mac) => "macaddr",
        (Dialect::Postgres, Kind::Bool) => "boolean",
        // ClickHouse 18.16 has neither DateTime64 nor IPv6: microseconds since the epoch, and
        // addresses as 16 bytes (IPv4 mapped), which IPv6NumToString shows.
        (Dialect::ClickHouse, Kind::Time) => "Int64",
        (Dialect::ClickHouse, Kind::Text) => "String",
        (Dialect::ClickHouse, Kind::I16) => "Int16",
        (Dialect::ClickHouse, Kind::I32) => "Int32",
        (Dialect::ClickHouse, Kind::I64) => "Int64",
        (Dialect::ClickHouse, Kind::Inet) => "FixedString(16)",
        (Dialect::ClickHouse, Kind::Mac) => "UInt64",
        (Dialect::ClickHouse, Kind::Bool) => "UInt8",
    }
}

fn column_list(d: Dialect, cols: &[Column]) -> String {
    cols.iter()
        .map(|c| {
            let t = sql_type(d, c.kind);
            match d {
                // The event time is always there; everything else may be absent.
                Dialect::ClickHouse if c.name == "time" => format!("  {} {t}", c.name),
                Dialect::ClickHouse => format!("  {} Nullable({t})", c.name),
                _ if c.name == "time" => format!("  {} {t} NOT NULL", c.name),
                _ => format!("  {} {t}", c.name),
            }
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

/// Indexes per table: (name suffix, columns).
fn indexes(d: Dialect, t: Table) -> &'static [(&'static str, &'static str)] {
    match t {
        // SQLite, the embedded store, takes a flood of packets: an index on a random key
        // (an address, a port) dirties a page of its own per row, which capped it at 33 000
        // rows/s on a diverse million-line log; with the time index alone (rows arrive in time
        // order, so it only appends) it takes several times that. Queries on packets are
        // bounded by time, which that index serves.
        Table::Packets if d == Dialect::Sqlite => &[("time", "time")],
        Table::Packets => &[
            ("time", "time"),
            ("src", "src_ip"),
            ("dst", "dst_ip"),
            ("dport", "dst_port"),
        ],
        Table::Flows => &[
            ("time", "time"),
            ("src", "src_ip"),
            ("dst", "dst_ip"),
            ("snat", "nat_src_ip, nat_src_port"),
            ("dnat", "nat_dst_ip, nat_dst_port"),
        ],
        Table::OpenFlows => &[("src", "src_ip"), ("snat", "nat_src_ip, nat_src_port")],
        Table::Counters => &[("time", "time"), ("name", "name")],
        Table::RawLines => &[("time", "time")],
        Table::Decisions => &[("time", "time"), ("address", "address")],
        // ulogd2's tables come with their own indexes.
        Table::UlogdPacket | Table::UlogdFlow | Table::UlogdCounter => &[],
    }
}

/// Tables partitioned by day in PostgreSQL: the big ones, whose old days retention drops whole.
pub fn partitioned(t: Table) -> bool {
    matches!(t, Table::Packets | Table::Flows)
}

/// Every statement that creates the schema, in order; each is safe to run again.
pub fn create(d: Dialect, clickhouse_database: &str) -> Vec<String> {
    let mut out = Vec::new();
    match d {
        Dialect::Sqlite => {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL, installed TEXT NOT NULL)"
            ));
        }
        Dialect::Postgres => {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer NOT NULL, installed timestamptz NOT NULL DEFAULT now())"
            ));
        }
        Dialect::ClickHouse => {
            out.push(format!(
                "CREATE DATABASE IF NOT EXISTS {clickhouse_database}"
            ));
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {clickhouse_database}.{VERSION_TABLE} (version Int64, installed DateTime) ENGINE = TinyLog"
            ));
        }
    }
    for t in Table::ALL {
        let cols = column_list(d, t.columns());
        let name = t.name();
        match d {
            Dialect::ClickHouse => {
                // A ClickHouse store is append-only: the open connections are a query over
                // `flows` there.
                if t == Table::OpenFlows {
                    continue;
                }
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {clickhouse_database}.{name} (\n{cols}\n) ENGINE = MergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(time, 1000000))) ORDER BY time"
                ));
            }
            Dialect::Postgres if partitioned(t) => {
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {name} (\n{cols}\n) PARTITION BY RANGE (time)"
                ));
                // Rows outside the days nflogd made partitions for (a clock far off) land here.
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {name}_default PARTITION OF {name} DEFAULT"
                ));
            }
            _ if t == Table::OpenFlows => {
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {name} (\n{cols},\n  PRIMARY KEY (host, ct_id)\n)"
                ));
            }
            _ => out.push(format!("CREATE TABLE IF NOT EXISTS {name} (\n{cols}\n)")),
        }
        if d != Dialect::ClickHouse {
            for (suffix, cols) in indexes(d, t) {
                // Time indexes on the big PostgreSQL tables are BRIN: rows arrive in time
                // order, and a BRIN index costs next to nothing to keep up while COPY runs.
                let using = if d == Dialect::Postgres && partitioned(t) && *suffix == "time" {
                    " USING brin"
                } else {
                    ""
                };
                out.push(format!(
                    "CREATE INDEX IF NOT EXISTS {name}_{suffix} ON {name}{using} ({cols})"
                ));
            }
        }
    }
    if d == Dialect::Sqlite {
        out.extend(super::rollup::create());
    }
    out
}

/// The whole schema as a script, for `nflogd schema DIALECT`.
pub fn script(d: Dialect, clickhouse_database: &str) -> String {
    let mut s = format!(
        "-- nflogd schema version {SCHEMA_VERSION} ({d:?}); nflogd creates and migrates it itself.\n"
    );
    for stmt in create(d, clickhouse_database) {
        s.push_str(&stmt);
        s.push_str(";\n");
    }
    let version = match d {
        Dialect::Sqlite => {
            format!("INSERT INTO {VERSION_TABLE} VALUES ({SCHEMA_VERSION}, datetime('now'))")
        }
        Dialect::Postgres => {
            format!("INSERT INTO {VERSION_TABLE} (version) VALUES ({SCHEMA_VERSION})")
        }
        Dialect::ClickHouse => format!(
            "INSERT INTO {clickhouse_database}.{VERSION_TABLE} VALUES ({SCHEMA_VERSION}, now())"
        ),
    };
    s.push_str(&version);
    s.push_str(";\n");
    s
}

/// A schema nflogd must not write into (someone else's, or a newer nflogd's): a start stops on
/// it rather than retrying.
#[derive(Debug)]
pub struct SchemaError(pub String);

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

/// What a start does with the database it finds, given the version table's content (None: no
/// such table) and the tables present: the groups of statements to run, each with the version
/// it reaches (to record). `elsewhere` says where else to go when the tables are not ours.
pub fn steps(
    d: Dialect,
    version: Option<i64>,
    tables_present: &[String],
    clickhouse_database: &str,
    elsewhere: &str,
) -> Result<Vec<(Vec<String>, i64)>, SchemaError> {
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(SchemaError(format!(
            "schema version {v} is newer than this nflogd knows ({SCHEMA_VERSION}); upgrade nflogd"
        ))),
        // Ours: the migrations from its version on, one step (and one version row) each.
        Some(v) => Ok((v.max(1) + 1..=SCHEMA_VERSION)
            .map(|to| (migration(d, to, clickhouse_database), to))
            .collect()),
        None => {
            if let Some(t) = Table::ALL
                .iter()
                .find(|t| tables_present.iter().any(|p| p == t.name()))
            {
                return Err(SchemaError(format!(
                    "the table `{}` exists but was not made by nflogd (no {VERSION_TABLE} table); {elsewhere}",
                    t.name()
                )));
            }
            Ok(vec![(create(d, clickhouse_database), SCHEMA_VERSION)])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_in_every_script() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let s = script(d, "nflogd");
            for t in Table::ALL {
                assert!(
                    s.contains(&format!("CREATE TABLE IF NOT EXISTS {} (", t.name())),
                    "{d:?} {}",
                    t.name()
                );
            }
        }
        assert!(script(Dialect::ClickHouse, "fw").contains("fw.packets"));
    }

    #[test]
    fn what_a_start_does_with_what_it_finds() {
        let d = Dialect::Sqlite;
        let create = steps(d, None, &["other".into()], "", "").unwrap();
        assert_eq!(create.len(), 1);
        assert_eq!(create[0].1, SCHEMA_VERSION);
        let e = steps(
            d,
            None,
            &["other".into(), "flows".into()],
            "",
            "use another file",
        );
        assert!(e.unwrap_err().0.contains("`flows` exists"));
        assert!(steps(d, Some(SCHEMA_VERSION), &["flows".into()], "", "")
            .unwrap()
            .is_empty());
        assert!(steps(d, Some(SCHEMA_VERSION + 1), &[], "", "").is_err());
    }
}
