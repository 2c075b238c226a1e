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

impl super::Sink for SyslogSinkConfig {
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
        SyslogSinkConfig::validate(self)
    }

    fn spawn(&self, ctx: super::SinkContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let mut flags = logline::LogFlags::default();
        for n in &self.log_flags {
            flags = flags | logline::LogFlags::from_name(n).unwrap_or_default();
        }
        let opts = crate::schema::SchemaOptions {
            kind: self.schema,
            device: "Netfilter".into(),
            boolean_label: false,
            log_flags: flags,
            hostname: ctx.host,
            community_id: ctx.community_id,
            line_header: false,
        };
        spawn(&ctx.name, self, opts, ctx.queue, ctx.counters)
    }
}
