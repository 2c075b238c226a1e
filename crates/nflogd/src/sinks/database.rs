//! What the database sinks share: events become row changes (`store::rows`), which wait in the
//! sink's disk spool (PostgreSQL, ClickHouse) or in memory (SQLite, a local file) until the
//! store has committed them; a failing store is reconnected with backoff while events keep
//! being taken.

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
    /// A local store: no second copy on disk; a batch it could not take is retried.
    Memory(Option<Vec<Change>>),
}

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
        if let Buffer::Spool(s) = &buffer {
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
    /// is no room (spool full with `block`, or a memory unit still unwritten), and the caller
    /// keeps them.
    fn accept(&mut self, batches: &[Batch]) -> bool {
        if matches!(self.buffer, Buffer::Memory(Some(_))) {
            return false;
        }
        let changes = self.changes(batches);
        let spool = match &mut self.buffer {
            Buffer::Memory(slot) => {
                *slot = Some(changes);
                return true;
            }
            Buffer::Spool(spool) => spool,
        };
        self.encoded.clear();
        for c in &changes {
            let mut v = Vec::with_capacity(160);
            codec::encode(c, &mut v);
            self.encoded.push(v);
        }
        let msgs: Vec<&[u8]> = self.encoded.iter().map(Vec::as_slice).collect();
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
            Buffer::Memory(slot) => match slot.take() {
                None => false,
                Some(changes) => {
                    let ok = self.write(&changes);
                    if !ok {
                        if let Buffer::Memory(slot) = &mut self.buffer {
                            *slot = Some(changes);
                        }
                    }
                    ok
                }
            },
            Buffer::Spool(spool) => match spool.peek() {
                Ok(None) => false,
                Err(e) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    crate::rate_limited_warn!("sink `{}`: cannot read the spool: {e}", self.name);
                    false
                }
                Ok(Some(msgs)) => {
                    let mut changes = Vec::with_capacity(msgs.len());
                    for m in &msgs {
                        match codec::decode(m) {
                            Some(c) => changes.push(c),
                            None => ComponentCounters::add(&self.counters.malformed, 1),
                        }
                    }
                    let ok = self.write(&changes);
                    if ok {
                        if let Buffer::Spool(spool) = &mut self.buffer {
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

    fn pending(&self) -> u64 {
        match &self.buffer {
            Buffer::Spool(s) => s.pending_events(),
            Buffer::Memory(m) => m.as_ref().map_or(0, |c| c.len() as u64),
        }
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Buffer::Spool(s) = &self.buffer {
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
                if self.accept(&held) {
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
                let mut next = Some(q.rx.recv_timeout(wait));
                while let Some(r) = next.take() {
                    match r {
                        Ok(b) => {
                            ComponentCounters::add(&self.counters.received, b.len() as u64);
                            rows += b.len();
                            held.push(b);
                            if rows >= UNIT_ROWS {
                                if !self.accept(&held) {
                                    break;
                                }
                                for b in held.drain(..) {
                                    q.taken(&b);
                                }
                                rows = 0;
                            }
                            next = Some(q.rx.try_recv().map_err(|e| match e {
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
                if !held.is_empty() && self.accept(&held) {
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
            if let Buffer::Spool(s) = &mut self.buffer {
                if last_sync.elapsed() >= self.sync_interval {
                    let _ = s.sync();
                    last_sync = Instant::now();
                }
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
        match &mut self.buffer {
            Buffer::Spool(s) => {
                let _ = s.sync();
                if s.pending_events() > 0 {
                    tracing::warn!(
                        "sink `{}`: {} rows stay in the spool for the next start",
                        self.name,
                        s.pending_events()
                    );
                }
            }
            Buffer::Memory(Some(c)) => {
                ComponentCounters::add(&self.counters.dropped, c.len() as u64);
                tracing::warn!(
                    "sink `{}`: {} rows could not be written before stopping",
                    self.name,
                    c.len()
                );
            }
            Buffer::Memory(None) => {}
        }
        self.store.disconnect();
    }
}
