//! Sinks: where events go. Each runs on its own thread, reading its own queue.

pub mod clickhouse;
pub mod database;
pub mod file;
pub mod postgres;
pub mod sqlite;
pub mod syslog;
