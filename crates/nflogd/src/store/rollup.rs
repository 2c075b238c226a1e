//! SQLite's running totals of packets: per hour by action and source, per hour by action and
//! destination port, per minute by action. SQLite groups by sorting every row, so a day's top
//! sources over a million packets took half a second from the rows; the dashboard and
//! `nflogd query --top` read these instead. PostgreSQL aggregates with hash tables in parallel
//! and keeps none of them.
//!
//! Writing them must not slow the store: an upsert per key per batch dirtied a page of its own
//! per new address, as an address index does (a diverse flood fell from 367 000 to 68 000 rows/s).
//! So the sink counts in memory, appends its counts every `FLUSH_EVERY` (or when the map grows
//! large) as new rows, in time order like the packets, and merges each finished hour's rows into
//! one per key (`compact`). `packet_totals_state.counted_rowid` says which packets the tables
//! hold: a query counts the newer ones from the rows, and a start counts what a crash left
//! uncounted, so every answer is exact.
//!
//! A NULL action or address is counted under '' and a NULL protocol or port under -1; reading
//! turns them back.

use super::rows::Value;
use anyhow::Result;
use event::Timestamp;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const BY_SOURCE: &str = "packets_by_source";
pub const BY_PORT: &str = "packets_by_port";
pub const BY_MINUTE: &str = "packets_by_minute";
/// Finished days by source: a day's top sources reads a row per source, not one per hour.
pub const BY_SOURCE_DAY: &str = "packets_by_source_day";
pub const STATE: &str = "packet_totals_state";
/// The totals' tables.
pub const TABLES: [&str; 4] = [BY_SOURCE, BY_PORT, BY_MINUTE, BY_SOURCE_DAY];

/// How long counts wait in memory before they are written.
const FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Keys held in memory before they are written anyway (about 40 MB at most).
const FLUSH_KEYS: usize = 500_000;

/// The tables, safe to run again. `counted_rowid` starts at 0: the next start counts every
/// packet already stored (a store made before these tables existed).
pub fn create() -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {BY_SOURCE} (hour TEXT NOT NULL, action TEXT NOT NULL, src_ip TEXT NOT NULL, packets INTEGER NOT NULL)"),
        format!("CREATE INDEX IF NOT EXISTS {BY_SOURCE}_hour ON {BY_SOURCE} (hour)"),
        format!("CREATE TABLE IF NOT EXISTS {BY_PORT} (hour TEXT NOT NULL, action TEXT NOT NULL, protocol INTEGER NOT NULL, dst_port INTEGER NOT NULL, packets INTEGER NOT NULL)"),
        format!("CREATE INDEX IF NOT EXISTS {BY_PORT}_hour ON {BY_PORT} (hour)"),
        format!("CREATE TABLE IF NOT EXISTS {BY_MINUTE} (minute TEXT NOT NULL, action TEXT NOT NULL, packets INTEGER NOT NULL)"),
        format!("CREATE INDEX IF NOT EXISTS {BY_MINUTE}_minute ON {BY_MINUTE} (minute)"),
        format!("CREATE TABLE IF NOT EXISTS {BY_SOURCE_DAY} (day TEXT NOT NULL, action TEXT NOT NULL, src_ip TEXT NOT NULL, packets INTEGER NOT NULL)"),
        format!("CREATE INDEX IF NOT EXISTS {BY_SOURCE_DAY}_day ON {BY_SOURCE_DAY} (day)"),
        format!("CREATE TABLE IF NOT EXISTS {STATE} (counted_rowid INTEGER NOT NULL, compacted_until TEXT NOT NULL, days_until TEXT NOT NULL)"),
        format!("INSERT INTO {STATE} SELECT 0, '', '' WHERE NOT EXISTS (SELECT 1 FROM {STATE})"),
    ]
}

/// The packets the totals hold: those with a rowid up to this (SQL, for queries).
pub const COUNTED: &str = "(SELECT counted_rowid FROM packet_totals_state)";
/// The days `BY_SOURCE_DAY` holds: those before this (SQL, for queries).
pub const DAYS_UNTIL: &str = "(SELECT days_until FROM packet_totals_state)";

const HOUR: &str = "substr(time, 1, 13) || ':00:00.000000Z'";
const MINUTE: &str = "substr(time, 1, 16) || ':00.000000Z'";

/// Counts the packets stored after `counted_rowid` (what a crash or an upgrade left) from the
/// rows, in one transaction.
pub fn catch_up(c: &mut rusqlite::Connection) -> Result<u64> {
    let tx = c.transaction()?;
    let counted: i64 = tx.query_row(&format!("SELECT counted_rowid FROM {STATE}"), [], |r| {
        r.get(0)
    })?;
    let last: i64 = tx.query_row("SELECT coalesce(max(rowid), 0) FROM packets", [], |r| {
        r.get(0)
    })?;
    if last <= counted {
        return Ok(0);
    }
    let range = format!("FROM packets WHERE rowid > {counted} AND rowid <= {last}");
    // Packets of days already summed (a log read late) count into those days too.
    tx.execute_batch(&format!(
        "INSERT INTO {BY_SOURCE_DAY} SELECT substr(time, 1, 10) || 'T00:00:00.000000Z', coalesce(action, ''), coalesce(src_ip, ''), count(*) {range} AND time < {DAYS_UNTIL} GROUP BY 1, 2, 3;
         INSERT INTO {BY_SOURCE} SELECT {HOUR}, coalesce(action, ''), coalesce(src_ip, ''), count(*) {range} GROUP BY 1, 2, 3;
         INSERT INTO {BY_PORT} SELECT {HOUR}, coalesce(action, ''), coalesce(protocol, -1), coalesce(dst_port, -1), count(*) {range} GROUP BY 1, 2, 3, 4;
         INSERT INTO {BY_MINUTE} SELECT {MINUTE}, coalesce(action, ''), count(*) {range} GROUP BY 1, 2;
         UPDATE {STATE} SET counted_rowid = {last};"
    ))?;
    if counted == 0 {
        // Counted from the start: one row per key and hour already, nothing to merge.
        let until = text(floor(
            Timestamp {
                secs: Timestamp::now().secs - 3600,
                micros: 0,
            },
            3600,
        ));
        tx.execute(&format!("UPDATE {STATE} SET compacted_until = ?1"), [until])?;
    }
    tx.commit()?;
    Ok((last - counted) as u64)
}

/// Merges the rows of each finished hour (before the one now) into one per key: a day's top
/// then reads one row per source and hour.
pub fn compact(c: &mut rusqlite::Connection, now: Timestamp) -> Result<()> {
    let until = text(floor(
        Timestamp {
            secs: now.secs - 3600,
            micros: 0,
        },
        3600,
    ));
    let tx = c.transaction()?;
    let from: String = tx.query_row(&format!("SELECT compacted_until FROM {STATE}"), [], |r| {
        r.get(0)
    })?;
    if from >= until {
        return Ok(());
    }
    for (table, keys) in [
        (BY_SOURCE, "hour, action, src_ip"),
        (BY_PORT, "hour, action, protocol, dst_port"),
    ] {
        let range = "hour >= ?1 AND hour < ?2";
        tx.execute(
            &format!("CREATE TEMP TABLE merged AS SELECT {keys}, sum(packets) AS packets FROM {table} WHERE {range} GROUP BY {keys}"),
            [&from, &until],
        )?;
        tx.execute(
            &format!("DELETE FROM {table} WHERE {range}"),
            [&from, &until],
        )?;
        tx.execute_batch(&format!(
            "INSERT INTO {table} SELECT * FROM merged ORDER BY hour; DROP TABLE merged;"
        ))?;
    }
    tx.execute(
        &format!("UPDATE {STATE} SET compacted_until = ?1"),
        [&until],
    )?;
    tx.commit()?;
    Ok(())
}

/// Adds the finished days (all of whose hours are merged) to `BY_SOURCE_DAY`.
pub fn sum_days(c: &mut rusqlite::Connection) -> Result<()> {
    let tx = c.transaction()?;
    let (hours, from): (String, String) = tx.query_row(
        &format!("SELECT compacted_until, days_until FROM {STATE}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // compacted_until is a whole hour; the days before its day are finished.
    let until = match hours.get(..10) {
        Some(day) => format!("{day}T00:00:00.000000Z"),
        None => return Ok(()),
    };
    if from >= until {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {BY_SOURCE_DAY} SELECT substr(hour, 1, 10) || 'T00:00:00.000000Z', action, src_ip, sum(packets) \
             FROM {BY_SOURCE} WHERE hour >= ?1 AND hour < ?2 GROUP BY 1, 2, 3 ORDER BY 1"
        ),
        [&from, &until],
    )?;
    tx.execute(&format!("UPDATE {STATE} SET days_until = ?1"), [&until])?;
    tx.commit()?;
    Ok(())
}

/// Deletes the totals of whole hours (and minutes) before `cutoff` (retention, or the oldest
/// packet left after trimming to size).
pub fn prune(c: &rusqlite::Connection, cutoff: Timestamp) -> Result<()> {
    for (table, key, t) in [
        (BY_SOURCE_DAY, "day", floor(cutoff, 86400)),
        (BY_SOURCE, "hour", floor(cutoff, 3600)),
        (BY_PORT, "hour", floor(cutoff, 3600)),
        (BY_MINUTE, "minute", floor(cutoff, 60)),
    ] {
        c.execute(&format!("DELETE FROM {table} WHERE {key} < ?1"), [text(t)])?;
    }
    Ok(())
}

pub fn floor(t: Timestamp, step: i64) -> Timestamp {
    Timestamp {
        secs: t.secs.div_euclid(step) * step,
        micros: 0,
    }
}

pub fn ceil(t: Timestamp, step: i64) -> Timestamp {
    let f = floor(t, step);
    if f.secs == t.secs && t.micros == 0 {
        f
    } else {
        Timestamp {
            secs: f.secs + step,
            micros: 0,
        }
    }
}

pub fn text(t: Timestamp) -> String {
    let mut v = Vec::with_capacity(27);
    t.write_rfc3339_utc(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Where a packet row's counted values are (`rows::PACKET_COLUMNS`).
#[derive(Clone, Copy)]
pub struct Columns {
    time: usize,
    action: usize,
    src_ip: usize,
    protocol: usize,
    dst_port: usize,
}

impl Columns {
    pub fn of_packets() -> Columns {
        let at = |name: &str| {
            super::rows::PACKET_COLUMNS
                .iter()
                .position(|c| c.name == name)
                .expect("a packet column")
        };
        Columns {
            time: at("time"),
            action: at("action"),
            src_ip: at("src_ip"),
            protocol: at("protocol"),
            dst_port: at("dst_port"),
        }
    }
}

/// A packet's action is one of three words, or none.
fn action_word(a: &str) -> &'static str {
    match a {
        "accept" => "accept",
        "drop" => "drop",
        "reject" => "reject",
        _ => "",
    }
}

/// A count per key; foldhash, as the keys are ours and a row's three lookups are on the
/// sink's hot path.
type Map<K> = HashMap<K, i64, foldhash::fast::RandomState>;

/// Counts not written yet, and the last packet they count.
pub struct Totals {
    by_source: Map<(i64, &'static str, Option<IpAddr>)>,
    by_port: Map<(i64, &'static str, i64, i64)>,
    by_minute: Map<(i64, &'static str)>,
    pub last_rowid: i64,
    since: Instant,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            by_source: Map::default(),
            by_port: Map::default(),
            by_minute: Map::default(),
            last_rowid: 0,
            since: Instant::now(),
        }
    }
}

impl Totals {
    /// Counts one packet row.
    pub fn count(&mut self, cols: Columns, values: &[Value]) {
        let Some(Value::Time(t)) = values.get(cols.time) else {
            return;
        };
        let action = match values.get(cols.action) {
            Some(Value::Text(a)) => action_word(a.as_str()),
            _ => "",
        };
        let src = match values.get(cols.src_ip) {
            Some(Value::Inet(a)) => Some(*a),
            _ => None,
        };
        let int = |i: usize| match values.get(i) {
            Some(Value::Int(n)) => *n,
            _ => -1,
        };
        let hour = t.secs.div_euclid(3600);
        *self.by_source.entry((hour, action, src)).or_default() += 1;
        *self
            .by_port
            .entry((hour, action, int(cols.protocol), int(cols.dst_port)))
            .or_default() += 1;
        *self
            .by_minute
            .entry((t.secs.div_euclid(60), action))
            .or_default() += 1;
    }

    /// Adds a written transaction's counts (`other`) to these.
    pub fn merge(&mut self, other: Totals) {
        for (k, n) in other.by_source {
            *self.by_source.entry(k).or_default() += n;
        }
        for (k, n) in other.by_port {
            *self.by_port.entry(k).or_default() += n;
        }
        for (k, n) in other.by_minute {
            *self.by_minute.entry(k).or_default() += n;
        }
        self.last_rowid = self.last_rowid.max(other.last_rowid);
    }

    pub fn is_empty(&self) -> bool {
        self.by_minute.is_empty()
    }

    /// Whether it is time to write them.
    pub fn due(&self) -> bool {
        !self.is_empty()
            && (self.since.elapsed() >= FLUSH_EVERY
                || self.by_source.len() + self.by_port.len() >= FLUSH_KEYS)
    }

    /// Appends the counts to the tables and moves `counted_rowid` to what they count, in one
    /// transaction; they are cleared once it committed. Rows go in time order, many to a
    /// statement, as the packets do.
    pub fn write(&mut self, c: &mut rusqlite::Connection) -> Result<()> {
        let tx = c.transaction()?;
        let mut hours = HourTexts::default();
        let mut sources: Vec<_> = self.by_source.iter().collect();
        sources.sort_unstable_by_key(|((h, ..), _)| *h);
        let mut scratch = Vec::with_capacity(48);
        let mut src_text = |s: &Option<IpAddr>| -> rusqlite::types::Value {
            scratch.clear();
            if let Some(ip) = s {
                crate::schema::ip_text(*ip, &mut scratch);
            }
            String::from_utf8_lossy(&scratch).into_owned().into()
        };
        insert_many(&tx, BY_SOURCE, 4, sources.len(), |i, out| {
            let ((h, a, s), n) = sources[i];
            out.push(hours.text(*h, 3600).into());
            out.push(rusqlite::types::Value::Text(a.to_string()));
            out.push(src_text(s));
            out.push((*n).into());
        })?;
        // Counts of days already summed (a log read late) go into those days too.
        let days_until: String =
            tx.query_row(&format!("SELECT days_until FROM {STATE}"), [], |r| r.get(0))?;
        let late: Vec<_> = sources
            .iter()
            .filter(|((h, ..), _)| hours.text(*h, 3600) < days_until)
            .collect();
        insert_many(&tx, BY_SOURCE_DAY, 4, late.len(), |i, out| {
            let ((h, a, s), n) = late[i];
            out.push(hours.text(h.div_euclid(24), 86400).into());
            out.push(rusqlite::types::Value::Text(a.to_string()));
            out.push(src_text(s));
            out.push((**n).into());
        })?;
        let mut ports: Vec<_> = self.by_port.iter().collect();
        ports.sort_unstable_by_key(|((h, ..), _)| *h);
        insert_many(&tx, BY_PORT, 5, ports.len(), |i, out| {
            let ((h, a, p, d), n) = ports[i];
            out.push(hours.text(*h, 3600).into());
            out.push(rusqlite::types::Value::Text(a.to_string()));
            out.push((*p).into());
            out.push((*d).into());
            out.push((*n).into());
        })?;
        let mut minutes: Vec<_> = self.by_minute.iter().collect();
        minutes.sort_unstable_by_key(|((m, _), _)| *m);
        insert_many(&tx, BY_MINUTE, 3, minutes.len(), |i, out| {
            let ((m, a), n) = minutes[i];
            out.push(hours.text(*m, 60).into());
            out.push(rusqlite::types::Value::Text(a.to_string()));
            out.push((*n).into());
        })?;
        tx.execute(
            &format!("UPDATE {STATE} SET counted_rowid = ?1"),
            [self.last_rowid],
        )?;
        tx.commit()?;
        let last = self.last_rowid;
        *self = Totals::default();
        self.last_rowid = last;
        Ok(())
    }
}

/// The text of the last hour (or minute) asked for, made again only when it changes.
#[derive(Default)]
struct HourTexts {
    last: Option<(i64, i64, String)>,
}

impl HourTexts {
    fn text(&mut self, n: i64, unit: i64) -> String {
        match &self.last {
            Some((u, m, t)) if *u == unit && *m == n => t.clone(),
            _ => {
                let t = text(Timestamp {
                    secs: n * unit,
                    micros: 0,
                });
                self.last = Some((unit, n, t.clone()));
                t
            }
        }
    }
}

/// Rows bound to one INSERT: the totals' rows are narrow, and a statement per row was most of
/// their cost.
const ROWS_PER_INSERT: usize = 64;

/// Inserts `count` rows of `width` values into `table`, `row(i, values)` giving row `i`.
fn insert_many(
    tx: &rusqlite::Transaction,
    table: &str,
    width: usize,
    count: usize,
    mut row: impl FnMut(usize, &mut Vec<rusqlite::types::Value>),
) -> Result<()> {
    let sql = |rows: usize| {
        let one = format!("({})", vec!["?"; width].join(", "));
        format!("INSERT INTO {table} VALUES {}", vec![one; rows].join(", "))
    };
    let mut values = Vec::with_capacity(width * ROWS_PER_INSERT);
    let mut i = 0;
    while i < count {
        let n = (count - i).min(ROWS_PER_INSERT);
        values.clear();
        for j in i..i + n {
            row(j, &mut values);
        }
        let mut st = tx.prepare_cached(&sql(n))?;
        st.execute(rusqlite::params_from_iter(values.iter()))?;
        i += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_both_ways() {
        let t = Timestamp {
            secs: 7200 + 5,
            micros: 0,
        };
        assert_eq!(floor(t, 3600).secs, 7200);
        assert_eq!(ceil(t, 3600).secs, 10800);
        let whole = Timestamp {
            secs: 7200,
            micros: 0,
        };
        assert_eq!(ceil(whole, 3600).secs, 7200);
        assert_eq!(text(whole), "1970-01-01T02:00:00.000000Z");
    }
}
