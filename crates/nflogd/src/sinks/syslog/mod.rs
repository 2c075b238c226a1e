//! The `syslog` sink: ships records to a syslog receiver or SIEM intake. RFC 5424 or RFC 3164
//! messages over UDP, TCP or TLS (rustls; RFC 5425 octet counting, or LF framing) or RELP, with
//! structured data escaped as RFC 5424 requires, and reconnection with backoff. Every batch goes
//! through the sink's disk spool (`crate::spool`) and leaves it only once the receiver has it
//! (see `sink`): outages, restarts, SIGKILL and broken connections lose nothing (duplicates are
//! possible, and counted).

mod config;
mod conn;
mod format;
mod relp;
mod sink;

pub use config::SyslogSinkConfig;
pub use sink::spawn;
