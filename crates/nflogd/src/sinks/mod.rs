//! Sinks: where events go. Each runs on its own thread, reading its own queue.

pub mod file;
pub mod syslog;
