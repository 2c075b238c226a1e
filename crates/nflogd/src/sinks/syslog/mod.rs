//! The `syslog` sink: ships records to a syslog receiver or SIEM intake. RFC 5424 or RFC 3164
//! messages over UDP, TCP or TLS (rustls; RFC 5425 octet counting, or LF framing), with
//! structured data escaped as RFC 5424 requires, and reconnection with backoff. Every batch goes
//! through the sink's disk spool (`crate::spool`) and leaves it only once written to the
//! receiver: outages, restarts and SIGKILL lose nothing (duplicates are possible after a crash).

mod config;
mod format;
mod sink;

pub use config::SyslogSinkConfig;
pub use sink::spawn;
