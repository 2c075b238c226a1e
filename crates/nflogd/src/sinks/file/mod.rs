//! The `file` sink: one record per line to a file (or stdout, or a socket as ulogd2's JSON
//! output's socket modes), reopened on SIGHUP, rotated by size or age (rotate.rs).

mod config;
mod rotate;
mod sink;
mod socket;

pub use config::FileSinkConfig;
pub use sink::{spawn, spawn_writer, Records, Writer};

impl super::Sink for FileSinkConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn queue_limits(&self) -> crate::pipeline::QueueLimits {
        crate::pipeline::QueueLimits {
            events: self.queue_max_events,
            bytes: self.queue_max_bytes.0,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        FileSinkConfig::validate(self)
    }

    fn spawn(&self, ctx: super::SinkContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let opts = crate::schema::SchemaOptions {
            kind: self.schema,
            device: self.device.clone(),
            boolean_label: self.boolean_label,
            log_flags: self.log_flags()?,
            hostname: ctx.host,
            community_id: ctx.community_id,
            line_header: true,
        };
        spawn(&ctx.name, self, opts, ctx.queue, ctx.counters)
    }
}
