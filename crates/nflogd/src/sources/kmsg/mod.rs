//! The `kmsg` source: netfilter lines from /dev/kmsg as the kernel prints them (LOG/`log`
//! without a group, TRACE, conntrack invalid-packet logging). Other kernel messages are skipped
//! and counted; a reader overrun (EPIPE) is counted with the exact number of records it lost.

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::sources::lines::LineBatcher;
use crate::sources::Start;
use crate::transforms::action::ActionConfig;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

/// `[sources.NAME] type = "kmsg"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsgConfig {
    /// Device to read; default /dev/kmsg.
    #[serde(default = "default_path")]
    pub path: String,
    /// `end` (default) or `beginning` of the ring buffer.
    #[serde(default)]
    pub start: Start,
}

fn default_path() -> String {
    "/dev/kmsg".into()
}

pub fn spawn(
    name: &str,
    cfg: &KmsgConfig,
    actions: Arc<ActionConfig>,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&cfg.path)
        .with_context(|| format!("opening {}", cfg.path))?;
    if cfg.start == Start::End {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0))
            .with_context(|| format!("seeking {}", cfg.path))?;
    }
    tracing::info!("source `{name}`: reading netfilter lines from {}", cfg.path);
    let mut batcher = LineBatcher::new("kmsg", actions, fanout, counters.clone());
    let name = name.to_string();
    Ok(crate::signals::spawn_thread(
        format!("kmsg:{name}"),
        move || {
            // One read returns one record; a record is at most about 8 KiB.
            let mut buf = vec![0u8; 16 * 1024];
            let mut last_seq: Option<u64> = None;
            while !crate::signals::shutdown_requested() {
                let mut pfd = libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 250) } <= 0 {
                    batcher.flush();
                    continue;
                }
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            let rec = String::from_utf8_lossy(&buf[..n]);
                            let first = rec.lines().next().unwrap_or("");
                            let env = logline::envelope::open(first);
                            if let (Some(seq), Some(last)) = (env.kmsg_seq, last_seq) {
                                if seq > last + 1 {
                                    ComponentCounters::add(&counters.kernel_lost, seq - last - 1);
                                }
                            }
                            last_seq = env.kmsg_seq.or(last_seq);
                            let seq = env.kmsg_seq;
                            batcher.opened(env, first, seq);
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                            // Overrun: the ring wrapped past us. The next record's sequence number
                            // tells how many were lost.
                            ComponentCounters::add(&counters.overruns, 1);
                            crate::rate_limited_warn!(
                                "source `{name}`: kernel log ring overrun; records lost"
                            );
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            ComponentCounters::add(&counters.errors, 1);
                            crate::rate_limited_warn!("source `{name}`: read failed: {e}");
                            break;
                        }
                    }
                }
                batcher.flush();
            }
            batcher.flush();
        },
    )?)
}

impl super::Source for KmsgConfig {
    // Reading the kernel log while kernel.dmesg_restrict is 1 (Debian's default).
    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        vec![crate::privileges::Capability::CAP_SYSLOG]
    }

    fn can_wait(&self) -> bool {
        true
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.actions, ctx.output, ctx.counters)
    }
}
