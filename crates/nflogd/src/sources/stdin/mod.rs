//! The `stdin` source: LOG lines on standard input until it closes (any wrapper).

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::sources::lines::{LineBatcher, LineSplitter};
use crate::transforms::action::ActionConfig;
use anyhow::Result;
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;

/// `[sources.NAME] type = "stdin"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Standard input is `journalctl -o export` output. Default false.
    #[serde(default)]
    pub journal_export: bool,
}

pub fn spawn(
    name: &str,
    cfg: &StdinConfig,
    actions: Arc<ActionConfig>,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    tracing::info!("source `{name}`: reading LOG lines from standard input");
    let mut batcher = LineBatcher::new("stdin", actions, fanout, counters);
    if cfg.journal_export {
        batcher.decoder = batcher.decoder.reading_journal_export();
    }
    Ok(crate::signals::spawn_thread(
        format!("stdin:{name}"),
        move || {
            let mut split = LineSplitter::default();
            let mut buf = vec![0u8; 64 * 1024];
            let mut stdin = std::io::stdin().lock();
            let mut n = 0u64;
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        split.feed(&buf[..k], |l| {
                            n += 1;
                            batcher.line(l, Some(n));
                        });
                        batcher.flush();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if let Some(l) = split.finish() {
                batcher.line(&l, Some(n + 1));
            }
            batcher.flush();
        },
    )?)
}

impl super::Source for StdinConfig {
    fn can_wait(&self) -> bool {
        true
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.actions, ctx.output, ctx.counters)
    }
}
