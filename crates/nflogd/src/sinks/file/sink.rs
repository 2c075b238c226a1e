//! The writer thread: renders each batch into one buffer and writes it in one call.

use super::config::FileSinkConfig;
use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::schema::{Renderer, SchemaOptions};
use anyhow::{Context, Result};
use crossbeam_channel::RecvTimeoutError;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const WRITE_CHUNK: usize = 256 * 1024;

enum Output {
    Stdout(std::io::Stdout),
    File(File),
}

impl Output {
    fn open(path: &str) -> Result<Output> {
        if path == "-" {
            return Ok(Output::Stdout(std::io::stdout()));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let f = crate::files::append_no_follow(Path::new(path))
            .with_context(|| format!("opening {path}"))?;
        Ok(Output::File(f))
    }

    /// Writes what it can of `b`; a short count or an error leaves the rest to the caller.
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(s) => {
                let mut l = s.lock();
                let n = l.write(b)?;
                l.flush()?;
                Ok(n)
            }
            Output::File(f) => f.write(b),
        }
    }
}

struct FileSink {
    name: String,
    cfg: FileSinkConfig,
    out: Output,
    renderer: Renderer,
    counters: Arc<ComponentCounters>,
    buf: Vec<u8>,
    pending: u64,
}

impl FileSink {
    /// Writes the buffer out. On a failure (a full disk, say) what is left stays buffered and
    /// is written by a later call, so nothing is lost or written twice; the sink takes no new
    /// batches meanwhile and its bounded queue absorbs them (then drops, counted).
    fn flush(&mut self) -> bool {
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    crate::rate_limited_warn!(
                        "sink `{}`: writing {} failed: {e}; retrying",
                        self.name,
                        self.cfg.path
                    );
                    break;
                }
            }
        }
        self.buf.drain(..done);
        if self.buf.is_empty() {
            ComponentCounters::add(&self.counters.sent, self.pending);
            self.pending = 0;
            true
        } else {
            false
        }
    }

    fn take(&mut self, batch: &Batch) {
        ComponentCounters::add(&self.counters.received, batch.len() as u64);
        for ev in batch.iter() {
            self.renderer.render(ev, &mut self.buf);
            self.buf.push(b'\n');
            self.pending += 1;
            if self.buf.len() >= WRITE_CHUNK {
                // On failure the rest of this batch is still rendered; the loop then takes no
                // more until the buffer is written.
                self.flush();
            }
        }
    }

    fn run(mut self, q: SinkQueue) {
        let mut generation = crate::signals::reopen_generation();
        let mut open = true;
        let mut backoff = Duration::from_millis(50);
        while open || !self.buf.is_empty() {
            if !self.buf.is_empty() && !self.flush() {
                if !open
                    && crate::signals::shutdown_requested()
                    && backoff >= Duration::from_secs(2)
                {
                    ComponentCounters::add(&self.counters.dropped, self.pending);
                    tracing::error!(
                        "sink `{}`: stopping with {} events unwritten to {}",
                        self.name,
                        self.pending,
                        self.cfg.path
                    );
                    break;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            backoff = Duration::from_millis(50);
            if !open {
                break;
            }
            match q.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => {
                    fail::fail_point!("file-sink-take");
                    self.take(&b);
                    q.taken(&b);
                    while self.buf.len() < WRITE_CHUNK {
                        let Ok(b) = q.rx.try_recv() else { break };
                        self.take(&b);
                        q.taken(&b);
                    }
                    if self.cfg.flush || self.buf.len() >= WRITE_CHUNK {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush();
                }
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            let g = crate::signals::reopen_generation();
            if g != generation && self.buf.is_empty() {
                generation = g;
                match Output::open(&self.cfg.path) {
                    Ok(o) => self.out = o,
                    Err(e) => tracing::error!(
                        "sink `{}`: reopening failed, keeping the old file: {e:#}",
                        self.name
                    ),
                }
            }
        }
    }
}

/// Opens the output (so a bad path fails start-up) and starts the writer thread.
pub fn spawn(
    name: &str,
    cfg: &FileSinkConfig,
    opts: SchemaOptions,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let out = Output::open(&cfg.path).with_context(|| format!("sink `{name}`"))?;
    tracing::info!(
        "sink `{name}`: writing {:?} records to {}",
        opts.kind,
        if cfg.path == "-" {
            "standard output"
        } else {
            &cfg.path
        }
    );
    let sink = FileSink {
        name: name.to_string(),
        cfg: cfg.clone(),
        out,
        renderer: Renderer::new(opts),
        counters,
        buf: Vec::with_capacity(WRITE_CHUNK + 4096),
        pending: 0,
    };
    Ok(std::thread::Builder::new()
        .name(format!("file:{name}"))
        .spawn(move || sink.run(queue))?)
}
