//! The `dashboard` sink: hands what it takes to the live views of the HTTP dashboard and API
//! (`http::live`). With `http_address` set, nflogd adds one named `dashboard` that takes what
//! every other sink takes; a configuration that defines its own chooses what is shown.

use crate::pipeline::QueueLimits;
use crate::sinks::{Sink, SinkContext};
use anyhow::Result;
use crossbeam_channel::RecvTimeoutError;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Duration;

/// `[sinks.NAME] type = "dashboard"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSinkConfig {
    pub inputs: Vec<String>,
}

impl Sink for DashboardSinkConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Small: it only keeps the last events, and a view that cannot keep up drops (counted)
    /// rather than hold memory.
    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            events: 20_000,
            bytes: 16 << 20,
        }
    }

    fn spawn(&self, ctx: SinkContext) -> Result<JoinHandle<()>> {
        Ok(std::thread::Builder::new()
            .name(format!("sink-{}", ctx.name))
            .spawn(move || loop {
                match ctx.queue.recv_timeout(Duration::from_millis(200)) {
                    Ok(batch) => {
                        ctx.queue.taken(&batch);
                        ctx.counters.received.fetch_add(batch.len() as u64, Relaxed);
                        crate::http::live::live().push(&batch);
                        ctx.counters.sent.fetch_add(batch.len() as u64, Relaxed);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            })?)
    }
}
