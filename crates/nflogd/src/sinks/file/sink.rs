//! The writer thread: renders each batch into one buffer and writes it in one call. What a
//! record looks like is the `Records` it is given: lines of a schema here, a capture's packets
//! for the pcap sink.

use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::schema::{Renderer, SchemaOptions};
use anyhow::{Context, Result};
use crossbeam_channel::RecvTimeoutError;
use event::Event;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const WRITE_CHUNK: usize = 256 * 1024;

/// How events become bytes in a file.
pub trait Records: Send + 'static {
    /// Appends `ev`'s record to `out`; false when this kind of file has no record for it.
    fn append(&mut self, ev: &Event, out: &mut Vec<u8>) -> bool;
    /// What an empty file starts with (a capture's header), and whether a non-empty one
    /// starting with `head` may be appended to (checked at each open).
    fn file_header(&self) -> Vec<u8> {
        Vec::new()
    }
    fn check_existing(&self, head: &[u8]) -> Result<()> {
        let _ = head;
        Ok(())
    }
}

/// One line of a schema per event.
pub struct Lines(pub Renderer);

impl Records for Lines {
    fn append(&mut self, ev: &Event, out: &mut Vec<u8>) -> bool {
        self.0.render(ev, out);
        out.push(b'\n');
        true
    }
}

enum Output {
    Stdout(std::io::Stdout),
    File(File),
    /// A socket (`tcp://`, `udp://`, `unix:`), None while its peer is away.
    Socket(super::socket::Target, Option<super::socket::Peer>),
}

impl Output {
    /// Opens `path` for appending; a file that is empty gets `records`' header first, one that
    /// is not must suit them.
    fn open(path: &str, records: &dyn Records) -> Result<Output> {
        let mut out = Self::open_path(path)?;
        let header = records.file_header();
        if header.is_empty() {
            return Ok(out);
        }
        let len = match &out {
            Output::File(f) => f.metadata()?.len(),
            Output::Stdout(_) => 0,
            // A stream peer gets no file header.
            Output::Socket(..) => return Ok(out),
        };
        if len == 0 {
            let mut done = 0;
            while done < header.len() {
                done += out.write(&header[done..])?;
            }
        } else {
            let mut head = vec![0; header.len()];
            let mut f = File::open(path)?;
            std::io::Read::read_exact(&mut f, &mut head)
                .with_context(|| format!("reading the start of {path}"))?;
            records
                .check_existing(&head)
                .with_context(|| format!("appending to {path}"))?;
        }
        Ok(out)
    }

    fn open_path(path: &str) -> Result<Output> {
        if path == "-" {
            return Ok(Output::Stdout(std::io::stdout()));
        }
        if let Some(t) = super::socket::target(path) {
            // A peer that is not there yet is not a reason not to start: it is connected to
            // at the first write, and records wait meanwhile.
            let peer = super::socket::connect(&t)
                .map_err(|e| tracing::warn!("{path}: {e}; connecting again at the next write"))
                .ok();
            return Ok(Output::Socket(t, peer));
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

    /// The file's length (0 for a stream).
    fn len(&self) -> u64 {
        match self {
            Output::File(f) => f.metadata().map_or(0, |m| m.len()),
            _ => 0,
        }
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
            Output::Socket(t, peer) => {
                if peer.is_none() {
                    *peer = Some(super::socket::connect(t)?);
                }
                let r = peer.as_mut().map_or(Ok(0), |p| p.write(b));
                if r.is_err() {
                    // Connected again at the next try; what was not sent is still buffered.
                    *peer = None;
                }
                r
            }
        }
    }
}

struct FileSink {
    name: String,
    path: String,
    rotation: Option<super::rotate::Rotation>,
    /// Bytes in the file (for `rotate_size`).
    written: u64,
    /// Flush after every batch.
    flush: bool,
    out: Output,
    records: Box<dyn Records>,
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
                        self.path
                    );
                    break;
                }
            }
        }
        self.buf.drain(..done);
        self.written += done as u64;
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
            if !self.records.append(ev, &mut self.buf) {
                continue;
            }
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
                        self.path
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
            match q.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => {
                    fail::fail_point!("file-sink-take");
                    self.take(&b);
                    q.taken(&b);
                    while self.buf.len() < WRITE_CHUNK {
                        let Ok(b) = q.try_recv() else { break };
                        self.take(&b);
                        q.taken(&b);
                    }
                    if self.flush || self.buf.len() >= WRITE_CHUNK {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush();
                }
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            // Rotation happens between whole writes: nothing is cut or written twice.
            if self.buf.is_empty() && self.rotation.as_ref().is_some_and(|r| r.due(self.written)) {
                self.rotate();
            }
            let g = crate::signals::reopen_generation();
            if g != generation && self.buf.is_empty() {
                generation = g;
                match Output::open(&self.path, &*self.records) {
                    Ok(o) => {
                        self.written = o.len();
                        self.out = o;
                    }
                    Err(e) => tracing::error!(
                        "sink `{}`: reopening failed, keeping the old file: {e:#}",
                        self.name
                    ),
                }
            }
        }
        if let Some(r) = &mut self.rotation {
            r.finish();
        }
    }

    /// The file moves aside and a new one starts; on a failure the sink writes on to the file
    /// it has and tries again at the next write.
    fn rotate(&mut self) {
        let Some(r) = &mut self.rotation else {
            return;
        };
        let rotated = r
            .rotate()
            .and_then(|()| Output::open(&self.path, &*self.records));
        match rotated {
            Ok(o) => {
                self.written = o.len();
                self.out = o;
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                crate::rate_limited_warn!(
                    "sink `{}`: rotating {} failed: {e:#}",
                    self.name,
                    self.path
                );
            }
        }
    }
}

/// Opens the output (so a bad path fails start-up) and starts the writer thread.
pub fn spawn(
    name: &str,
    cfg: &super::FileSinkConfig,
    opts: SchemaOptions,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let what = format!("{:?} records", opts.kind);
    let records = Box::new(Lines(Renderer::new(opts)));
    let w = Writer {
        path: &cfg.path,
        flush: cfg.flush,
        rotation: cfg.rotation(),
    };
    spawn_writer(name, w, &what, records, queue, counters)
}

/// Where and how a writer writes.
pub struct Writer<'a> {
    /// A file, `-` (standard output) or a socket.
    pub path: &'a str,
    /// Flush after every batch.
    pub flush: bool,
    pub rotation: Option<super::rotate::Policy>,
}

/// Starts a writer of `records` to `path` (`-`: standard output).
pub fn spawn_writer(
    name: &str,
    w: Writer,
    what: &str,
    records: Box<dyn Records>,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let path = w.path;
    let out = Output::open(path, &*records).with_context(|| format!("sink `{name}`"))?;
    tracing::info!(
        "sink `{name}`: writing {what} to {}",
        if path == "-" { "standard output" } else { path }
    );
    let sink = FileSink {
        name: name.to_string(),
        path: path.to_string(),
        rotation: w
            .rotation
            .map(|p| super::rotate::Rotation::new(p, Path::new(path))),
        written: out.len(),
        flush: w.flush,
        out,
        records,
        counters,
        buf: Vec::with_capacity(WRITE_CHUNK + 4096),
        pending: 0,
    };
    Ok(std::thread::Builder::new()
        .name(format!("file:{name}"))
        .spawn(move || sink.run(queue))?)
}
