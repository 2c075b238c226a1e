//! The `file` sink: one record per line to a file (or stdout), reopened on SIGHUP.

mod config;
mod sink;

pub use config::FileSinkConfig;
pub use sink::spawn;
