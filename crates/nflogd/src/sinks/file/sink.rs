//! The writer thread: renders each batch into one buffer and writes it in one call.

use super::config::FileSinkConfig;
use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::schema::{Renderer, SchemaOptions};
use anyhow::{Context, Result};
use crossbeam_channel::RecvTimeoutError;
use std::fs::{File, OpenOptions};
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
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        Ok(Output::File(f))
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(s) => {
                let mut l = s.lock();
                l.write_all(b)?;
                l.flush()
            }
            Output::File(f) => f.write_all(b),
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
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.out.write_all(&self.buf) {
            Ok(()) => ComponentCounters::add(&self.counters.sent, self.pending),
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                ComponentCounters::add(&self.counters.dropped, self.pending);
                crate::rate_limited_warn!(
                    "sink `{}`: writing {} failed: {e}",
                    self.name,
                    self.cfg.path
                );
            }
        }
        self.buf.clear();
        self.pending = 0;
    }

    fn take(&mut self, batch: &Batch) {
        ComponentCounters::add(&self.counters.received, batch.len() as u64);
        for ev in batch.iter() {
            self.renderer.render(ev, &mut self.buf);
            self.buf.push(b'\n');
            self.pending += 1;
            if self.buf.len() >= WRITE_CHUNK {
                self.flush();
            }
        }
    }

    fn run(mut self, q: SinkQueue) {
        let mut generation = crate::signals::reopen_generation();
        loop {
            match q.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => {
                    self.take(&b);
                    q.taken(&b);
                    while let Ok(b) = q.rx.try_recv() {
                        self.take(&b);
                        q.taken(&b);
                    }
                    if self.cfg.flush {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.flush(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let g = crate::signals::reopen_generation();
            if g != generation {
                generation = g;
                self.flush();
                match Output::open(&self.cfg.path) {
                    Ok(o) => self.out = o,
                    Err(e) => tracing::error!(
                        "sink `{}`: reopening failed, keeping the old file: {e:#}",
                        self.name
                    ),
                }
            }
        }
        self.flush();
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
