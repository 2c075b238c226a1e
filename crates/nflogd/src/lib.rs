//! nflogd as a library: the daemon's parts (config, sources, pipeline, sinks, spool, store,
//! schemas), so that the command line (main.rs), the fuzz targets and tests reach the same code.

pub mod capture;
pub mod config;
pub mod doctor;
pub mod files;
pub mod graph;
pub mod guard_cmd;
pub mod http;
pub mod import_ulogd;
pub mod manpage;
pub mod metrics;
pub mod parse_cmd;
pub mod pipeline;
pub mod privileges;
pub mod query_cmd;
pub mod registry;
pub mod relp;
pub mod schema;
pub mod signals;
pub mod sinks;
pub mod sources;
pub mod spool;
pub mod store;
pub mod tls;
pub mod top_cmd;
pub mod topology;
pub mod trace;
pub mod transforms;
pub mod units;

/// Logs a warning at most once per second per call site.
#[macro_export]
macro_rules! rate_limited_warn {
    ($($arg:tt)*) => {{
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if LAST.swap(now, std::sync::atomic::Ordering::Relaxed) != now {
            tracing::warn!($($arg)*);
        }
    }};
}
