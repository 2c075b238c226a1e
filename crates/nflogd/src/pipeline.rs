//! Fan-out from sources to sinks: every sink has its own bounded queue, and a source hands each
//! batch to every sink that lists it, never waiting: a full queue drops the batch for that sink
//! and counts it.

use crate::metrics::ComponentCounters;
use crossbeam_channel::{Receiver, Sender};
use event::Event;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub type Batch = Arc<Vec<Event>>;

/// Events a sink queue holds before it refuses more (about 60 MB of decoded packets): memory
/// stays bounded however slow a sink is.
pub const SINK_QUEUE_EVENTS: usize = 100_000;

#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub tx: Sender<Batch>,
    pub counters: Arc<ComponentCounters>,
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
    }
}

pub fn sink_queue(name: &str, counters: Arc<ComponentCounters>) -> (SinkHandle, SinkQueue) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        SinkHandle {
            name: name.to_string(),
            tx,
            counters: counters.clone(),
        },
        SinkQueue { rx, counters },
    )
}

/// The sinks one source feeds.
#[derive(Clone, Default)]
pub struct Fanout {
    pub sinks: Vec<SinkHandle>,
}

impl Fanout {
    pub fn send(&self, batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let batch = Arc::new(batch);
        for s in &self.sinks {
            if s.counters.queued.load(Ordering::Relaxed) as usize + batch.len() > SINK_QUEUE_EVENTS
            {
                ComponentCounters::add(&s.counters.dropped, n);
                crate::rate_limited_warn!(
                    "sink `{}` is not keeping up: its queue is full, {} events dropped",
                    s.name,
                    n
                );
                continue;
            }
            s.counters
                .queued
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if s.tx.send(batch.clone()).is_err() {
                // The sink thread is gone; its events are lost, and counted.
                ComponentCounters::add(&s.counters.dropped, n);
            }
        }
    }
}
