//! Fan-out from sources to sinks: every sink has its own bounded queue, and a source hands each
//! batch to every sink that lists it.
//!
//! What happens at a full queue depends on the source (DESIGN: "sources that can wait must
//! wait"):
//! - A source that cannot wait (NFLOG, conntrack, UDP) never blocks: the batch is dropped for
//!   that sink and counted. Sinks with a disk spool take their queue into it as fast as they
//!   can, so for them the memory queue is only a hand-over.
//! - A source that can wait (files, stdin, kmsg, syslog over TCP/TLS) waits for room, so it
//!   reads at the pace of its slowest sink; it can also learn which of its batches every sink
//!   has taken, and records a position only for those.
//!
//! A queue's size counts what its batches really hold: the vectors' capacity and what the
//! events keep on the heap, so memory stays bounded whatever the batch shapes.

use crate::metrics::ComponentCounters;
use crate::transforms::Transform;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use event::Event;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub type Batch = Arc<Vec<Event>>;

/// How much a sink's memory queue holds before it refuses more: memory stays bounded however
/// slow a sink is.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub events: u64,
    pub bytes: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            events: 100_000,
            bytes: 64 << 20,
        }
    }
}

/// The serde defaults of every sink's `queue_max_events` and `queue_max_bytes`.
pub fn default_queue_events() -> u64 {
    QueueLimits::default().events
}

pub fn default_queue_bytes() -> crate::units::ByteSize {
    crate::units::ByteSize(QueueLimits::default().bytes)
}

/// Memory a batch takes in a queue: its vector's whole capacity, and what the events keep on
/// the heap (shared strings counted as if owned, which errs on the safe side).
#[allow(clippy::ptr_arg)] // the capacity is what counts, and only a Vec has one
pub fn batch_bytes(b: &Vec<Event>) -> u64 {
    let inline = b.capacity() * std::mem::size_of::<Event>();
    let heap: usize = b.iter().map(event_heap_bytes).sum();
    (std::mem::size_of::<Vec<Event>>() + inline + heap) as u64
}

fn event_heap_bytes(e: &Event) -> usize {
    match e {
        Event::Raw(r) => {
            r.line.capacity()
                + r.reason.capacity()
                + r.origin.len()
                + std::mem::size_of::<event::RawLine>()
        }
        Event::Packet(p) => {
            let iface = |i: &Option<event::Interface>| i.as_ref().map_or(0, |i| i.name.len());
            p.prefix.len()
                + p.host.as_ref().map_or(0, |h| h.len())
                + iface(&p.indev)
                + iface(&p.outdev)
                + iface(&p.physindev)
                + iface(&p.physoutdev)
                + p.ct
                    .as_ref()
                    .map_or(0, |_| std::mem::size_of::<event::Conntrack>())
                + p.payload.as_ref().map_or(0, |b| b.len())
        }
        Event::Flow(_) => 0,
        Event::Counter(c) => std::mem::size_of::<event::CounterEvent>() + c.name.capacity(),
        Event::Line(l) => std::mem::size_of::<event::LogLine>() + l.message.capacity(),
        Event::Decision(d) => std::mem::size_of::<event::Decision>() + d.reason.capacity(),
    }
}

#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub tx: Sender<Batch>,
    pub counters: Arc<ComponentCounters>,
    pub limits: QueueLimits,
    /// It reads programs' log lines (a guard); sinks are handed batches without them.
    pub takes_lines: bool,
    /// It writes packets' bytes (a pcap sink): packet sources then keep them on the records.
    pub takes_payload: bool,
    /// Set when the sink's end of the queue is gone (its thread ended or died): a waiting
    /// source must not wait for it.
    closed: Arc<AtomicBool>,
    /// Set by a reload once no producer hands it anything more: its consumer takes what is
    /// queued, then ends.
    retired: Arc<AtomicBool>,
}

impl SinkHandle {
    /// Tells the consumer to end once the queue is empty; only when no producer can send to
    /// it any more (`Rewire::settled`).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// Whether the consumer's end is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn has_room(&self, n: u64, bytes: u64) -> bool {
        let c = &self.counters;
        let (qe, qb) = (
            c.queued.load(Ordering::Relaxed),
            c.queued_bytes.load(Ordering::Relaxed),
        );
        // An empty queue always takes a batch, so a limit below the batch size still lets
        // events through; the bound is then the limit plus one batch.
        qe == 0 || (qe + n <= self.limits.events && qb + bytes <= self.limits.bytes)
    }
}

/// The receiving end a sink reads; it gives back queue room as it takes batches.
pub struct SinkQueue {
    pub rx: Receiver<Batch>,
    counters: Arc<ComponentCounters>,
    limits: QueueLimits,
    closed: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
    /// Some input cannot wait (NFLOG, conntrack, UDP): a full queue would lose its events.
    pub urgent: bool,
}

impl SinkQueue {
    /// The next batch, waiting up to `timeout`; `Disconnected` when every producer is gone, or
    /// the queue was retired and is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Batch, RecvTimeoutError> {
        let end = Instant::now() + timeout;
        loop {
            if self.retired.load(Ordering::SeqCst) {
                return self
                    .rx
                    .try_recv()
                    .map_err(|_| RecvTimeoutError::Disconnected);
            }
            let now = Instant::now();
            let step = end
                .saturating_duration_since(now)
                .min(Duration::from_millis(50));
            match self.rx.recv_timeout(step) {
                Err(RecvTimeoutError::Timeout) if Instant::now() < end => continue,
                r => return r,
            }
        }
    }

    /// A batch if one is queued; `Disconnected` as for `recv_timeout`.
    pub fn try_recv(&self) -> Result<Batch, TryRecvError> {
        match self.rx.try_recv() {
            Err(TryRecvError::Empty) if self.retired.load(Ordering::SeqCst) => {
                Err(TryRecvError::Disconnected)
            }
            r => r,
        }
    }

    pub fn taken(&self, batch: &Batch) {
        self.counters
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        self.counters
            .queued_bytes
            .fetch_sub(batch_bytes(batch), Ordering::Relaxed);
    }

    /// Whether the queue holds at least 1/`fraction` of its event or byte limit while an
    /// input cannot wait (sources that can wait are held back by a full queue instead).
    pub fn pressed(&self, fraction: u64) -> bool {
        let c = &self.counters;
        if !self.urgent {
            return false;
        }
        c.queued.load(Ordering::Relaxed) * fraction >= self.limits.events
            || c.queued_bytes.load(Ordering::Relaxed) * fraction >= self.limits.bytes
    }
}

impl Drop for SinkQueue {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

pub fn sink_queue(
    name: &str,
    counters: Arc<ComponentCounters>,
    limits: QueueLimits,
) -> (SinkHandle, SinkQueue) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let closed = Arc::new(AtomicBool::new(false));
    let retired = Arc::new(AtomicBool::new(false));
    (
        SinkHandle {
            name: name.to_string(),
            tx,
            counters: counters.clone(),
            limits,
            takes_lines: false,
            takes_payload: false,
            closed: closed.clone(),
            retired: retired.clone(),
        },
        SinkQueue {
            rx,
            counters,
            limits,
            closed,
            retired,
            urgent: true,
        },
    )
}

/// A batch a source sent, to ask later whether every sink has taken it.
/// What became of a batch a source sent: the batch its sinks were handed, and what each
/// transform running in the source's thread made of it. `Fanout::all_taken` says when every
/// consumer has taken its part.
pub struct Sent {
    /// The batch the sinks were handed, and the copy without log lines some of them got.
    own: Vec<Weak<Vec<Event>>>,
    children: Vec<Option<Sent>>,
}

/// Where a source's batches go: the queues of the sinks (and of stateful transforms) that take
/// it, and the stateless transforms that run right here, each with where its output goes.
#[derive(Default)]
pub struct Fanout {
    pub sinks: Vec<SinkHandle>,
    pub transforms: Vec<(Box<dyn Transform>, Fanout)>,
    sent: VecDeque<Batch>,
    wait: bool,
    /// Where a reload leaves this producer's new wiring, and the version applied here.
    rewire: Option<Arc<Rewire>>,
    generation: u64,
}

/// A producer's wiring as a reload changes it: the reload publishes a new fan-out, and the
/// producer (each of its threads) takes it up at its next send. `settled` tells the reload
/// when no send can still be using the old one, so that the queues only it fed can be retired.
#[derive(Default)]
pub struct Rewire {
    generation: AtomicU64,
    next: Mutex<Option<Fanout>>,
    in_send: AtomicUsize,
}

impl Rewire {
    pub fn publish(&self, fanout: Fanout) {
        if let Ok(mut n) = self.next.lock() {
            *n = Some(fanout);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits up to `timeout` for a moment when no send is under way: sends after it read the
    /// published wiring.
    pub fn settled(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.in_send.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A copy for another thread of the same source: the same queues, new transform instances,
/// nothing sent yet.
impl Clone for Fanout {
    fn clone(&self) -> Self {
        Fanout {
            sinks: self.sinks.clone(),
            transforms: self
                .transforms
                .iter()
                .map(|(t, out)| (t.another(), out.clone()))
                .collect(),
            sent: VecDeque::new(),
            wait: self.wait,
            rewire: self.rewire.clone(),
            generation: self.generation,
        }
    }
}

/// Batches kept after sending, to reuse their vectors once every sink is done with them.
const KEPT_BATCHES: usize = 4;

impl Fanout {
    #[cfg(test)]
    pub fn new(sinks: Vec<SinkHandle>) -> Self {
        Fanout {
            sinks,
            ..Fanout::default()
        }
    }

    /// A fan-out whose wiring a reload can replace through `rewire`.
    pub fn rewired_by(mut self, rewire: Arc<Rewire>) -> Self {
        self.generation = rewire.generation.load(Ordering::SeqCst);
        self.rewire = Some(rewire);
        self
    }

    /// Takes up a wiring a reload published, if there is a newer one.
    fn take_rewire(&mut self, r: &Rewire) {
        let g = r.generation.load(Ordering::SeqCst);
        if g == self.generation {
            return;
        }
        let next = r
            .next
            .lock()
            .ok()
            .and_then(|n| n.as_ref().map(Fanout::clone));
        if let Some(next) = next {
            self.sinks = next.sinks;
            self.transforms = next.transforms;
        }
        self.generation = g;
    }

    /// For a source that can wait: a full queue makes it wait instead of dropping (through the
    /// transforms it runs too).
    pub fn waiting(mut self) -> Self {
        self.wait = true;
        for (_, out) in &mut self.transforms {
            *out = std::mem::take(out).waiting();
        }
        self
    }

    /// Hands `batch` to every consumer and leaves an empty vector (a reused one when possible)
    /// in its place. The transforms get copies while the sinks still need the original; the
    /// last consumer gets the batch itself.
    pub fn send(&mut self, batch: &mut Vec<Event>) -> Option<Sent> {
        if batch.is_empty() {
            return None;
        }
        let Some(r) = self.rewire.clone() else {
            return self.send_now(batch);
        };
        r.in_send.fetch_add(1, Ordering::SeqCst);
        self.take_rewire(&r);
        let sent = self.send_now(batch);
        r.in_send.fetch_sub(1, Ordering::SeqCst);
        sent
    }

    fn send_now(&mut self, batch: &mut Vec<Event>) -> Option<Sent> {
        let mut children = Vec::with_capacity(self.transforms.len());
        let last = self.transforms.len().saturating_sub(1);
        let sinks_after = !self.sinks.is_empty();
        for (i, (t, out)) in self.transforms.iter_mut().enumerate() {
            if i == last && !sinks_after {
                t.apply(batch);
                children.push(out.send(batch));
                batch.clear();
            } else {
                let mut copy = batch.clone();
                t.apply(&mut copy);
                children.push(out.send(&mut copy));
            }
        }
        let own = if sinks_after {
            self.send_to_sinks(batch)
        } else {
            Vec::new()
        };
        Some(Sent { own, children })
    }

    /// Whether some consumer reads programs' log lines (a guard): line sources then hand
    /// them on instead of counting them as ignored.
    pub fn wants_lines(&self) -> bool {
        self.sinks.iter().any(|s| s.takes_lines)
            || self.transforms.iter().any(|(_, out)| out.wants_lines())
    }

    /// Whether some consumer writes packets' bytes (a pcap sink).
    pub fn wants_payload(&self) -> bool {
        self.sinks.iter().any(|s| s.takes_payload)
            || self.transforms.iter().any(|(_, out)| out.wants_payload())
    }

    fn send_to_sinks(&mut self, batch: &mut Vec<Event>) -> Vec<Weak<Vec<Event>>> {
        // Log lines go only to those that read them (guards); the others get a copy without.
        let mut without_lines: Option<(Batch, u64, u64)> = None;
        // Only a fan-out with a guard among its consumers looks: others never carry lines.
        let mixed =
            self.sinks.iter().any(|s| s.takes_lines) && self.sinks.iter().any(|s| !s.takes_lines);
        if mixed && batch.iter().any(Event::is_line) {
            let rest: Vec<Event> = batch.iter().filter(|e| !e.is_line()).cloned().collect();
            let (n, bytes) = (rest.len() as u64, batch_bytes(&rest));
            without_lines = Some((Arc::new(rest), n, bytes));
        }
        let capacity = batch.capacity();
        // A small batch in a big vector (a quiet source) would hold the whole capacity in
        // every queue it waits in.
        if batch.len() <= 16 && batch.len() * 4 < capacity {
            batch.shrink_to_fit();
        }
        let n = batch.len() as u64;
        let bytes = batch_bytes(batch);
        let shared = Arc::new(std::mem::take(batch));
        for s in &self.sinks {
            let (shared, n, bytes) = match &without_lines {
                Some((w, n, bytes)) if !s.takes_lines => (w, *n, *bytes),
                _ => (&shared, n, bytes),
            };
            if n == 0 {
                continue;
            }
            let room = s.has_room(n, bytes) || (self.wait && wait_for_room(s, n, bytes));
            if !room {
                ComponentCounters::add(&s.counters.dropped, n);
                crate::rate_limited_warn!(
                    "sink `{}` is not keeping up: its queue is full, {} events dropped",
                    s.name,
                    n
                );
                continue;
            }
            s.counters.queued.fetch_add(n, Ordering::Relaxed);
            s.counters.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            if s.tx.send(shared.clone()).is_err() {
                ComponentCounters::add(&s.counters.dropped, n);
                s.counters.queued.fetch_sub(n, Ordering::Relaxed);
                s.counters.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
        *batch = self
            .reusable()
            .unwrap_or_else(|| Vec::with_capacity(capacity));
        let mut sent = vec![Arc::downgrade(&shared)];
        sent.extend(without_lines.as_ref().map(|(w, ..)| Arc::downgrade(w)));
        self.sent.push_back(shared);
        if self.sent.len() > KEPT_BATCHES {
            self.sent.pop_front();
        }
        sent
    }

    /// Whether every consumer has taken what `sent` handed it (a waiting source records its
    /// position only then).
    pub fn all_taken(&self, sent: &Sent) -> bool {
        let own = sent.own.iter().all(|w| {
            let kept_here = self
                .sent
                .iter()
                .any(|b| std::ptr::eq(Arc::as_ptr(b), w.as_ptr()));
            w.strong_count() <= kept_here as usize
        });
        own && self
            .transforms
            .iter()
            .zip(&sent.children)
            .all(|((_, out), s)| s.as_ref().is_none_or(|s| out.all_taken(s)))
    }

    fn reusable(&mut self) -> Option<Vec<Event>> {
        let done = self.sent.iter().position(|b| Arc::strong_count(b) == 1)?;
        let mut v = Arc::try_unwrap(self.sent.remove(done)?).ok()?;
        v.clear();
        Some(v)
    }
}

fn wait_for_room(s: &SinkHandle, n: u64, bytes: u64) -> bool {
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        if s.closed.load(Ordering::Relaxed) {
            return false;
        }
        if s.has_room(n, bytes) || crate::signals::shutdown_requested() {
            return true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event::{RawLine, Timestamp};

    fn raw_batch(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::Raw(Box::new(RawLine {
                    time: Timestamp { secs: 0, micros: 0 },
                    host: None,
                    origin: "test".into(),
                    position: Some(i as u64),
                    line: "x".repeat(1000),
                    reason: String::new(),
                }))
            })
            .collect()
    }

    /// A fan-out to one sink with queue limits of `events` and `bytes`.
    fn one_sink(events: u64, bytes: u64) -> (Fanout, SinkQueue, Arc<ComponentCounters>) {
        let counters = Arc::new(ComponentCounters::default());
        let (handle, queue) = sink_queue("t", counters.clone(), QueueLimits { events, bytes });
        (Fanout::new(vec![handle]), queue, counters)
    }

    /// A sink that keeps up never drops, however much passes through in total: taking a batch
    /// gives back its events and its bytes.
    #[test]
    fn queue_room_comes_back_when_batches_are_taken() {
        let (mut fanout, queue, counters) = one_sink(1000, 1 << 20);
        for _ in 0..500 {
            fanout.send(&mut raw_batch(100)); // over 100 kB a batch; over 100 MB in all
            fanout.send(&mut raw_batch(100));
            for _ in 0..2 {
                let b = queue.rx.try_recv().unwrap();
                queue.taken(&b);
            }
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(counters.queued.load(Ordering::Relaxed), 0);
        assert_eq!(counters.queued_bytes.load(Ordering::Relaxed), 0);
    }

    /// A sink that does not keep up has its queue bounded by bytes, and the rest is counted.
    #[test]
    fn a_stuck_sink_drops_past_its_byte_limit_and_counts() {
        let (mut fanout, _queue, counters) = one_sink(1_000_000, 256 << 10);
        for _ in 0..10 {
            fanout.send(&mut raw_batch(100));
        }
        let queued = counters.queued.load(Ordering::Relaxed);
        assert!(queued > 0 && queued <= 300, "{queued}");
        assert_eq!(counters.dropped.load(Ordering::Relaxed) + queued, 1000);
    }

    /// A source refills the vector of a batch its sinks are done with, and gets a fresh one
    /// while a sink still holds every earlier batch.
    #[test]
    fn a_batch_every_sink_has_finished_with_is_reused() {
        let counters = Arc::new(ComponentCounters::default());
        let (handle, queue) = sink_queue("t", counters, QueueLimits::default());
        let mut fanout = Fanout {
            sinks: vec![handle],
            ..Fanout::default()
        };
        let mut batch = raw_batch(100);
        let first = batch.as_ptr();
        fanout.send(&mut batch);
        assert!(batch.is_empty() && batch.capacity() >= 100);
        assert_ne!(
            batch.as_ptr(),
            first,
            "the sink still holds the first batch"
        );
        let held = queue.rx.try_recv().unwrap();
        batch.extend(raw_batch(10));
        fanout.send(&mut batch);
        drop(held);
        drop(queue.rx.try_recv().unwrap());
        batch.extend(raw_batch(10));
        fanout.send(&mut batch);
        assert_eq!(batch.as_ptr(), first, "the first batch's vector comes back");
        assert!(batch.is_empty());
    }

    /// A source that can wait blocks at a full queue until the sink takes a batch, and then
    /// loses nothing.
    #[test]
    fn a_waiting_source_blocks_until_the_sink_has_room() {
        use std::sync::atomic::AtomicBool;
        let (fanout, queue, counters) = one_sink(100, 1 << 30);
        let mut fanout = fanout.waiting();
        let first = fanout.send(&mut raw_batch(100)).unwrap();
        assert!(!fanout.all_taken(&first));
        let done = Arc::new(AtomicBool::new(false));
        let sender = {
            let done = done.clone();
            std::thread::spawn(move || {
                fanout.send(&mut raw_batch(100));
                done.store(true, Ordering::SeqCst);
                fanout
            })
        };
        // Nothing makes room until the sink takes a batch, so the sender is still waiting.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!done.load(Ordering::SeqCst), "send did not wait for room");
        let b = queue.rx.recv().unwrap();
        queue.taken(&b);
        drop(b);
        let fanout = sender.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
        assert!(
            fanout.all_taken(&first),
            "the sink took and dropped the first batch"
        );
        let second = queue.rx.recv().unwrap();
        assert_eq!(second.len(), 100);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
    }

    /// Programs' log lines go to the consumers that read them (a guard) and nowhere else; a
    /// waiting source's batch is taken only once both the full batch and the copy without
    /// lines are.
    #[test]
    fn log_lines_go_only_to_those_that_take_them() {
        let counters = Arc::new(ComponentCounters::default());
        let (mut guard, guard_q) = sink_queue("g", counters.clone(), QueueLimits::default());
        guard.takes_lines = true;
        let (file, file_q) = sink_queue("f", counters, QueueLimits::default());
        let mut fanout = Fanout::new(vec![guard, file]).waiting();
        assert!(fanout.wants_lines());
        let line = Event::Line(Box::new(event::LogLine {
            time: Timestamp { secs: 0, micros: 0 },
            host: None,
            program: Some("sshd".into()),
            pid: None,
            message: "Invalid user x from 192.0.2.1 port 1".into(),
            origin: "t".into(),
        }));
        let mut batch = raw_batch(2);
        batch.insert(1, line);
        let sent = fanout.send(&mut batch).unwrap();
        let g = guard_q.rx.try_recv().unwrap();
        let f = file_q.rx.try_recv().unwrap();
        assert_eq!((g.len(), f.len()), (3, 2));
        assert!(!f.iter().any(Event::is_line));
        drop(g);
        assert!(
            !fanout.all_taken(&sent),
            "the file sink still holds its copy"
        );
        drop(f);
        assert!(fanout.all_taken(&sent));
        // A batch without lines is shared as it is.
        fanout.send(&mut raw_batch(2));
        let (g, f) = (
            guard_q.rx.try_recv().unwrap(),
            file_q.rx.try_recv().unwrap(),
        );
        assert!(Arc::ptr_eq(&g, &f));
        assert!(!Fanout::new(Vec::new()).wants_lines());
    }

    /// A waiting source does not wait for a sink whose thread is gone: it counts the loss.
    #[test]
    fn a_waiting_source_does_not_wait_for_a_dead_sink() {
        let (fanout, queue, counters) = one_sink(10, 1 << 30);
        let mut fanout = fanout.waiting();
        fanout.send(&mut raw_batch(10));
        drop(queue);
        fanout.send(&mut raw_batch(10));
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 10);
    }

    /// A queue counts a batch's whole vector: one event in a vector sized for a busy source is
    /// given a vector of its own size, so a queue of one-event batches (UDP datagrams) stays
    /// within its byte limit in real memory.
    #[test]
    fn queued_bytes_count_capacity_and_small_batches_are_shrunk() {
        let mut big = Vec::with_capacity(4096);
        big.extend(raw_batch(1));
        let one_event = batch_bytes(&big);
        assert!(
            one_event >= 4096 * std::mem::size_of::<Event>() as u64,
            "{one_event}"
        );
        let counters = Arc::new(ComponentCounters::default());
        let (handle, queue) = sink_queue("t", counters.clone(), QueueLimits::default());
        let mut fanout = Fanout {
            sinks: vec![handle],
            ..Fanout::default()
        };
        fanout.send(&mut big);
        let b = queue.rx.try_recv().unwrap();
        assert!(b.capacity() < 4, "{}", b.capacity());
        assert_eq!(
            counters.queued_bytes.load(Ordering::Relaxed),
            batch_bytes(&b)
        );
        assert!(batch_bytes(&b) < 2048 + std::mem::size_of::<Event>() as u64 * 4);
    }
}
