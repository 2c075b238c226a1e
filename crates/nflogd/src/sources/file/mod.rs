//! The `file` source: follows a log file like `tail -F` (kern.log, syslog, messages). It survives
//! rotation by rename (reads the old file to its end, then the new one from the start) and by
//! truncation (copytruncate: back to the start), and remembers its place across restarts in a
//! state file (device, inode, offset), written atomically.

use crate::metrics::ComponentCounters;
use crate::pipeline::{Fanout, Sent};
use crate::sources::lines::{LineBatcher, LineSplitter};
use crate::sources::Start;
use crate::transforms::action::ActionConfig;
use crate::units::Duration;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// `[sources.NAME] type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to follow.
    pub path: PathBuf,
    /// Where to start when no position was saved: `end` (default) or `beginning`.
    #[serde(default)]
    pub start: Start,
    /// Where the position is kept; default /var/lib/nflogd/<source name>.position.
    pub state_file: Option<PathBuf>,
    /// The file holds `journalctl -o export` output (entries of one field a line, ended by a
    /// blank line). Default false.
    #[serde(default)]
    pub journal_export: bool,
    /// How often to look for new data and rotation. Default "250ms".
    #[serde(default = "default_poll")]
    pub poll_interval: Duration,
}

fn default_poll() -> Duration {
    Duration(std::time::Duration::from_millis(250))
}

impl FileSourceConfig {
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            bail!("path: empty");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    dev: u64,
    ino: u64,
    offset: u64,
}

fn read_state(p: &Path) -> Option<Position> {
    let s = std::fs::read_to_string(p).ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some(Position {
        dev: it.next()??,
        ino: it.next()??,
        offset: it.next()??,
    })
}

fn write_state(p: &Path, pos: Position) -> std::io::Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::files::replace(
        p,
        format!("{} {} {}\n", pos.dev, pos.ino, pos.offset).as_bytes(),
    )
}

struct Follower {
    name: String,
    cfg: FileSourceConfig,
    state: PathBuf,
    file: Option<File>,
    pos: Position,
    split: LineSplitter,
    line_no: u64,
}

impl Follower {
    fn open_current(&mut self, from_start: bool) {
        match File::open(&self.cfg.path) {
            Ok(mut f) => {
                let Ok(m) = f.metadata() else { return };
                let offset = if from_start {
                    0
                } else {
                    f.seek(SeekFrom::End(0)).unwrap_or(0)
                };
                self.pos = Position {
                    dev: m.dev(),
                    ino: m.ino(),
                    offset,
                };
                let _ = f.seek(SeekFrom::Start(offset));
                self.file = Some(f);
                self.split = LineSplitter::default();
            }
            Err(_) => self.file = None,
        }
    }

    /// Resumes from the saved position when it names the same file and still fits.
    fn open_initial(&mut self) {
        let saved = read_state(&self.state);
        if let (Some(s), Ok(m)) = (saved, std::fs::metadata(&self.cfg.path)) {
            if s.dev == m.dev() && s.ino == m.ino() && s.offset <= m.len() {
                if let Ok(mut f) = File::open(&self.cfg.path) {
                    let _ = f.seek(SeekFrom::Start(s.offset));
                    self.pos = s;
                    self.file = Some(f);
                    tracing::info!(
                        "source `{}`: resuming {} at byte {}",
                        self.name,
                        self.cfg.path.display(),
                        s.offset
                    );
                    return;
                }
            }
            // The file was replaced while nflogd was down: read the new one whole.
            self.open_current(true);
            return;
        }
        self.open_current(self.cfg.start == Start::Beginning);
    }

    /// Reads what is there; returns whether anything was read. Each chunk read is sent on,
    /// and its end noted in `inflight` with the batch that carries it.
    fn drain(
        &mut self,
        batcher: &mut LineBatcher,
        buf: &mut [u8],
        inflight: &mut Inflight,
    ) -> bool {
        let mut any = false;
        loop {
            let Some(f) = self.file.as_mut() else {
                return any;
            };
            match f.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    fail::fail_point!("file-source-read");
                    any = true;
                    self.pos.offset += n as u64;
                    let line_no = &mut self.line_no;
                    self.split.feed(&buf[..n], |l| {
                        *line_no += 1;
                        batcher.line(l, Some(*line_no));
                    });
                    inflight.push_back((batcher.flush(), self.committed()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        any
    }

    /// After reaching the end: has the path been rotated or truncated?
    fn check_rotation(
        &mut self,
        batcher: &mut LineBatcher,
        buf: &mut [u8],
        inflight: &mut Inflight,
    ) {
        let Ok(m) = std::fs::metadata(&self.cfg.path) else {
            return;
        };
        if self.file.is_none() {
            self.open_current(true);
            return;
        }
        if m.dev() != self.pos.dev || m.ino() != self.pos.ino {
            // Renamed away: finish the old file, then take the new one from its start.
            self.drain(batcher, buf, inflight);
            if let Some(l) = self.split.finish() {
                self.line_no += 1;
                batcher.line(&l, Some(self.line_no));
            }
            tracing::info!(
                "source `{}`: {} was rotated; following the new file",
                self.name,
                self.cfg.path.display()
            );
            self.line_no = 0;
            self.open_current(true);
        } else if m.len() < self.pos.offset {
            tracing::info!(
                "source `{}`: {} was truncated; reading from its start",
                self.name,
                self.cfg.path.display()
            );
            if let Some(f) = self.file.as_mut() {
                let _ = f.seek(SeekFrom::Start(0));
            }
            self.pos.offset = 0;
            self.line_no = 0;
            self.split = LineSplitter::default();
        }
    }

    /// The offset of the last complete line, which is what a restart must resume from.
    fn committed(&self) -> Position {
        Position {
            offset: self.pos.offset - self.split.pending() as u64,
            ..self.pos
        }
    }
}

pub fn spawn(
    name: &str,
    cfg: &FileSourceConfig,
    actions: Arc<ActionConfig>,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let state = cfg
        .state_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/lib/nflogd/{name}.position")));
    let mut fol = Follower {
        name: name.to_string(),
        cfg: cfg.clone(),
        state,
        file: None,
        pos: Position {
            dev: 0,
            ino: 0,
            offset: 0,
        },
        split: LineSplitter::default(),
        line_no: 0,
    };
    fol.open_initial();
    if fol.file.is_none() {
        tracing::warn!(
            "source `{name}`: {} does not exist yet; waiting for it",
            cfg.path.display()
        );
    }
    tracing::info!(
        "source `{name}`: following {} (position kept in {})",
        cfg.path.display(),
        fol.state.display()
    );
    let mut batcher = LineBatcher::new(
        &cfg.path.display().to_string(),
        actions,
        fanout,
        counters.clone(),
    );
    if cfg.journal_export {
        batcher.decoder = batcher.decoder.reading_journal_export();
    }
    let name = name.to_string();
    Ok(crate::signals::spawn_thread(
        format!("file:{name}"),
        move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut inflight = Inflight::new();
            let mut saved = None;
            while !crate::signals::shutdown_requested() {
                let any = fol.drain(&mut batcher, &mut buf, &mut inflight);
                save_taken(&fol, &batcher, &mut inflight, &mut saved, &counters);
                if !any {
                    fol.check_rotation(&mut batcher, &mut buf, &mut inflight);
                    std::thread::sleep(fol.cfg.poll_interval.0);
                }
            }
            inflight.push_back((batcher.flush(), fol.committed()));
            // The sinks drain their queues now; the position moves only as far as they take.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while inflight
                .iter()
                .any(|(s, _)| s.as_ref().is_some_and(|s| !batcher.taken(s)))
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            save_taken(&fol, &batcher, &mut inflight, &mut saved, &counters);
        },
    )?)
}

/// Chunks sent and not yet known to be taken by every sink: the batch that carries a chunk's
/// last lines (none when it had no netfilter line) and the position after it.
type Inflight = VecDeque<(Option<Sent>, Position)>;

/// Saves the position after the newest chunk every sink has taken: a restart then reads again
/// what a sink had not taken yet (a duplicate at worst), and never skips it. Sinks take batches
/// in order, so a chunk is taken when its own batch is.
fn save_taken(
    fol: &Follower,
    batcher: &LineBatcher,
    inflight: &mut Inflight,
    saved: &mut Option<Position>,
    counters: &ComponentCounters,
) {
    let mut reached = None;
    while let Some((sent, pos)) = inflight.front() {
        if sent.as_ref().is_some_and(|s| !batcher.taken(s)) {
            break;
        }
        reached = Some(*pos);
        inflight.pop_front();
    }
    let Some(pos) = reached.filter(|p| *saved != Some(*p)) else {
        return;
    };
    if let Err(e) = write_state(&fol.state, pos) {
        ComponentCounters::add(&counters.errors, 1);
        crate::rate_limited_warn!(
            "source `{}`: cannot save the position to {}: {e}",
            fol.name,
            fol.state.display()
        );
    }
    *saved = Some(pos);
}

impl super::Source for FileSourceConfig {
    fn validate(&self) -> anyhow::Result<()> {
        FileSourceConfig::validate(self)
    }

    fn can_wait(&self) -> bool {
        true
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.actions, ctx.output, ctx.counters)
    }
}
