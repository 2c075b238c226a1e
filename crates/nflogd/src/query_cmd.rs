//! `nflogd query`: reads the SQLite or PostgreSQL store; prints a table or JSON lines.

use crate::config::Config;
use crate::store::db::{json_rows, StoreSpec};
use crate::store::query::{self, Filters, Top};
use crate::store::rows::Table;
use anyhow::{bail, Context, Result};
use event::Timestamp;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The store: a SQLite file, or a PostgreSQL URL / connection string. Default: the first
    /// sqlite or postgres sink of --config (or of the embedded default).
    #[arg(long)]
    db: Option<String>,
    /// Configuration whose store to read.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// packets (default), flows, open-flows, counters, raw-lines or decisions (guards').
    #[arg(long, default_value = "packets")]
    table: String,
    /// From this time on: RFC 3339 (`2026-11-23T14:00:00Z`), `YYYY-MM-DD[ HH:MM[:SS]]` in UTC,
    /// or an age (`15m`, `2h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Up to this time (same forms).
    #[arg(long)]
    until: Option<String>,
    /// Address or network, as source or destination (flows: also the NAT addresses).
    #[arg(long)]
    addr: Option<String>,
    #[arg(long)]
    src: Option<String>,
    #[arg(long)]
    dst: Option<String>,
    /// Port, as source or destination.
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    sport: Option<u16>,
    #[arg(long)]
    dport: Option<u16>,
    /// tcp, udp, icmp, ipv6-icmp, sctp… or a number.
    #[arg(long)]
    proto: Option<String>,
    /// accept, drop or reject (packets); several with commas (`drop,reject`).
    #[arg(long)]
    action: Option<String>,
    /// Text in the log prefix, any case (packets).
    #[arg(long)]
    prefix: Option<String>,
    /// new, update or destroy (flows).
    #[arg(long)]
    event: Option<String>,
    /// The NAT question: who was behind PUBLIC_IP[:PORT] (use with --at).
    #[arg(long, value_name = "IP[:PORT]")]
    nat: Option<String>,
    /// The moment the NAT question is about (default: now).
    #[arg(long)]
    at: Option<String>,
    /// A summary instead of rows: sources, dropped-ports, talkers or longest-flows.
    #[arg(long)]
    top: Option<Top>,
    /// Most rows printed.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// A time argument: absolute (UTC unless it says otherwise) or an age back from now.
pub fn parse_time(s: &str) -> Result<Timestamp> {
    let s = s.trim();
    let from = |d: chrono::DateTime<chrono::Utc>| Timestamp {
        secs: d.timestamp(),
        micros: d.timestamp_subsec_micros(),
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(from(d.with_timezone(&chrono::Utc)));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(from(d.and_utc()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(from(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()));
    }
    if let Ok(age) = s.parse::<crate::units::Duration>() {
        let now = Timestamp::now();
        return Ok(Timestamp {
            secs: now.secs - age.0.as_secs() as i64,
            micros: now.micros,
        });
    }
    bail!("`{s}` is not a time (RFC 3339, YYYY-MM-DD[ HH:MM[:SS]], or an age like 2h)")
}

pub fn protocol_number(s: &str) -> Result<u8> {
    packet::proto::by_name(s).with_context(|| format!("unknown protocol `{s}`"))
}

/// The store named by --db, or the first database sink of the configuration.
fn store_of(args: &QueryArgs) -> Result<StoreSpec> {
    if let Some(db) = &args.db {
        return Ok(StoreSpec {
            spec: db.clone(),
            postgres: None,
        });
    }
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse(crate::config::DEFAULT_CONFIG, "embedded default")?,
    };
    StoreSpec::of_config(&cfg)
        .context("the configuration has no sqlite or postgres sink; name a store with --db")
}

/// A table by the name `--table` and the API take.
pub fn table_of(s: &str) -> Result<Table> {
    Ok(match s {
        "packets" => Table::Packets,
        "flows" => Table::Flows,
        "open-flows" | "open_flows" => Table::OpenFlows,
        "counters" => Table::Counters,
        "raw-lines" | "raw_lines" => Table::RawLines,
        "decisions" => Table::Decisions,
        _ => bail!(
            "unknown table `{s}` (packets, flows, open-flows, counters, raw-lines, decisions)"
        ),
    })
}

pub fn nat_target(s: &str) -> Result<(std::net::IpAddr, Option<u16>)> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    let ip = s
        .trim_matches(['[', ']'])
        .parse()
        .with_context(|| format!("`{s}`: give IP or IP:PORT ([IPv6]:PORT)"))?;
    Ok((ip, None))
}

pub fn run(args: QueryArgs) -> Result<()> {
    let mut db = store_of(&args)?.open()?;
    let d = db.dialect();
    let st = if let Some(n) = &args.nat {
        let (ip, port) = nat_target(n)?;
        let at = match &args.at {
            Some(t) => parse_time(t)?,
            None => Timestamp::now(),
        };
        query::nat(d, ip, port, at)
    } else {
        let filters = Filters {
            since: args.since.as_deref().map(parse_time).transpose()?,
            until: args.until.as_deref().map(parse_time).transpose()?,
            addr: args.addr.clone(),
            src: args.src.clone(),
            dst: args.dst.clone(),
            port: args.port,
            sport: args.sport,
            dport: args.dport,
            protocol: args.proto.as_deref().map(protocol_number).transpose()?,
            action: args.action.clone(),
            prefix: args.prefix.clone(),
            event: args.event.clone(),
        };
        match args.top {
            Some(t) => query::top(d, t, &filters, args.limit)?,
            None => query::select(d, table_of(&args.table)?, &filters, args.limit)?,
        }
    };
    let rows = db.run(&st)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        for o in json_rows(&st, &rows) {
            writeln!(out, "{o}")?;
        }
    } else {
        // Only the columns that have a value in some row, aligned.
        let shown: Vec<usize> = (0..st.columns.len())
            .filter(|&i| rows.iter().any(|r| r[i].is_some()))
            .collect();
        let cell = |r: &Vec<Option<String>>, i: usize| r[i].clone().unwrap_or_else(|| "-".into());
        let widths: Vec<usize> = shown
            .iter()
            .map(|&i| {
                rows.iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain([st.columns[i].0.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| -> String {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        if !rows.is_empty() {
            writeln!(
                out,
                "{}",
                line(shown.iter().map(|&i| st.columns[i].0.clone()).collect())
            )?;
        }
        for r in &rows {
            writeln!(out, "{}", line(shown.iter().map(|&i| cell(r, i)).collect()))?;
        }
        if rows.is_empty() {
            eprintln!("no rows");
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form() {
        let t = parse_time("2026-11-23T14:00:00Z").unwrap();
        assert_eq!(t.secs, 1_795_442_400);
        assert_eq!(parse_time("2026-11-23 14:00:00").unwrap(), t);
        assert_eq!(parse_time("2026-11-23 14:00").unwrap(), t);
        assert_eq!(parse_time("2026-11-23T15:00:00+01:00").unwrap(), t);
        assert_eq!(parse_time("2026-11-23").unwrap().secs, t.secs - 14 * 3600);
        let ago = parse_time("2h").unwrap().secs;
        assert!((Timestamp::now().secs - 7200 - ago).abs() <= 1);
        assert!(parse_time("yesterday-ish").is_err());
    }

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!(protocol_number("tcp").unwrap(), 6);
        assert_eq!(protocol_number("ICMPv6").unwrap(), 58);
        assert_eq!(protocol_number("47").unwrap(), 47);
        assert!(protocol_number("nope").is_err());
    }
}
