//! Every counter nflogd keeps, in one place. Components register a `ComponentCounters` and bump
//! it; the stats logger, /metrics and the API read them all.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// Counters of one source or sink.
#[derive(Debug, Default)]
pub struct ComponentCounters {
    /// Events that entered the component (decoded by a source, taken by a sink).
    pub received: AtomicU64,
    /// Events a sink wrote and flushed.
    pub sent: AtomicU64,
    /// Events lost inside nflogd (a full queue, a failed write), never silently.
    pub dropped: AtomicU64,
    /// Malformed input skipped (netlink messages that do not parse).
    pub malformed: AtomicU64,
    /// Attributes of unknown types, ignored.
    pub unknown_attributes: AtomicU64,
    /// Events the kernel reports lost before nflogd saw them (NFLOG sequence gaps).
    pub kernel_lost: AtomicU64,
    /// Socket overruns (ENOBUFS) the kernel signalled.
    pub overruns: AtomicU64,
    /// Packets that were cut short by the snaplen (decoded as far as they go).
    pub truncated: AtomicU64,
    /// Write or delivery errors.
    pub errors: AtomicU64,
    /// Lines that are not netfilter records (other kernel or daemon messages), skipped.
    pub ignored: AtomicU64,
    /// Events written to the sink's disk spool.
    pub spooled: AtomicU64,
    /// Events found in the spool at start-up and sent again (some may be duplicates).
    pub replayed: AtomicU64,
    /// Events sent again after a broken connection, because the receiver had not confirmed
    /// them (some may be duplicates).
    pub resent: AtomicU64,
    /// Spool records skipped as corrupt or cut short.
    pub spool_corrupt: AtomicU64,
    /// Conntrack table dumps after an overrun, to find the flows whose events were lost.
    pub resyncs: AtomicU64,
    /// Flows a resync found whose NEW or DESTROY event had been lost (recorded from the dump).
    pub resynced: AtomicU64,
    /// Flows not kept in the open-flow table because it was full (their records still go out).
    pub untracked: AtomicU64,
    /// Values a database sink changed to fit their column (the row was kept).
    pub coerced: AtomicU64,
    /// Connections a listener refused (too many in all, or from one address).
    pub refused: AtomicU64,
    /// Idle connections a listener closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed for idling or for not finishing their TLS handshake in time.
    pub timeouts: AtomicU64,
    /// Guards: failures counted (matched lines, scan packets), bans and unbans made, and
    /// failures from allowed addresses (never banned).
    pub failures: AtomicU64,
    pub bans: AtomicU64,
    pub unbans: AtomicU64,
    pub allowed: AtomicU64,
    /// Guards: times the kernel's ban table was put back after someone removed it.
    pub restored: AtomicU64,
    /// Gauge: a guard's active bans.
    pub banned: AtomicU64,
    /// Gauge: events in the spool not yet confirmed by the receiver.
    pub spool_pending: AtomicU64,
    /// Gauge: events in the sink's memory queue.
    pub queued: AtomicU64,
    /// Gauge: bytes those events take.
    pub queued_bytes: AtomicU64,
    /// Gauge: flows in a conntrack source's open-flow table.
    pub open_flows: AtomicU64,
}

impl ComponentCounters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

struct Entry {
    kind: &'static str,
    name: String,
    counters: Arc<ComponentCounters>,
}

fn registry() -> &'static Mutex<Vec<Entry>> {
    static R: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers a component's counters under `kind` ("source", "sink") and `name`.
pub fn register(kind: &'static str, name: &str) -> Arc<ComponentCounters> {
    let c = Arc::new(ComponentCounters::default());
    if let Ok(mut r) = registry().lock() {
        r.push(Entry {
            kind,
            name: name.to_string(),
            counters: c.clone(),
        });
    }
    c
}

type Field = (&'static str, fn(&ComponentCounters) -> &AtomicU64);

const FIELDS: [Field; 26] = [
    ("received", |c| &c.received),
    ("sent", |c| &c.sent),
    ("dropped", |c| &c.dropped),
    ("malformed", |c| &c.malformed),
    ("unknown_attributes", |c| &c.unknown_attributes),
    ("kernel_lost", |c| &c.kernel_lost),
    ("overruns", |c| &c.overruns),
    ("truncated", |c| &c.truncated),
    ("errors", |c| &c.errors),
    ("ignored", |c| &c.ignored),
    ("spooled", |c| &c.spooled),
    ("replayed", |c| &c.replayed),
    ("resent", |c| &c.resent),
    ("spool_corrupt", |c| &c.spool_corrupt),
    ("resyncs", |c| &c.resyncs),
    ("resynced", |c| &c.resynced),
    ("untracked", |c| &c.untracked),
    ("coerced", |c| &c.coerced),
    ("refused", |c| &c.refused),
    ("evicted", |c| &c.evicted),
    ("timeouts", |c| &c.timeouts),
    ("failures", |c| &c.failures),
    ("bans", |c| &c.bans),
    ("unbans", |c| &c.unbans),
    ("allowed", |c| &c.allowed),
    ("restored", |c| &c.restored),
];

/// Gauges: current values, not totals.
const GAUGES: [Field; 5] = [
    ("spool_pending", |c| &c.spool_pending),
    ("queued", |c| &c.queued),
    ("queued_bytes", |c| &c.queued_bytes),
    ("open_flows", |c| &c.open_flows),
    ("banned", |c| &c.banned),
];

/// One line per component with its counters, for the stats log: the non-zero ones (`all`
/// false, the periodic line), or every one (the final line, which tests read).
pub fn summary(all: bool) -> String {
    let mut out = String::new();
    let Ok(r) = registry().lock() else { return out };
    for e in r.iter() {
        let _ = write!(out, "{}.{}:", e.kind, e.name);
        for (name, f) in FIELDS.iter().chain(GAUGES.iter()) {
            let v = f(&e.counters).load(Relaxed);
            if all || v != 0 || *name == "received" {
                let _ = write!(out, " {name}={v}");
            }
        }
        out.push_str("; ");
    }
    out
}

/// All counters in the Prometheus text exposition format.
pub fn prometheus() -> String {
    let mut out = String::new();
    let Ok(r) = registry().lock() else { return out };
    // Counters are totals (`_total`), gauges current values.
    let kinds = FIELDS
        .iter()
        .map(|f| (f, "_total", "counter"))
        .chain(GAUGES.iter().map(|f| (f, "", "gauge")));
    for ((name, f), suffix, kind) in kinds {
        let _ = writeln!(out, "# TYPE nflogd_{name}{suffix} {kind}");
        for e in r.iter() {
            let _ = writeln!(
                out,
                "nflogd_{name}{suffix}{{component_kind=\"{}\",component=\"{}\"}} {}",
                e.kind,
                e.name,
                f(&e.counters).load(Relaxed)
            );
        }
    }
    out
}

/// Every component's counters and gauges, for the API: `{kind, name, counters: {…}}`.
pub fn snapshot() -> serde_json::Value {
    let Ok(r) = registry().lock() else {
        return serde_json::Value::Array(Vec::new());
    };
    r.iter()
        .map(|e| {
            let counters: serde_json::Map<String, serde_json::Value> = FIELDS
                .iter()
                .chain(GAUGES.iter())
                .map(|(name, f)| (name.to_string(), f(&e.counters).load(Relaxed).into()))
                .collect();
            serde_json::json!({"kind": e.kind, "name": e.name, "counters": counters})
        })
        .collect()
}
