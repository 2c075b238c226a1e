//! What the database sinks share: events become row changes (`store::rows`), which wait in the
//! sink's disk spool (PostgreSQL, ClickHouse) or in memory (SQLite, a local file) until the
//! store has committed them; a failing store is reconnected with backoff while events keep
//! being taken. A local store that falls behind a flood spills what waits in its queue to a
//! disk spool of its own, and takes it back in order once it has caught up.

use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::spool::Spool;
use crate::store::codec;
use crate::store::rows::{self, Change};
use crossbeam_channel::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::store::ddl::SchemaError;

/// Most rows put into one unit (spool record, transaction) from what waits in the queue.
const UNIT_ROWS: usize = 20_000;

/// Rows per unit while a local store spills: small, so the sink is back at its queue soon
/// after each write, however slow the store.
const SPILL_UNIT_ROWS: usize = 2_000;

/// One database behind a sink.
pub trait Store {
    /// (Re)connects and makes sure the schema is there and current.
    fn connect(&mut self) -> anyhow::Result<()>;
    fn connected(&self) -> bool;
    fn disconnect(&mut self);
    /// Writes the changes in one transaction: all of them or, on error, none.
    fn write(&mut self, changes: &[Change]) -> anyhow::Result<()>;
    /// Retention and upkeep (new partitions, old rows); called about once a minute.
    fn maintain(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Values changed to fit their column (a NUL in text, say) since the last call.
    fn take_coerced(&mut self) -> u64 {
        0
    }
}

/// Where changes wait before the store has them.
pub enum Buffer {
    Spool(Spool),
    /// A local store: one unit in memory, no second copy on disk while the store keeps up.
    Memory(Option<Vec<Change>>, Overflow),
}

/// The disk spool a local store spills to when its queue fills faster than it writes, opened
/// only when first needed.
pub struct Overflow {
    pub config: crate::spool::SpoolConfig,
    pub spool: Option<Spool>,
}

impl Overflow {
    fn pending(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::pending_events)
    }
}

/// A queue this full (1/N of its event or byte limit) spills to the overflow spool.
const SPILL_FRACTION: u64 = 2;

/// Which tables events become rows of.
pub enum Mapping {
    /// nflogd's own (store::rows).
    Own,
    /// ulogd2's (store::ulogd_tables), through the `ulogd` schema's keys.
    Ulogd(Box<crate::schema::Renderer>, Vec<u8>),
}

pub struct DatabaseSink<S: Store> {
    pub name: String,
    pub mapping: Mapping,
    pub store: S,
    pub buffer: Buffer,
    pub host: String,
    pub counters: Arc<ComponentCounters>,
    pub sync_interval: Duration,
    next_connect: Instant,
    backoff: Duration,
    encoded: Vec<Vec<u8>>,
}

impl<S: Store> DatabaseSink<S> {
    pub fn new(
        name: &str,
        store: S,
        buffer: Buffer,
        host: String,
        counters: Arc<ComponentCounters>,
    ) -> Self {
        let spooled = match &buffer {
            Buffer::Spool(s) => Some(s),
            Buffer::Memory(_, o) => o.spool.as_ref(),
        };
        if let Some(s) = spooled {
            ComponentCounters::add(&counters.replayed, s.pending_events());
        }
        DatabaseSink {
            name: name.to_string(),
            mapping: Mapping::Own,
            store,
            buffer,
            host,
            counters,
            sync_interval: Duration::from_millis(500),
            next_connect: Instant::now(),
            backoff: Duration::from_millis(100),
            encoded: Vec::new(),
        }
    }

    fn changes(&mut self, batches: &[Batch]) -> Vec<Change> {
        let n: usize = batches.iter().map(|b| b.len()).sum();
        let mut out = Vec::with_capacity(n + n / 4);
        for ev in batches.iter().flat_map(|b| b.iter()) {
            match &mut self.mapping {
                Mapping::Own => rows::rows(ev, &self.host, &mut out),
                Mapping::Ulogd(r, buf) => crate::store::ulogd_tables::rows(ev, r, buf, &mut out),
            }
        }
        out
    }

    /// Takes batches in, as one unit the store will write in one transaction; false when there
    /// is no room (spool full with `block`, or a memory unit still unwritten while the queue
    /// has room), and the caller keeps them.
    fn accept(&mut self, batches: &[Batch], q: &SinkQueue) -> bool {
        if let Buffer::Memory(slot, overflow) = &self.buffer {
            // Order is kept: once anything waits on disk, everything after it goes there too.
            let spill = overflow.pending() > 0;
            if slot.is_some() && !spill && !q.pressed(SPILL_FRACTION) {
                return false;
            }
            if slot.is_none() && !spill {
                let changes = self.changes(batches);
                if let Buffer::Memory(slot, _) = &mut self.buffer {
                    *slot = Some(changes);
                }
                return true;
            }
        }
        let changes = self.changes(batches);
        self.encoded.clear();
        for c in &changes {
            let mut v = Vec::with_capacity(160);
            codec::encode(c, &mut v);
            self.encoded.push(v);
        }
        let msgs: Vec<&[u8]> = self.encoded.iter().map(Vec::as_slice).collect();
        let spool = match &mut self.buffer {
            Buffer::Spool(spool) => spool,
            Buffer::Memory(_, overflow) => {
                if overflow.spool.is_none() {
                    match overflow.config.open(&self.name) {
                        Ok(s) => overflow.spool = Some(s),
                        Err(e) => {
                            ComponentCounters::add(&self.counters.errors, 1);
                            crate::rate_limited_warn!("sink `{}`: {e:#}", self.name);
                            return false;
                        }
                    }
                }
                crate::rate_limited_warn!(
                    "sink `{}`: the store is behind; spilling its queue to disk",
                    self.name
                );
                match overflow.spool.as_mut() {
                    Some(s) => s,
                    None => return false,
                }
            }
        };
        spool.append_counted(&self.name, &msgs, &self.counters)
    }

    fn ensure_connected(&mut self) -> bool {
        if self.store.connected() {
            return true;
        }
        if Instant::now() < self.next_connect {
            return false;
        }
        match self.store.connect() {
            Ok(()) => {
                tracing::info!("sink `{}`: connected", self.name);
                self.backoff = Duration::from_millis(100);
                true
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                crate::rate_limited_warn!("sink `{}`: {e:#}; retrying", self.name);
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
                false
            }
        }
    }

    /// Writes `changes`; true once the store has them (or has refused the ones it never will
    /// take, which are counted).
    fn write(&mut self, changes: &[Change]) -> bool {
        if !self.ensure_connected() {
            return false;
        }
        match self.store.write(changes) {
            Ok(()) => {
                ComponentCounters::add(&self.counters.sent, changes.len() as u64);
                true
            }
            Err(e) if self.store.connected() && changes.len() > 1 => {
                // The store is up but refused the batch: find the rows it refuses one by one,
                // so one bad row does not hold back the rest.
                tracing::warn!(
                    "sink `{}`: batch refused ({e:#}); writing its rows one by one",
                    self.name
                );
                for c in changes {
                    if !self.write(std::slice::from_ref(c)) && !self.store.connected() {
                        return false;
                    }
                }
                true
            }
            Err(e) if self.store.connected() => {
                ComponentCounters::add(&self.counters.errors, 1);
                ComponentCounters::add(&self.counters.dropped, 1);
                crate::rate_limited_warn!(
                    "sink `{}`: row refused, dropped: {e:#} ({:?})",
                    self.name,
                    changes[0]
                );
                true
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                crate::rate_limited_warn!(
                    "sink `{}`: write failed: {e:#}; reconnecting",
                    self.name
                );
                self.store.disconnect();
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
                false
            }
        }
    }

    /// Writes the oldest waiting unit; false when nothing was written (none waits, or the
    /// store failed).
    fn deliver_one(&mut self) -> bool {
        let done = match &mut self.buffer {
            Buffer::Memory(slot, _) if slot.is_some() => {
                let changes = slot.take().unwrap_or_default();
                let ok = self.write(&changes);
                if !ok {
                    if let Buffer::Memory(slot, _) = &mut self.buffer {
                        *slot = Some(changes);
                    }
                }
                ok
            }
            _ => match self.spool_mut().map(|s| s.peek()) {
                None | Some(Ok(None)) => false,
                Some(Err(e)) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    crate::rate_limited_warn!("sink `{}`: cannot read the spool: {e}", self.name);
                    false
                }
                Some(Ok(Some(msgs))) => {
                    let mut changes = Vec::with_capacity(msgs.len());
                    for m in &msgs {
                        match codec::decode(m) {
                            Some(c) => changes.push(c),
                            None => ComponentCounters::add(&self.counters.malformed, 1),
                        }
                    }
                    let ok = self.write(&changes);
                    if ok {
                        if let Some(spool) = self.spool_mut() {
                            spool.ack();
                        }
                    }
                    ok
                }
            },
        };
        let coerced = self.store.take_coerced();
        ComponentCounters::add(&self.counters.coerced, coerced);
        self.publish();
        done
    }

    fn spool_mut(&mut self) -> Option<&mut Spool> {
        match &mut self.buffer {
            Buffer::Spool(s) => Some(s),
            Buffer::Memory(_, o) => o.spool.as_mut(),
        }
    }

    fn spool(&self) -> Option<&Spool> {
        match &self.buffer {
            Buffer::Spool(s) => Some(s),
            Buffer::Memory(_, o) => o.spool.as_ref(),
        }
    }

    fn pending(&self) -> u64 {
        let memory = match &self.buffer {
            Buffer::Memory(m, _) => m.as_ref().map_or(0, |c| c.len() as u64),
            Buffer::Spool(_) => 0,
        };
        memory + self.spool().map_or(0, Spool::pending_events)
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(s) = self.spool() {
            self.counters
                .spool_pending
                .store(s.pending_events(), Relaxed);
            self.counters
                .spool_corrupt
                .store(s.stats.corrupt_records, Relaxed);
        }
    }

    pub fn run(mut self, q: SinkQueue) {
        // Batches taken from the queue but not yet into the buffer (it was full).
        let mut held: Vec<Batch> = Vec::new();
        let mut open = true;
        let mut last_sync = Instant::now();
        let mut last_maintain: Option<Instant> = None;
        let mut stopping: Option<Instant> = None;
        while open || !held.is_empty() {
            // Taking events comes first: everything waiting goes into the buffer, in units of
            // up to UNIT_ROWS rows, before one unit is written. Under load the units grow (one
            // transaction for many rows), idle they stay small (low latency), and the queue in
            // front never fills while the store works: a backlog waits in the spool.
            if !held.is_empty() {
                if self.accept(&held, &q) {
                    for b in held.drain(..) {
                        q.taken(&b);
                    }
                }
            } else if open {
                let wait = if self.pending() > 0 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(200)
                };
                let mut rows = 0;
                let mut next = Some(q.recv_timeout(wait));
                while let Some(r) = next.take() {
                    match r {
                        Ok(b) => {
                            ComponentCounters::add(&self.counters.received, b.len() as u64);
                            rows += b.len();
                            held.push(b);
                            let unit = match &self.buffer {
                                Buffer::Memory(_, o)
                                    if o.pending() > 0 || q.pressed(SPILL_FRACTION) =>
                                {
                                    SPILL_UNIT_ROWS
                                }
                                _ => UNIT_ROWS,
                            };
                            if rows >= unit {
                                if !self.accept(&held, &q) {
                                    break;
                                }
                                for b in held.drain(..) {
                                    q.taken(&b);
                                }
                                rows = 0;
                            }
                            next = Some(q.try_recv().map_err(|e| match e {
                                crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                                crossbeam_channel::TryRecvError::Disconnected => {
                                    RecvTimeoutError::Disconnected
                                }
                            }));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => open = false,
                    }
                }
                if !held.is_empty() && self.accept(&held, &q) {
                    for b in held.drain(..) {
                        q.taken(&b);
                    }
                }
            }
            if !self.deliver_one() && self.pending() > 0 {
                // The store is failing: do not spin while it backs off.
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.store.connected()
                && last_maintain.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                last_maintain = Some(Instant::now());
                if let Err(e) = self.store.maintain() {
                    ComponentCounters::add(&self.counters.errors, 1);
                    tracing::warn!("sink `{}`: upkeep failed: {e:#}", self.name);
                }
            }
            if last_sync.elapsed() >= self.sync_interval {
                if let Some(s) = self.spool_mut() {
                    let _ = s.sync();
                }
                last_sync = Instant::now();
            }
            if crate::signals::shutdown_requested() && stopping.is_none() {
                stopping = Some(Instant::now());
            }
            // Stopping with events still held back: they are written while the store takes
            // them, for up to 10 s; a store that is away or stuck loses them (counted).
            let give_up = stopping
                .is_some_and(|t| !self.store.connected() || t.elapsed() > Duration::from_secs(10));
            if !held.is_empty() && give_up {
                let n: usize = held.iter().map(|b| b.len()).sum();
                for b in held.drain(..) {
                    q.taken(&b);
                }
                ComponentCounters::add(&self.counters.dropped, n as u64);
            }
        }
        // Stopping: a last chance for the store; a spool keeps the rest for the next start.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.pending() > 0 && Instant::now() < deadline {
            self.next_connect = self.next_connect.min(Instant::now());
            if !self.deliver_one() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Buffer::Memory(Some(c), _) = &self.buffer {
            ComponentCounters::add(&self.counters.dropped, c.len() as u64);
            tracing::warn!(
                "sink `{}`: {} rows could not be written before stopping",
                self.name,
                c.len()
            );
        }
        let name = self.name.clone();
        if let Some(s) = self.spool_mut() {
            let _ = s.sync();
            if s.pending_events() > 0 {
                tracing::warn!(
                    "sink `{name}`: {} rows stay in the spool for the next start",
                    s.pending_events()
                );
            }
        }
        self.store.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{sink_queue, Fanout, QueueLimits};
    use crate::store::rows::Value;
    use event::{Event, RawLine, Timestamp};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Mutex;

    /// A store that takes a while per row and remembers the positions it was given.
    struct SlowStore {
        positions: Arc<Mutex<Vec<i64>>>,
        per_row: Duration,
        up: bool,
    }

    impl Store for SlowStore {
        fn connect(&mut self) -> anyhow::Result<()> {
            self.up = true;
            Ok(())
        }
        fn connected(&self) -> bool {
            self.up
        }
        fn disconnect(&mut self) {
            self.up = false;
        }
        fn write(&mut self, changes: &[Change]) -> anyhow::Result<()> {
            std::thread::sleep(self.per_row * changes.len() as u32);
            let mut p = self.positions.lock().unwrap();
            for c in changes {
                if let Change::Insert(r) = c {
                    if let Value::Int(i) = r.values[3] {
                        p.push(i);
                    }
                }
            }
            Ok(())
        }
    }

    fn line(i: u64) -> Event {
        Event::Raw(Box::new(RawLine {
            time: Timestamp { secs: 0, micros: 0 },
            host: None,
            origin: "t".into(),
            position: Some(i),
            line: "x".into(),
            reason: String::new(),
        }))
    }

    /// A local store slower than a source that cannot wait: its queue spills to disk instead
    /// of dropping, and every row reaches the store in order. The store takes 66 000 rows/s
    /// and is offered 100 000/s for two seconds: a backlog of some 70 000 rows, more than the
    /// queue holds.
    #[test]
    fn a_local_store_behind_a_flood_spills_and_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("nflogd-overflow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let counters = Arc::new(ComponentCounters::default());
        let limits = QueueLimits {
            events: 60_000,
            bytes: 1 << 30,
        };
        let (handle, queue) = sink_queue("lite", counters.clone(), limits);
        let positions = Arc::new(Mutex::new(Vec::new()));
        let store = SlowStore {
            positions: positions.clone(),
            per_row: Duration::from_micros(15),
            up: false,
        };
        let overflow = Overflow {
            config: crate::spool::SpoolConfig {
                dir: Some(dir.clone()),
                ..Default::default()
            },
            spool: None,
        };
        let sink = DatabaseSink::new(
            "lite",
            store,
            Buffer::Memory(None, overflow),
            "h".into(),
            counters.clone(),
        );
        let thread = std::thread::spawn(move || sink.run(queue));
        let mut fanout = Fanout::new(vec![handle]);
        const N: u64 = 200_000;
        let start = std::time::Instant::now();
        for first in (0..N).step_by(100) {
            let mut b: Vec<Event> = (first..first + 100).map(line).collect();
            fanout.send(&mut b);
            // 100 events a millisecond.
            let due = Duration::from_micros(first * 10);
            std::thread::sleep(due.saturating_sub(start.elapsed()));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while positions.lock().unwrap().len() < N as usize && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(fanout);
        thread.join().unwrap();
        let got = positions.lock().unwrap().clone();
        assert_eq!(counters.dropped.load(Relaxed), 0);
        assert!(counters.spooled.load(Relaxed) > 0, "nothing was spilled");
        assert_eq!(got, (0..N as i64).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
