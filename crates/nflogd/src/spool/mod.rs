//! The on-disk spool of one sink: rendered messages wait here until the sink's receiver has
//! taken them, across outages, restarts and crashes.
//!
//! - Segment files `NNNNNNNNNN.seg` of records `[len u32][crc32 u32][events u32][payload]`
//!   (little endian); the payload is the batch's messages, each `[len u32][bytes]`. The
//!   checksum covers the length and event count too (records written before it did, with a
//!   checksum of the payload alone, are still read).
//! - A write that fails (a full disk) is cut off again, so no torn record hides later ones.
//! - `ack` holds the read position (segment, offset), replaced atomically after each delivery;
//!   a record leaves only after the sink confirmed it. After a crash the last records may be
//!   delivered again (counted as `replayed`), never lost.
//! - Sending runs ahead of confirming: `peek`/`sent` walk a send position over records the
//!   receiver has not confirmed yet, `confirm` moves the read position up to them, and `rewind`
//!   goes back to it after a broken connection, so what the receiver may not have taken is
//!   sent again.
//! - A record with a bad checksum or cut short ends its segment's reading: the rest of that
//!   segment is skipped and counted, the next segment is read.
//! - A size cap with a stated policy: `block` (stop taking new events; the sink's memory queue
//!   fills and the fan-out drops and counts them) or `drop-oldest` (delete the oldest segment,
//!   counting its events as dropped).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 12;
const SEGMENT_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    #[default]
    Block,
    DropOldest,
}

/// `[sinks.NAME.spool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool; default /var/lib/nflogd/spool/<sink name>.
    pub dir: Option<PathBuf>,
    /// Cap on the spool's size. Default 1 GiB.
    #[serde(default = "default_spool_size")]
    pub max_size: crate::units::ByteSize,
    /// `block` (default: stop taking events; the memory queue then drops and counts) or
    /// `drop-oldest` (delete the oldest spooled events, counted).
    #[serde(default)]
    pub when_full: WhenFull,
    /// How often spooled data is flushed to stable storage. Default "500ms".
    #[serde(default = "default_sync")]
    pub sync_interval: crate::units::Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            max_size: default_spool_size(),
            when_full: Default::default(),
            sync_interval: default_sync(),
        }
    }
}

impl SpoolConfig {
    /// The spool's directory for sink `name`: `dir` or the default place.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| format!("/var/lib/nflogd/spool/{name}").into())
    }

    /// Opens the spool of sink `name`, in `dir` or the default place.
    pub fn open(&self, name: &str) -> Result<Spool> {
        let dir = self.dir_of(name);
        let spool = Spool::open(&dir, self.max_size.0, self.when_full)
            .with_context(|| format!("sink `{name}`: spool in {}", dir.display()))?;
        if spool.pending_events() > 0 {
            tracing::info!(
                "sink `{name}`: {} records from an earlier run wait in {}",
                spool.pending_events(),
                dir.display()
            );
        }
        Ok(spool)
    }
}

fn default_spool_size() -> crate::units::ByteSize {
    crate::units::ByteSize(1 << 30)
}
fn default_sync() -> crate::units::Duration {
    crate::units::Duration(std::time::Duration::from_millis(500))
}

/// What happened to an append.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    Stored,
    /// The spool is full and its policy is `block`: nothing was written.
    Full,
}

/// Counts the spool reports to the sink's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Events deleted by `drop-oldest`.
    pub dropped_events: u64,
    /// Records skipped because they were corrupt or cut short.
    pub corrupt_records: u64,
    /// Events found in the spool at start-up, not yet confirmed (some may be duplicates).
    pub replayed_events: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
    /// Segment ids present, oldest first.
    segments: Vec<u64>,
    writer: Option<File>,
    write_id: u64,
    write_off: u64,
    read_id: u64,
    read_off: u64,
    /// Bytes from the read position to the end.
    pending_bytes: u64,
    pending_events: u64,
    pub stats: SpoolStats,
    /// Where the next `peek` reads: at or past the read position.
    send_id: u64,
    send_off: u64,
    /// Records sent and not yet confirmed, oldest first.
    inflight: VecDeque<Sent>,
    /// Corrupt places already counted, so that reading one again after a rewind does not
    /// count it twice.
    corrupt_seen: std::collections::BTreeSet<(u64, u64)>,
    /// The record handed out by `peek`, not yet sent: (bytes it takes, events).
    peeked: Option<(u64, u32)>,
}

/// A record written to the receiver and not yet confirmed: the segment it is in, where it ends,
/// and the sender's mark for it (where the record ends in what the connection carried).
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: u64,
    end: u64,
    bytes: u64,
    events: u32,
    mark: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

/// One record read back: its payload and event count, or `Err` if corrupt or cut short.
type Record = Result<(Vec<u8>, u32), ()>;

/// Reads one record at `off`; `Ok(None)` at a clean end.
fn read_record(f: &mut File, off: u64) -> std::io::Result<Option<Record>> {
    f.seek(SeekFrom::Start(off))?;
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match f.read(&mut h[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Ok(Some(Err(()))),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let events = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if len > 256 << 20 {
        return Ok(Some(Err(())));
    }
    let mut payload = vec![0u8; len];
    if f.read_exact(&mut payload).is_err()
        || (record_crc(len as u32, events, &payload) != crc && crc32fast::hash(&payload) != crc)
    {
        return Ok(Some(Err(())));
    }
    Ok(Some(Ok((payload, events))))
}

/// A record's checksum: over its length, its event count and its payload, so that a damaged
/// count or length is caught as well as damaged messages.
fn record_crc(len: u32, events: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&events.to_le_bytes());
    h.update(payload);
    h.finalize()
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovering what a previous run left.
    pub fn open(dir: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Spool> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut segments: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        segments.sort_unstable();
        let (mut read_id, mut read_off) = std::fs::read_to_string(dir.join("ack"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or((segments.first().copied().unwrap_or(0), 0));
        // Segments before the acknowledged one are done (a crash between ack and delete).
        for id in segments.iter().filter(|&&id| id < read_id) {
            let _ = std::fs::remove_file(seg_path(dir, *id));
        }
        segments.retain(|&id| id >= read_id);
        if !segments.contains(&read_id) {
            read_id = segments.first().copied().unwrap_or(read_id);
            read_off = 0;
        }
        let mut s = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            when_full,
            segments,
            writer: None,
            write_id: read_id,
            write_off: 0,
            read_id,
            read_off,
            pending_bytes: 0,
            pending_events: 0,
            stats: SpoolStats::default(),
            send_id: read_id,
            send_off: read_off,
            inflight: VecDeque::new(),
            corrupt_seen: Default::default(),
            peeked: None,
        };
        s.recover()?;
        s.stats.replayed_events = s.pending_events;
        Ok(s)
    }

    /// Scans what is pending to size it, and cuts a torn record off the end of the last segment.
    fn recover(&mut self) -> Result<()> {
        let last = self.segments.last().copied();
        for &id in &self.segments.clone() {
            let mut f = File::open(seg_path(&self.dir, id))?;
            let mut off = if id == self.read_id { self.read_off } else { 0 };
            loop {
                match read_record(&mut f, off)? {
                    None => break,
                    Some(Ok((p, ev))) => {
                        off += (HEADER + p.len()) as u64;
                        self.pending_bytes += (HEADER + p.len()) as u64;
                        self.pending_events += ev as u64;
                    }
                    Some(Err(())) => {
                        // Torn by a crash or damaged: reading skips it (and counts it) later;
                        // writing must not follow it, so it goes to a new segment.
                        if Some(id) == last {
                            self.write_id = id + 1;
                            self.write_off = 0;
                        }
                        break;
                    }
                }
            }
            if Some(id) == last && self.write_id == id {
                self.write_off = off;
            }
        }
        match last {
            None => self.write_id = self.read_id,
            Some(l) if self.write_id < l => self.write_id = l,
            _ => {}
        }
        Ok(())
    }

    pub fn pending_events(&self) -> u64 {
        self.pending_events
    }

    fn open_writer(&mut self) -> std::io::Result<&mut File> {
        if self.writer.is_none() || self.write_off >= SEGMENT_BYTES {
            if self.write_off >= SEGMENT_BYTES {
                self.write_id += 1;
                self.write_off = 0;
            }
            let f = crate::files::append_no_follow(&seg_path(&self.dir, self.write_id))?;
            if !self.segments.contains(&self.write_id) {
                self.segments.push(self.write_id);
            }
            self.write_off = f.metadata()?.len();
            self.writer = Some(f);
        }
        Ok(self.writer.as_mut().expect("writer just opened"))
    }

    /// Appends for sink `sink`, counting in its counters what happens: `spooled` when stored,
    /// `dropped` for what `drop-oldest` deleted, `errors` for a failed write. False when the
    /// batch was not taken (full with `block`, or a write error): the caller holds and retries.
    pub fn append_counted(
        &mut self,
        sink: &str,
        messages: &[&[u8]],
        counters: &crate::metrics::ComponentCounters,
    ) -> bool {
        use crate::metrics::ComponentCounters as C;
        let before = self.stats.dropped_events;
        let r = self.append(messages);
        let dropped = self.stats.dropped_events - before;
        if dropped > 0 {
            C::add(&counters.dropped, dropped);
            crate::rate_limited_warn!(
                "sink `{sink}`: spool full, {dropped} oldest records dropped"
            );
        }
        match r {
            Ok(Appended::Stored) => {
                C::add(&counters.spooled, messages.len() as u64);
                true
            }
            Ok(Appended::Full) => {
                crate::rate_limited_warn!("sink `{sink}`: spool full; holding new events back");
                false
            }
            Err(e) => {
                // A full disk or an I/O error: the batch stays held and is retried.
                C::add(&counters.errors, 1);
                crate::rate_limited_warn!("sink `{sink}`: cannot write the spool: {e}");
                false
            }
        }
    }

    /// Appends one batch: its messages, each written as `[len u32][bytes]`.
    pub fn append(&mut self, messages: &[&[u8]]) -> std::io::Result<Appended> {
        let mut payload = Vec::with_capacity(messages.iter().map(|m| m.len() + 4).sum());
        for m in messages {
            payload.extend_from_slice(&(m.len() as u32).to_le_bytes());
            payload.extend_from_slice(m);
        }
        let size = (HEADER + payload.len()) as u64;
        while self.pending_bytes + size > self.max_bytes && self.pending_bytes > 0 {
            match self.when_full {
                WhenFull::Block => return Ok(Appended::Full),
                WhenFull::DropOldest => {
                    if !self.drop_oldest_segment()? {
                        break;
                    }
                }
            }
        }
        let mut rec = Vec::with_capacity(size as usize);
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let (len, events) = (payload.len() as u32, messages.len() as u32);
        rec.extend_from_slice(&record_crc(len, events, &payload).to_le_bytes());
        rec.extend_from_slice(&(messages.len() as u32).to_le_bytes());
        rec.extend_from_slice(&payload);
        self.open_writer()?;
        let at = self.write_off;
        let Some(w) = self.writer.as_mut() else {
            return Err(std::io::Error::other("spool segment not open"));
        };
        if let Err(e) = w.write_all(&rec) {
            // Part of it may be on disk: cut it off, so the next record starts clean. If even
            // that fails, the next append goes to a new segment.
            if w.set_len(at).is_err() {
                self.writer = None;
                self.write_id += 1;
                self.write_off = 0;
            }
            return Err(e);
        }
        self.write_off += size;
        self.pending_bytes += size;
        self.pending_events += messages.len() as u64;
        Ok(Appended::Stored)
    }

    /// Flushes appended records, the read position and the directory (new segments, the
    /// renamed position file) to stable storage.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some(w) = &self.writer {
            w.sync_data()?;
        }
        if let Ok(a) = File::open(self.dir.join("ack")) {
            a.sync_data()?;
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Deletes the oldest segment (`drop-oldest`); false if only the one being written is left.
    fn drop_oldest_segment(&mut self) -> std::io::Result<bool> {
        let Some(&oldest) = self.segments.first() else {
            return Ok(false);
        };
        if oldest == self.write_id {
            // Start a new segment so the oldest can go.
            self.writer = None;
            self.write_id += 1;
            self.write_off = 0;
        }
        let (bytes, events) = self.count_from(
            oldest,
            if oldest == self.read_id {
                self.read_off
            } else {
                0
            },
        )?;
        std::fs::remove_file(seg_path(&self.dir, oldest))?;
        self.segments.remove(0);
        self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
        self.pending_events = self.pending_events.saturating_sub(events);
        self.stats.dropped_events += events;
        self.peeked = None;
        self.read_id = self.segments.first().copied().unwrap_or(self.write_id);
        self.read_off = 0;
        // What was sent from the dropped segment needs no confirming; the send position moves
        // on if it was there.
        self.inflight.retain(|s| s.id != oldest);
        if self.send_id == oldest {
            self.send_id = self.read_id;
            self.send_off = 0;
        }
        self.save_ack();
        Ok(true)
    }

    fn count_from(&self, id: u64, mut off: u64) -> std::io::Result<(u64, u64)> {
        let mut f = match File::open(seg_path(&self.dir, id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        let (mut bytes, mut events) = (0, 0);
        while let Some(Ok((p, ev))) = read_record(&mut f, off)? {
            off += (HEADER + p.len()) as u64;
            bytes += (HEADER + p.len()) as u64;
            events += ev as u64;
        }
        Ok((bytes, events))
    }

    /// The next batch to send (its messages), without moving past it: `sent` does that.
    pub fn peek(&mut self) -> std::io::Result<Option<Vec<Vec<u8>>>> {
        loop {
            if !self.segments.contains(&self.send_id) {
                return Ok(None);
            }
            let mut f = match File::open(seg_path(&self.dir, self.send_id)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            match read_record(&mut f, self.send_off)? {
                Some(Ok((payload, events))) => {
                    self.peeked = Some(((HEADER + payload.len()) as u64, events));
                    // The count comes from the file: no more room than the payload can fill.
                    let mut msgs = Vec::with_capacity((events as usize).min(payload.len() / 4));
                    let mut p = &payload[..];
                    while p.len() >= 4 {
                        let n = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                        let m = p.get(4..4 + n).unwrap_or(&p[4..]);
                        msgs.push(m.to_vec());
                        p = &p[(4 + n).min(p.len())..];
                    }
                    return Ok(Some(msgs));
                }
                Some(Err(())) => {
                    // Corrupt or cut short: skip the rest of this segment, for good. (Read
                    // again after a rewind, it is not counted twice.)
                    if self.corrupt_seen.insert((self.send_id, self.send_off)) {
                        self.stats.corrupt_records += 1;
                        tracing::warn!(
                            "spool {}: segment {} is corrupt at byte {}; skipping the rest of it",
                            self.dir.display(),
                            self.send_id,
                            self.send_off
                        );
                    }
                    if self.write_id == self.send_id {
                        self.writer = None;
                        self.write_id += 1;
                        self.write_off = 0;
                    }
                    if !self.segments.contains(&self.write_id) {
                        self.segments.push(self.write_id);
                    }
                    if !self.next_send_segment() {
                        return Ok(None);
                    }
                    if self.inflight.is_empty() {
                        // Nothing waits for confirmation before it: the read position follows.
                        self.confirm_to(self.send_id, 0)?;
                    }
                }
                None => {
                    if self.send_id == self.write_id || !self.next_send_segment() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn next_send_segment(&mut self) -> bool {
        let Some(&next) = self.segments.iter().find(|&&s| s > self.send_id) else {
            return false;
        };
        self.send_id = next;
        self.send_off = 0;
        true
    }

    /// The peeked batch was written to the receiver, ending at `mark` in what the connection
    /// carried: the next `peek` reads past it. It stays in the spool until confirmed.
    pub fn sent(&mut self, mark: u64) {
        if let Some((bytes, events)) = self.peeked.take() {
            self.send_off += bytes;
            self.inflight.push_back(Sent {
                id: self.send_id,
                end: self.send_off,
                bytes,
                events,
                mark,
            });
        }
    }

    /// The peeked batch was delivered and confirmed at once: move past it for good.
    pub fn ack(&mut self) {
        self.sent(0);
        self.confirm(self.inflight.len());
    }

    /// The receiver has everything up to `mark`: the records sent up to there leave the
    /// spool. Returns how many events that was.
    pub fn confirm_upto(&mut self, mark: u64) -> u64 {
        let n = self.inflight.iter().take_while(|s| s.mark <= mark).count();
        let before = self.unconfirmed_events();
        self.confirm(n);
        before - self.unconfirmed_events()
    }

    /// Records sent and not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.inflight.len()
    }

    /// Events sent and not confirmed yet.
    pub fn unconfirmed_events(&self) -> u64 {
        self.inflight.iter().map(|s| s.events as u64).sum()
    }

    /// The receiver has the oldest `n` records sent: they leave the spool.
    pub fn confirm(&mut self, n: usize) {
        let n = n.min(self.inflight.len());
        let Some(last) = n.checked_sub(1).and_then(|i| self.inflight.get(i)).copied() else {
            return;
        };
        let (bytes, events) = self
            .inflight
            .drain(..n)
            .fold((0, 0), |(b, e), s| (b + s.bytes, e + s.events as u64));
        if last.id == self.read_id {
            self.read_off = last.end;
            self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
            self.pending_events = self.pending_events.saturating_sub(events);
            self.save_ack();
        } else if let Err(e) = self.confirm_to(last.id, last.end) {
            crate::rate_limited_warn!("spool {}: {e}", self.dir.display());
        }
    }

    /// Moves the read position to a later segment, deleting the ones before it and counting
    /// anew what is pending (a corrupt tail skipped on the way held an unknown amount).
    fn confirm_to(&mut self, id: u64, off: u64) -> std::io::Result<()> {
        let done: Vec<u64> = self
            .segments
            .iter()
            .copied()
            .filter(|&s| s < id && s != self.write_id)
            .collect();
        self.read_id = id;
        self.read_off = off;
        self.save_ack();
        for s in done {
            let _ = std::fs::remove_file(seg_path(&self.dir, s));
            self.segments.retain(|&x| x != s);
        }
        self.corrupt_seen.retain(|&(s, _)| s >= id);
        let (bytes, events) = self.segments.iter().try_fold((0, 0), |(b, e), &s| {
            let (b2, e2) = self.count_from(s, if s == self.read_id { self.read_off } else { 0 })?;
            Ok::<_, std::io::Error>((b + b2, e + e2))
        })?;
        self.pending_bytes = bytes;
        self.pending_events = events;
        Ok(())
    }

    /// The connection broke: what was sent and not confirmed will be sent again. Returns how
    /// many events that is.
    pub fn rewind(&mut self) -> u64 {
        let events = self.unconfirmed_events();
        self.inflight.clear();
        self.peeked = None;
        self.send_id = self.read_id;
        self.send_off = self.read_off;
        events
    }

    fn save_ack(&self) {
        let ok = crate::files::replace(
            &self.dir.join("ack"),
            format!("{} {}\n", self.read_id, self.read_off).as_bytes(),
        );
        if let Err(e) = ok {
            crate::rate_limited_warn!(
                "spool {}: cannot save the read position: {e}",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nflogd-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn drain(s: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(b) = s.peek().unwrap() {
            out.extend(b.into_iter().map(|m| String::from_utf8(m).unwrap()));
            s.ack();
        }
        out
    }

    /// Sending runs ahead of confirming; a rewind sends the unconfirmed again, across a
    /// segment boundary; a restart resumes at the last confirmed record, and a confirmed
    /// segment is deleted.
    #[test]
    fn send_ahead_confirm_and_rewind() {
        let d = dir("ahead");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        let big = vec![b'x'; 6 << 20];
        for i in 0..6 {
            let m = format!("m{i}");
            s.append(&[m.as_bytes(), &big]).unwrap();
        }
        let segs = |d: &Path| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert_eq!(
            segs(&d),
            2,
            "16 MiB segments: records 0-2 in one, 3-5 in the next"
        );
        let send = |s: &mut Spool, n: usize| -> Vec<String> {
            (0..n)
                .map(|_| {
                    let b = s.peek().unwrap().unwrap();
                    s.sent(0);
                    String::from_utf8(b[0].clone()).unwrap()
                })
                .collect()
        };
        assert_eq!(send(&mut s, 4), ["m0", "m1", "m2", "m3"]);
        assert_eq!(s.unconfirmed(), 4);
        assert_eq!(
            s.pending_events(),
            12,
            "unconfirmed events are still pending"
        );
        s.confirm(1);
        assert_eq!(s.pending_events(), 10);
        assert_eq!(s.rewind(), 6, "three records of two events sent again");
        assert_eq!(send(&mut s, 3), ["m1", "m2", "m3"]);
        s.confirm(3);
        assert_eq!(
            segs(&d),
            1,
            "the first segment went once all of it was confirmed"
        );
        assert_eq!(send(&mut s, 1), ["m4"]);
        drop(s);
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert_eq!(
            s.pending_events(),
            4,
            "m4 was sent, not confirmed: it is replayed"
        );
        let rest: Vec<String> = drain(&mut s).into_iter().filter(|m| m.len() < 10).collect();
        assert_eq!(rest, ["m4", "m5"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn order_ack_and_restart() {
        let d = dir("order");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        for i in 0..10 {
            let m = format!("m{i}");
            s.append(&[m.as_bytes(), b"x"]).unwrap();
        }
        let first = s.peek().unwrap().unwrap();
        assert_eq!(first, vec![b"m0".to_vec(), b"x".to_vec()]);
        s.ack();
        drop(s);
        // A restart resumes after the acknowledged record; an unacknowledged peek is redelivered.
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert_eq!(s.stats.replayed_events, 18);
        let got = drain(&mut s);
        assert_eq!(got.len(), 18);
        assert_eq!(got[0], "m1");
        assert_eq!(s.pending_events(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_and_torn_records_are_skipped_and_counted() {
        let d = dir("corrupt");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        for i in 0..3 {
            s.append(&[format!("a{i}").as_bytes()]).unwrap();
        }
        drop(s);
        // Flip a byte in the second record's payload, and add a torn record at the end.
        let seg = seg_path(&d, 0);
        let mut bytes = std::fs::read(&seg).unwrap();
        let rec = HEADER + 4 + 2;
        bytes[rec + HEADER + 5] ^= 0xff;
        bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        std::fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert_eq!(drain(&mut s), vec!["a0"]);
        assert_eq!(s.stats.corrupt_records, 1);
        // Writing goes on after the damage.
        s.append(&[b"later"]).unwrap();
        assert_eq!(drain(&mut s), vec!["later"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_cap_blocks_or_drops_the_oldest() {
        let d = dir("cap");
        let big = vec![b'x'; 1000];
        let mut s = Spool::open(&d, 5000, WhenFull::Block).unwrap();
        let stored = (0..10)
            .filter(|_| s.append(&[&big]).unwrap() == Appended::Stored)
            .count();
        assert_eq!(stored, 4, "1016-byte records under a 5000-byte cap");
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
        let mut s = Spool::open(&d, 5000, WhenFull::DropOldest).unwrap();
        for i in 0..10u8 {
            let m = vec![b'0' + i; 1000];
            assert_eq!(s.append(&[&m]).unwrap(), Appended::Stored);
        }
        assert!(s.stats.dropped_events > 0);
        let got = drain(&mut s);
        assert_eq!(
            got.last().unwrap().as_bytes()[0],
            b'9',
            "the newest are kept"
        );
        assert_eq!(got.len() as u64 + s.stats.dropped_events, 10);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A damaged event count (outside the payload) is caught by the checksum; records from
    /// before it covered the header are still read.
    #[test]
    fn the_header_is_inside_the_checksum_and_old_records_still_read() {
        let d = dir("header");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        s.append(&[b"a", b"b"]).unwrap();
        drop(s);
        let seg = seg_path(&d, 0);
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[8] = 7; // events: 2 -> 7
        std::fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.stats.corrupt_records, 1);
        drop(s);
        // A record as an earlier nflogd wrote it: the checksum of the payload alone.
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::create_dir_all(&d).unwrap();
        let payload = [&1u32.to_le_bytes()[..], b"z"].concat();
        let mut old = Vec::new();
        old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&payload);
        std::fs::write(seg_path(&d, 0), &old).unwrap();
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert_eq!(drain(&mut s), vec!["z"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The usual crash: the last record cut short, nothing else wrong. What is whole is read,
    /// the torn tail counted once, and new records go after it.
    #[test]
    fn a_torn_tail_alone() {
        let d = dir("torn");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        for i in 0..3 {
            s.append(&[format!("r{i}").as_bytes()]).unwrap();
        }
        drop(s);
        let seg = seg_path(&d, 0);
        let len = std::fs::metadata(&seg).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert_eq!(s.pending_events(), 2);
        s.append(&[b"r3"]).unwrap();
        assert_eq!(drain(&mut s), vec!["r0", "r1", "r3"]);
        assert_eq!(s.stats.corrupt_records, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Without its read position (lost, or garbage) a spool replays from its oldest segment:
    /// duplicates, never a loss.
    #[test]
    fn a_missing_or_corrupt_ack_file_replays_rather_than_loses() {
        for damage in ["remove", "garbage"] {
            let d = dir(&format!("ack-{damage}"));
            let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
            for i in 0..3 {
                s.append(&[format!("m{i}").as_bytes()]).unwrap();
            }
            s.peek().unwrap();
            s.ack();
            drop(s);
            if damage == "remove" {
                std::fs::remove_file(d.join("ack")).unwrap();
            } else {
                std::fs::write(d.join("ack"), b"\xff not a position").unwrap();
            }
            let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
            assert_eq!(drain(&mut s), vec!["m0", "m1", "m2"], "{damage}");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    /// Records past a segment's size go to the next segment; all are read back in order after a
    /// restart, and a finished segment is deleted.
    #[test]
    fn segments_roll_over_and_read_in_order() {
        let d = dir("roll");
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        let big = vec![b'x'; 1 << 20];
        for i in 0..20u8 {
            let mut m = big.clone();
            m[0] = i;
            s.append(&[&m]).unwrap();
        }
        drop(s);
        let segs = || {
            std::fs::read_dir(&d)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert_eq!(segs(), 2);
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        let mut firsts = Vec::new();
        while let Some(b) = s.peek().unwrap() {
            firsts.push(b[0][0]);
            s.ack();
        }
        assert_eq!(firsts, (0..20).collect::<Vec<u8>>());
        assert_eq!(segs(), 1, "the finished segment is gone");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A length field beyond any record nflogd writes is taken as damage, not as a reason to
    /// allocate gigabytes.
    #[test]
    fn the_length_guard() {
        let d = dir("guard");
        std::fs::create_dir_all(&d).unwrap();
        let mut rec = Vec::new();
        rec.extend_from_slice(&u32::MAX.to_le_bytes());
        rec.extend_from_slice(&[0; 8]);
        std::fs::write(seg_path(&d, 0), &rec).unwrap();
        let mut s = Spool::open(&d, 1 << 30, WhenFull::Block).unwrap();
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.stats.corrupt_records, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A full disk mid-write: the part of the record that made it to disk is cut off again, so
    /// the segment holds only whole records and the spool reads every one of them. (A tmpfs of
    /// 256 KiB is the small disk; it needs root, as the kernel lab does.)
    #[test]
    fn a_full_disk_mid_write_leaves_no_torn_record() {
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            eprintln!("SKIPPED: mounting a small tmpfs needs root");
            return;
        }
        let d = dir("full");
        std::fs::create_dir_all(&d).unwrap();
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let target = c(d.to_str().unwrap());
        let ok = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                c("size=256k").as_ptr() as *const libc::c_void,
            )
        };
        assert_eq!(ok, 0, "mount: {}", std::io::Error::last_os_error());
        struct Unmount(std::ffi::CString);
        impl Drop for Unmount {
            fn drop(&mut self) {
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _unmount = Unmount(target.clone());
        let spool_dir = d.join("s");
        let mut s = Spool::open(&spool_dir, 1 << 30, WhenFull::Block).unwrap();
        let m = vec![b'm'; 10_000];
        let mut stored = 0;
        let err = loop {
            match s.append(&[&m]) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(stored > 5);
        let seg = std::fs::metadata(seg_path(&spool_dir, 0)).unwrap().len();
        assert_eq!(
            seg,
            stored * (HEADER as u64 + 4 + 10_000),
            "only whole records"
        );
        let mut n = 0;
        while s.peek().unwrap().is_some() {
            s.ack();
            n += 1;
        }
        assert_eq!(n, stored);
        assert_eq!(s.stats.corrupt_records, 0);
    }
}
