//! The `nflog` source: packets from nfnetlink_log groups (nft `log group N`, iptables `-j NFLOG`).

mod config;
mod decode;
pub mod ifnames;
mod source;

pub use config::NflogConfig;
pub use source::spawn;

impl super::Source for NflogConfig {
    fn validate(&self) -> anyhow::Result<()> {
        NflogConfig::validate(self)
    }

    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        super::kernel_socket_capabilities(self.netns.as_deref())
    }

    fn can_wait(&self) -> bool {
        false
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.actions, ctx.output, ctx.counters)
    }
}
