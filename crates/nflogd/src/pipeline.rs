//! Fan-out from sources to sinks: every sink has its own bounded queue, and a source hands each
//! batch to every sink that lists it, never waiting: a full queue drops the batch for that sink
//! and counts it.

use crate::metrics::ComponentCounters;
use crossbeam_channel::{Receiver, Sender};
use event::Event;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

/// Memory a batch takes in a queue: the events themselves and what raw lines carry.
pub fn batch_bytes(b: &[Event]) -> u64 {
    let inline = std::mem::size_of_val(b) as u64;
    let heap: usize = b
        .iter()
        .map(|e| match e {
            Event::Raw(r) => r.line.len() + r.reason.len() + std::mem::size_of::<event::RawLine>(),
            Event::Packet(_) | Event::Flow(_) => 0,
            Event::Counter(c) => std::mem::size_of::<event::CounterEvent>() + c.name.len(),
        })
        .sum();
    inline + heap as u64
}

#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub tx: Sender<Batch>,
    pub counters: Arc<ComponentCounters>,
    pub limits: QueueLimits,
}

/// The receiving end a sink reads; it gives back queue room as it takes batches.
pub struct SinkQueue {
    pub rx: Receiver<Batch>,
    counters: Arc<ComponentCounters>,
}

impl SinkQueue {
    pub fn taken(&self, batch: &Batch) {
        self.counters
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        self.counters
            .queued_bytes
            .fetch_sub(batch_bytes(batch), Ordering::Relaxed);
    }
}

pub fn sink_queue(
    name: &str,
    counters: Arc<ComponentCounters>,
    limits: QueueLimits,
) -> (SinkHandle, SinkQueue) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        SinkHandle {
            name: name.to_string(),
            tx,
            counters: counters.clone(),
            limits,
        },
        SinkQueue { rx, counters },
    )
}

/// The sinks one source feeds, and the batches it sent last.
#[derive(Clone, Default)]
pub struct Fanout {
    pub sinks: Vec<SinkHandle>,
    /// Kept to reuse their vectors once every sink is done with them: a busy source then fills
    /// memory already mapped and cached. A fresh vector per batch cost page faults and a copy
    /// at each growth, a tenth of the conntrack source's CPU.
    sent: VecDeque<Batch>,
}

/// Batches kept for reuse: a sink that keeps up has finished with the oldest by then.
const KEPT_BATCHES: usize = 4;

impl Fanout {
    /// Hands `batch` to every sink and leaves in its place an empty vector to fill next.
    pub fn send(&mut self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let capacity = batch.capacity();
        let n = batch.len() as u64;
        let bytes = batch_bytes(batch);
        let shared = Arc::new(std::mem::take(batch));
        for s in &self.sinks {
            let c = &s.counters;
            // An empty queue always takes a batch, so a limit below the batch size still lets
            // events through; the bound is then the limit plus one batch.
            let (qe, qb) = (
                c.queued.load(Ordering::Relaxed),
                c.queued_bytes.load(Ordering::Relaxed),
            );
            if qe > 0 && (qe + n > s.limits.events || qb + bytes > s.limits.bytes) {
                ComponentCounters::add(&c.dropped, n);
                crate::rate_limited_warn!(
                    "sink `{}` is not keeping up: its queue is full, {} events dropped",
                    s.name,
                    n
                );
                continue;
            }
            c.queued.fetch_add(n, Ordering::Relaxed);
            c.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            if s.tx.send(shared.clone()).is_err() {
                // The sink thread is gone; its events are lost, and counted.
                ComponentCounters::add(&s.counters.dropped, n);
            }
        }
        *batch = self
            .reusable()
            .unwrap_or_else(|| Vec::with_capacity(capacity));
        self.sent.push_back(shared);
        if self.sent.len() > KEPT_BATCHES {
            self.sent.pop_front();
        }
    }

    /// The vector of a sent batch no sink holds any more, emptied.
    fn reusable(&mut self) -> Option<Vec<Event>> {
        let done = self.sent.iter().position(|b| Arc::strong_count(b) == 1)?;
        let mut v = Arc::try_unwrap(self.sent.remove(done)?).ok()?;
        v.clear();
        Some(v)
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

    /// A sink that keeps up never drops, however much passes through in total: taking a batch
    /// gives back its events and its bytes.
    #[test]
    fn queue_room_comes_back_when_batches_are_taken() {
        let counters = Arc::new(ComponentCounters::default());
        let limits = QueueLimits {
            events: 1000,
            bytes: 1 << 20,
        };
        let (handle, queue) = sink_queue("t", counters.clone(), limits);
        let mut fanout = Fanout {
            sinks: vec![handle],
            ..Fanout::default()
        };
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
        let counters = Arc::new(ComponentCounters::default());
        let limits = QueueLimits {
            events: 1_000_000,
            bytes: 256 << 10,
        };
        let (handle, _queue) = sink_queue("t", counters.clone(), limits);
        let mut fanout = Fanout {
            sinks: vec![handle],
            ..Fanout::default()
        };
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
}
