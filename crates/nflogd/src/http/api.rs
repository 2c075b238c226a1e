//! The routes: the dashboard's files, /metrics, and the JSON API. Summaries over time read the
//! store (the first sqlite or postgres sink, as `nflogd query` does) with `store::query`'s
//! statements; live views read `live`. Every route only reads.

use super::live::{self, Filter, Recent};
use super::server::{Body, Request, Response};
use crate::config::{Config, TransformConfig};
use crate::query_cmd::{nat_target, parse_time, protocol_number, table_of};
use crate::schema::{Renderer, SchemaKind, SchemaOptions};
use crate::store::db::{json_rows, StoreSpec};
use crate::store::query::{self, Filters, Step, Top};
use event::Timestamp;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");
const LAND_JS: &str = include_str!("dashboard/land.js");

/// Everything the page needs is served from here; nothing else is loaded or run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A failed call: its status and what to tell.
type Failure = (u16, String);

fn bad(e: impl std::fmt::Display) -> Failure {
    (400, e.to_string())
}

pub struct Api {
    host: String,
    store: Option<StoreSpec>,
    guards: Vec<(String, PathBuf)>,
    geoip: bool,
    started: Instant,
}

impl Api {
    pub fn new(cfg: &Config, host: &str) -> Api {
        Api {
            host: host.to_string(),
            store: StoreSpec::of_config(cfg),
            guards: cfg
                .transforms
                .iter()
                .filter_map(|(n, t)| match t {
                    TransformConfig::Guard(g) => Some((n.clone(), g.socket_path(n))),
                    _ => None,
                })
                .collect(),
            geoip: cfg
                .transforms
                .values()
                .any(|t| matches!(t, TransformConfig::Geoip(_))),
            started: Instant::now(),
        }
    }

    pub fn handle(&self, r: &Request) -> Response {
        let result = match r.path.as_str() {
            "/" | "/index.html" => {
                let mut resp = Response::new(200, "text/html; charset=utf-8", INDEX_HTML);
                resp.headers.push(("Content-Security-Policy", CSP.into()));
                return resp;
            }
            "/app.js" => return Response::new(200, "text/javascript; charset=utf-8", APP_JS),
            "/app.css" => return Response::new(200, "text/css; charset=utf-8", APP_CSS),
            "/land.js" => return Response::new(200, "text/javascript; charset=utf-8", LAND_JS),
            "/metrics" => return super::metrics_response(),
            "/api/tail" => return self.tail(r),
            "/api" | "/api/" => Ok(self.index()),
            "/api/status" => Ok(self.status()),
            "/api/components" => Ok(crate::metrics::snapshot()),
            "/api/timeline" => self.timeline(r),
            "/api/events" => self.events(r),
            "/api/nat" => self.nat(r),
            "/api/live" => self.live(r),
            "/api/live/top" => self.live_top(r),
            "/api/bans" => Ok(self.bans()),
            "/api/places" => Ok(self.places()),
            p => match p.strip_prefix("/api/top/") {
                Some(which) => self.top(which, r),
                None => return Response::error(404, "no such page; the API is listed at /api/"),
            },
        };
        match result {
            Ok(v) => Response::json(&v),
            Err((status, message)) => Response::error(status, &message),
        }
    }

    fn index(&self) -> Value {
        json!({
            "endpoints": {
                "/api/status": "version, host, uptime, the store, guards, geoip",
                "/api/components": "every source, transform and sink with its counters",
                "/api/timeline": "packets per time bucket and action (store; live without one)",
                "/api/top/{sources,dropped-ports,talkers,longest-flows}": "summaries of the store",
                "/api/events": "rows of the store: table=packets|flows|open-flows|counters|raw-lines",
                "/api/nat": "who was behind addr=IP[:PORT] at=TIME",
                "/api/live": "the last events: after=SEQ, q=TEXT, action=, limit=, record=false (no ECS record)",
                "/api/live/top": "top sources or ports of the last events: by=sources|ports",
                "/api/tail": "server-sent events as they come: q=TEXT, action=",
                "/api/bans": "the guards' bans",
                "/api/places": "where logged sources are (with a geoip transform)",
            },
            "filters": "since, until (RFC 3339, YYYY-MM-DD[ HH:MM], or an age: 15m, 24h), addr, src, dst, port, sport, dport, proto, action, prefix, event, limit",
        })
    }

    fn status(&self) -> Value {
        let store = self.store.as_ref().map(|s| {
            let kind = if s.postgres.is_some() {
                "postgres"
            } else {
                "sqlite"
            };
            json!({ "kind": kind })
        });
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "host": self.host,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "now": time_text(Timestamp::now()),
            "store": store,
            "guards": self.guards.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "geoip": self.geoip,
            "last_seq": live::live().last_seq(),
        })
    }

    fn store(&self) -> Result<&StoreSpec, Failure> {
        self.store.as_ref().ok_or_else(|| {
            (
                404,
                "no store: add a sqlite or postgres sink for summaries over time".into(),
            )
        })
    }

    /// Runs a statement on the store; rows as JSON objects.
    fn run(&self, st: &query::Statement) -> Result<Vec<Value>, Failure> {
        let mut db = self
            .store()?
            .open()
            .map_err(|e| (503, format!("the store: {e:#}")))?;
        let rows = db.run(st).map_err(|e| (503, format!("the store: {e:#}")))?;
        Ok(json_rows(st, &rows))
    }

    fn dialect(&self) -> crate::store::ddl::Dialect {
        match self.store.as_ref().and_then(|s| s.postgres.as_ref()) {
            Some(_) => crate::store::ddl::Dialect::Postgres,
            None => crate::store::ddl::Dialect::Sqlite,
        }
    }

    fn timeline(&self, r: &Request) -> Result<Value, Failure> {
        let f = filters(r)?;
        let since = f.since.unwrap_or_else(|| ago(86400));
        let until = f.until.unwrap_or_else(Timestamp::now);
        let step = Step::for_span(until.secs - since.secs);
        if self.store.is_none() {
            return Ok(live_timeline(since, r.param("action")));
        }
        let f = Filters {
            since: Some(since),
            ..f
        };
        let st = query::timeline(self.dialect(), &f, step).map_err(bad)?;
        let rows = self.run(&st)?;
        let mut buckets: Vec<(String, [u64; 4])> = Vec::new();
        for row in rows {
            let bucket = bucket_time(row["bucket"].as_str().unwrap_or(""));
            let n = row["packets"].as_u64().unwrap_or(0);
            let i = action_slot(row["action"].as_str().unwrap_or(""));
            match buckets.last_mut() {
                Some((b, c)) if *b == bucket => c[i] += n,
                _ => {
                    let mut c = [0; 4];
                    c[i] = n;
                    buckets.push((bucket, c));
                }
            }
        }
        Ok(json!({
            "from": "store",
            "step_seconds": step.seconds(),
            "since": time_text(since),
            "until": time_text(until),
            "buckets": buckets.iter().map(|(t, c)| bucket_json(t, c)).collect::<Vec<_>>(),
        }))
    }

    fn top(&self, which: &str, r: &Request) -> Result<Value, Failure> {
        let which: Top = which.parse().map_err(|e: String| (404, e))?;
        let mut f = filters(r)?;
        f.since = f.since.or_else(|| Some(ago(86400)));
        let st = query::top(self.dialect(), which, &f, limit(r, 10)?).map_err(bad)?;
        Ok(json!({ "rows": self.run(&st)? }))
    }

    fn events(&self, r: &Request) -> Result<Value, Failure> {
        let table = table_of(r.param("table").unwrap_or("packets")).map_err(bad)?;
        let st = query::select(self.dialect(), table, &filters(r)?, limit(r, 100)?).map_err(bad)?;
        Ok(json!({ "rows": self.run(&st)? }))
    }

    fn nat(&self, r: &Request) -> Result<Value, Failure> {
        let addr = r
            .param("addr")
            .ok_or_else(|| bad("give addr=IP or addr=IP:PORT"))?;
        let (ip, port) = nat_target(addr).map_err(bad)?;
        let at = match r.param("at") {
            Some(t) => parse_time(t).map_err(bad)?,
            None => Timestamp::now(),
        };
        let st = query::nat(self.dialect(), ip, port, at);
        Ok(json!({ "at": time_text(at), "rows": self.run(&st)? }))
    }

    fn live(&self, r: &Request) -> Result<Value, Failure> {
        let after = match r.param("after") {
            Some(a) => a.parse().map_err(|_| bad("after: a sequence number"))?,
            None => 0,
        };
        let n = limit(r, 100)? as usize;
        let events = live::live().since(after, &live_filter(r), n);
        // `record=false`: the summary only, without the whole record (terminal views).
        let mut renderer = (r.param("record") != Some("false")).then(|| self.renderer());
        Ok(json!({
            "last_seq": live::live().last_seq(),
            "events": events.iter().map(|e| recent_json(e, renderer.as_mut())).collect::<Vec<_>>(),
        }))
    }

    fn live_top(&self, r: &Request) -> Result<Value, Failure> {
        let events = live::live().since(0, &live_filter(r), usize::MAX);
        let by = r.param("by").unwrap_or("sources");
        let mut counts: HashMap<String, u64> = HashMap::new();
        for e in events.iter().filter(|e| e.kind == "packet") {
            let key = match by {
                "sources" => e.src.map(|a| a.to_string()),
                "ports" => e.dport.map(|p| {
                    let proto = e.protocol.and_then(packet::proto::name).unwrap_or("?");
                    format!("{p}/{proto}")
                }),
                _ => return Err(bad("by: sources or ports")),
            };
            if let Some(k) = key {
                *counts.entry(k).or_default() += 1;
            }
        }
        let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(limit(r, 10)? as usize);
        Ok(json!({
            "of_events": events.len(),
            "rows": rows.iter().map(|(k, n)| json!({"key": k, "packets": n})).collect::<Vec<_>>(),
        }))
    }

    fn bans(&self) -> Value {
        use crate::transforms::guard::control;
        self.guards
            .iter()
            .map(
                |(name, path)| match control::call(path, &control::Request::List) {
                    Ok(v) => v,
                    Err(e) => json!({ "guard": name, "error": format!("{e:#}") }),
                },
            )
            .collect()
    }

    fn places(&self) -> Value {
        let places: Vec<Value> = live::live()
            .places()
            .iter()
            .take(1000)
            .map(|p| {
                json!({
                    "country": p.country.as_deref(),
                    "city": p.city.as_deref(),
                    "lat": p.lat as f64 / 1e6,
                    "lon": p.lon as f64 / 1e6,
                    "packets": p.packets,
                    "dropped": p.dropped,
                })
            })
            .collect();
        json!({ "geoip": self.geoip, "places": places })
    }

    fn renderer(&self) -> Renderer {
        Renderer::new(SchemaOptions {
            kind: SchemaKind::Ecs,
            device: "Netfilter".into(),
            boolean_label: false,
            log_flags: logline::LogFlags::default(),
            hostname: self.host.clone(),
            community_id: Some(0),
            line_header: false,
        })
    }

    /// Server-sent events: each new event the filter takes, as it comes; at most 200 a
    /// wake-up (the newest, with a `skipped` event saying how many were left out), and a
    /// comment every 15 s so that proxies keep the connection and a gone client is noticed.
    fn tail(&self, r: &Request) -> Response {
        let filter = live_filter(r);
        let mut last = match r.param("after").and_then(|a| a.parse().ok()) {
            Some(a) => a,
            None => live::live().last_seq(),
        };
        let mut renderer = self.renderer();
        let stream = move |w: &mut dyn Write| -> std::io::Result<()> {
            w.write_all(b"retry: 2000\n\n")?;
            w.flush()?;
            while !crate::signals::shutdown_requested() {
                let l = live::live();
                l.wait_newer(last, Duration::from_secs(15));
                let newest = l.last_seq();
                if newest <= last {
                    w.write_all(b": keep-alive\n\n")?;
                    w.flush()?;
                    continue;
                }
                let events = l.since(last, &filter, 200);
                let first = events.first().map(|e| e.seq).unwrap_or(newest + 1);
                let skipped = first.saturating_sub(last + 1);
                if skipped > 0 && events.len() == 200 {
                    writeln!(
                        w,
                        "event: skipped\ndata: {{\"skipped_up_to\":{}}}\n",
                        first - 1
                    )?;
                }
                for e in &events {
                    let v = recent_json(e, Some(&mut renderer));
                    write!(w, "id: {}\nevent: event\ndata: {v}\n\n", e.seq)?;
                }
                w.flush()?;
                last = newest.max(events.last().map(|e| e.seq).unwrap_or(0));
            }
            Ok(())
        };
        Response {
            status: 200,
            content_type: "text/event-stream",
            body: Body::Stream(Box::new(stream)),
            headers: Vec::new(),
        }
    }
}

fn ago(secs: i64) -> Timestamp {
    let now = Timestamp::now();
    Timestamp {
        secs: now.secs - secs,
        micros: now.micros,
    }
}

fn time_text(t: Timestamp) -> String {
    let mut v = Vec::new();
    t.write_rfc3339_utc(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

fn limit(r: &Request, default: u64) -> Result<u64, Failure> {
    match r.param("limit") {
        Some(l) => l
            .parse::<u64>()
            .map(|n| n.clamp(1, 10_000))
            .map_err(|_| bad("limit: a number")),
        None => Ok(default),
    }
}

fn port(r: &Request, name: &str) -> Result<Option<u16>, Failure> {
    r.param(name)
        .map(|p| p.parse().map_err(|_| bad(format!("{name}: a port number"))))
        .transpose()
}

/// The filters of `nflogd query`, from the query string.
fn filters(r: &Request) -> Result<Filters, Failure> {
    let time = |name: &str| {
        r.param(name)
            .map(|t| parse_time(t).map_err(|e| bad(format!("{name}: {e:#}"))))
            .transpose()
    };
    let text = |name: &str| r.param(name).map(str::to_string);
    Ok(Filters {
        since: time("since")?,
        until: time("until")?,
        addr: text("addr"),
        src: text("src"),
        dst: text("dst"),
        port: port(r, "port")?,
        sport: port(r, "sport")?,
        dport: port(r, "dport")?,
        protocol: r
            .param("proto")
            .map(|p| protocol_number(p).map_err(bad))
            .transpose()?,
        action: text("action"),
        prefix: text("prefix"),
        event: text("event"),
    })
}

fn live_filter(r: &Request) -> Filter {
    Filter {
        text: r.param("q").map(str::to_string),
        action: r.param("action").map(str::to_string),
    }
}

fn action_slot(a: &str) -> usize {
    match a {
        "accept" => 1,
        "drop" => 2,
        "reject" => 3,
        _ => 0,
    }
}

/// A bucket's text (`2026-12-02T19:4`, the time cut to the step) as the instant it starts.
fn bucket_time(b: &str) -> String {
    match b.len() {
        16 => format!("{b}:00Z"),
        15 => format!("{b}0:00Z"),
        13 => format!("{b}:00:00Z"),
        10 => format!("{b}T00:00:00Z"),
        _ => b.to_string(),
    }
}

fn bucket_json(time: &str, c: &[u64; 4]) -> Value {
    json!({"time": time, "other": c[0], "accept": c[1], "drop": c[2], "reject": c[3]})
}

/// Per-minute counts kept in memory, for a dashboard without a store.
fn live_timeline(since: Timestamp, action: Option<&str>) -> Value {
    let buckets: Vec<Value> = live::live()
        .minutes(since.secs.div_euclid(60))
        .iter()
        .map(|m| {
            let t = Timestamp {
                secs: m.minute * 60,
                micros: 0,
            };
            let mut c = m.counts;
            if let Some(a) = action {
                let keep: Vec<usize> = a.split(',').map(|a| action_slot(a.trim())).collect();
                for (i, v) in c.iter_mut().enumerate() {
                    if !keep.contains(&i) {
                        *v = 0;
                    }
                }
            }
            let text = time_text(t);
            bucket_json(&format!("{}:00Z", &text[..16.min(text.len())]), &c)
        })
        .collect();
    json!({ "from": "live", "step_seconds": 60, "since": time_text(since), "buckets": buckets })
}

fn recent_json(e: &Arc<Recent>, renderer: Option<&mut Renderer>) -> Value {
    let record = renderer.map_or(Value::Null, |r| {
        let mut out = Vec::new();
        r.render(&e.event, &mut out);
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    });
    json!({
        "seq": e.seq,
        "time": time_text(e.time),
        "kind": e.kind,
        "action": e.action,
        "prefix": &*e.prefix,
        "src": e.src.map(|a| a.to_string()),
        "dst": e.dst.map(|a| a.to_string()),
        "sport": e.sport,
        "dport": e.dport,
        "protocol": e.protocol.and_then(packet::proto::name),
        "line": e.line,
        "record": record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_at_whole_steps() {
        assert_eq!(bucket_time("2026-12-02T19:45"), "2026-12-02T19:45:00Z");
        assert_eq!(bucket_time("2026-12-02T19:4"), "2026-12-02T19:40:00Z");
        assert_eq!(bucket_time("2026-12-02T19"), "2026-12-02T19:00:00Z");
        assert_eq!(bucket_time("2026-12-02"), "2026-12-02T00:00:00Z");
    }
}
