//! Built-in rotation of a file sink's file: when it reaches `rotate_size` or is older than
//! `rotate_interval`, it becomes `PATH.1` (the older ones `PATH.2`, … up to `keep`), a new file
//! starts, and `PATH.1` is compressed in the background (`PATH.1.gz`, `PATH.1.zst`). The writer
//! rotates only between whole writes, so no record is cut; a follower holding the old file
//! reads it to its end, then the new one.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Gzip,
    Zstd,
}

impl Compress {
    fn extension(self) -> &'static str {
        match self {
            Compress::Gzip => ".gz",
            Compress::Zstd => ".zst",
        }
    }
}

/// When and how to rotate.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub size: Option<u64>,
    pub interval: Option<Duration>,
    pub compress: Option<Compress>,
    pub keep: u32,
}

pub struct Rotation {
    policy: Policy,
    path: PathBuf,
    /// When the current file was started (for the interval).
    started: Instant,
    /// The compression of the last rotated file, still running.
    compressing: Option<JoinHandle<()>>,
}

impl Rotation {
    pub fn new(policy: Policy, path: &Path) -> Self {
        Rotation {
            policy,
            path: path.to_path_buf(),
            started: Instant::now(),
            compressing: None,
        }
    }

    /// Whether a file of `len` bytes is due (an empty file never is).
    pub fn due(&self, len: u64) -> bool {
        len > 0
            && (self.policy.size.is_some_and(|s| len >= s)
                || self
                    .policy
                    .interval
                    .is_some_and(|i| self.started.elapsed() >= i))
    }

    fn numbered(&self, n: u32, ext: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}{ext}"));
        PathBuf::from(p)
    }

    /// Moves the current file aside (the caller then opens a new one) and starts compressing
    /// it.
    pub fn rotate(&mut self) -> Result<()> {
        // One compression at a time: the file it works on is about to be renamed.
        if let Some(h) = self.compressing.take() {
            let _ = h.join();
        }
        let ext = self.policy.compress.map_or("", Compress::extension);
        let keep = self.policy.keep.max(1);
        // Both forms of a number: a compressed one, and one left uncompressed (compression
        // off before, or a failed one).
        for e in [ext, ""] {
            let _ = std::fs::remove_file(self.numbered(keep, e));
        }
        for n in (1..keep).rev() {
            for e in [ext, ""] {
                let from = self.numbered(n, e);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1, e))
                        .with_context(|| format!("renaming {}", from.display()))?;
                }
            }
        }
        let first = self.numbered(1, "");
        std::fs::rename(&self.path, &first)
            .with_context(|| format!("renaming {}", self.path.display()))?;
        self.started = Instant::now();
        if let Some(c) = self.policy.compress {
            let done = self.numbered(1, c.extension());
            self.compressing = Some(std::thread::Builder::new().name("compress".into()).spawn(
                move || {
                    if let Err(e) = compress(&first, &done, c) {
                        tracing::error!(
                            "compressing {}: {e:#}; left uncompressed",
                            first.display()
                        );
                    }
                },
            )?);
        }
        Ok(())
    }

    /// Waits for a compression still running (at exit).
    pub fn finish(&mut self) {
        if let Some(h) = self.compressing.take() {
            let _ = h.join();
        }
    }
}

/// `from` → `to` through a temporary name, so that `to` is always whole; `from` is removed
/// once `to` is in place.
fn compress(from: &Path, to: &Path, how: Compress) -> Result<()> {
    let mut input = std::fs::File::open(from)?;
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = crate::files::create_truncated(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let out = match how {
        Compress::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::copy(&mut input, &mut e)?;
            e.finish()?
        }
        Compress::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, 3)?;
            std::io::copy(&mut input, &mut e)?;
            e.finish()?
        }
    };
    out.sync_all()?;
    std::fs::rename(&tmp, to)?;
    std::fs::remove_file(from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn an_old_file_is_due_and_a_new_one_is_not() {
        let mut r = Rotation::new(
            Policy {
                size: None,
                interval: Some(Duration::from_millis(30)),
                compress: None,
                keep: 1,
            },
            Path::new("/nonexistent/x"),
        );
        assert!(!r.due(100), "a fresh file");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!r.due(0), "an empty file is never rotated");
        assert!(r.due(100));
        // A failed rotation (nothing to rename here) leaves it due, to be tried again.
        assert!(r.rotate().is_err());
        assert!(r.due(100));
    }

    #[test]
    fn files_shift_up_and_the_oldest_goes() {
        let dir = std::env::temp_dir().join(format!("nflogd-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        let mut r = Rotation::new(
            Policy {
                size: Some(10),
                interval: None,
                compress: Some(Compress::Gzip),
                keep: 2,
            },
            &path,
        );
        assert!(!r.due(0));
        assert!(!r.due(9));
        assert!(r.due(10));
        for text in ["first\n", "second\n", "third\n"] {
            std::fs::write(&path, text).unwrap();
            r.rotate().unwrap();
        }
        r.finish();
        let read = |p: PathBuf| {
            let mut s = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        assert_eq!(read(dir.join("out.log.1.gz")), "third\n");
        assert_eq!(read(dir.join("out.log.2.gz")), "second\n");
        assert!(!dir.join("out.log.3.gz").exists());
        assert!(!dir.join("out.log.1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
