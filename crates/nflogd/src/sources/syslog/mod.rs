//! The `syslog` source: a listener so one nflogd collects the LOG lines of many firewalls.
//! UDP (one message per datagram), TCP and TLS (rustls) with both RFC 6587 framings, told apart
//! per frame (octet counting `LEN SP MSG`, or LF-terminated), and RELP (plain or TLS), which
//! answers each message once the pipeline has taken it; RFC 3164 and RFC 5424 messages.
//! Per-connection limits: a maximum message size and a maximum number of connections.

mod config;
pub mod framing;
mod listener;
mod relp;
mod udp;

pub use config::{Mode, SyslogConfig};
pub use listener::spawn;

impl super::Source for SyslogConfig {
    fn validate(&self) -> anyhow::Result<()> {
        SyslogConfig::validate(self)
    }

    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        if crate::privileges::binds_privileged_port(&self.address) {
            vec![crate::privileges::Capability::CAP_NET_BIND_SERVICE]
        } else {
            Vec::new()
        }
    }

    fn can_wait(&self) -> bool {
        self.mode != Mode::Udp
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.actions, ctx.output, ctx.counters)
    }
}
