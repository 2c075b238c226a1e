//! The `syslog` sink: ships records to a syslog receiver or SIEM intake. RFC 5424 or RFC 3164
//! messages over UDP, TCP or TLS (rustls; RFC 5425 octet counting, or LF framing), with
//! structured data escaped as RFC 5424 requires, and reconnection with backoff. A batch leaves
//! the sink only once written; while the receiver is away, batches wait in the sink's bounded
//! queue (a disk spool is not part of this sink yet).

mod config;
mod format;
mod sink;

pub use config::SyslogSinkConfig;
pub use sink::spawn;
