//! Fan-out from sources to sinks: every sink has its own bounded queue, and a source hands each
//! batch to every sink that lists it, never waiting: a full queue drops the batch for that sink
//! and counts it.

use crate::metrics::ComponentCounters;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use event::Event;
use std::sync::Arc;

pub type Batch = Arc<Vec<Event>>;

/// Batches a sink queue holds before it refuses more.
pub const SINK_QUEUE_BATCHES: usize = 4096;

#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub tx: Sender<Batch>,
    pub counters: Arc<ComponentCounters>,
}

pub fn sink_queue() -> (Sender<Batch>, Receiver<Batch>) {
    crossbeam_channel::bounded(SINK_QUEUE_BATCHES)
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
            match s.tx.try_send(batch.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    ComponentCounters::add(&s.counters.dropped, n);
                    crate::rate_limited_warn!(
                        "sink `{}` is not keeping up: its queue is full, {} events dropped",
                        s.name,
                        n
                    );
                }
                Err(TrySendError::Disconnected(_)) => {
                    ComponentCounters::add(&s.counters.dropped, n);
                }
            }
        }
    }
}
