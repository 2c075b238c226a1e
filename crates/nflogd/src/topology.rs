//! Builds the running topology from a validated config: sink queues and threads first (so no
//! event has nowhere to go), then stateful transforms' threads, then sources, each with its
//! output: the stateless transforms that run in its thread and the queues downstream. Then it
//! waits for shutdown and drains.

use crate::config::Config;
use crate::graph::Graph;
use crate::metrics::{self, ComponentCounters};
use crate::pipeline::{self, Batch, Fanout, SinkHandle, SinkQueue};
use crate::sinks::SinkContext;
use crate::sources::SourceContext;
use crate::transforms::{Transform, TransformContext};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        return String::from_utf8_lossy(&buf[..end]).into_owned();
    }
    "localhost".into()
}

/// What the outputs are built from: each consumer's queue (sinks, stateful transforms) and
/// each transform's counters, shared by all its instances.
struct Parts<'a> {
    cfg: &'a Config,
    graph: Graph<'a>,
    queues: HashMap<String, SinkHandle>,
    counters: HashMap<String, Arc<ComponentCounters>>,
}

impl Parts<'_> {
    /// Where the events of `node` (a source or transform) go.
    fn output_of(&self, node: &str) -> Result<Fanout> {
        let mut out = Fanout::default();
        for consumer in self.graph.consumers(node) {
            if let Some(q) = self.queues.get(consumer) {
                out.sinks.push(q.clone());
                continue;
            }
            let t = &self.cfg.transforms[consumer];
            let ctx = TransformContext {
                name: consumer.to_string(),
                counters: self.counters[consumer].clone(),
            };
            let instance = t
                .component()
                .build(&ctx)
                .with_context(|| format!("starting transform `{consumer}`"))?;
            out.transforms.push((instance, self.output_of(consumer)?));
        }
        Ok(out)
    }

    /// Whether a source that cannot wait feeds `node`: its queue must then never hold a
    /// source up, and a sink hurries to spool what it cannot take.
    fn urgent(&self, node: &str) -> bool {
        self.graph
            .feeding_sources(node)
            .iter()
            .any(|s| !self.cfg.sources[*s].component().can_wait())
    }
}

/// A stateful transform's thread: batches from its queue, through the transform, on to its
/// consumers.
fn run_stateful(
    name: &str,
    mut t: Box<dyn Transform>,
    queue: SinkQueue,
    mut out: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    Ok(std::thread::Builder::new()
        .name(format!("transform-{name}"))
        .spawn(move || {
            // Ends when every input is gone (its sources ended) and the queue is empty.
            let tick = std::time::Duration::from_millis(100);
            let mut last_tick = std::time::Instant::now();
            loop {
                match queue.rx.recv_timeout(tick) {
                    Ok(b) => {
                        queue.taken(&b);
                        let mut batch = Arc::try_unwrap(b).unwrap_or_else(|b: Batch| (*b).clone());
                        t.apply(&mut batch);
                        out.send(&mut batch);
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
                if last_tick.elapsed() >= tick {
                    last_tick = std::time::Instant::now();
                    let mut timed = Vec::new();
                    t.tick(&mut timed);
                    ComponentCounters::add(&counters.sent, timed.len() as u64);
                    out.send(&mut timed);
                }
            }
            let mut last = Vec::new();
            t.end(&mut last);
            out.send(&mut last);
        })?)
}

pub fn run(cfg: Config) -> Result<()> {
    crate::files::set_umask(&cfg.umask)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let host = cfg.hostname.clone().unwrap_or_else(hostname);
    let community_id = cfg.community_id.then_some(cfg.community_id_seed);
    let mut parts = Parts {
        cfg: &cfg,
        graph: cfg.graph(),
        queues: HashMap::new(),
        counters: HashMap::new(),
    };
    let mut sink_threads = Vec::new();
    for (name, s) in &cfg.sinks {
        let counters = metrics::register("sink", name);
        let (mut handle, mut queue) =
            pipeline::sink_queue(name, counters.clone(), s.component().queue_limits());
        queue.urgent = parts.urgent(name);
        handle.takes_payload = s.component().takes_payload();
        parts.queues.insert(name.clone(), handle);
        let ctx = SinkContext {
            name: name.clone(),
            host: host.clone(),
            community_id,
            queue,
            counters,
        };
        sink_threads.push(
            s.component()
                .spawn(ctx)
                .with_context(|| format!("starting sink `{name}`"))?,
        );
    }
    let mut stateful = Vec::new();
    for (name, t) in &cfg.transforms {
        let counters = metrics::register("transform", name);
        parts.counters.insert(name.clone(), counters.clone());
        if t.component().stateful() {
            let (mut handle, mut queue) =
                pipeline::sink_queue(name, counters, pipeline::QueueLimits::default());
            handle.takes_lines = t.component().takes_lines();
            queue.urgent = parts.urgent(name);
            parts.queues.insert(name.clone(), handle);
            stateful.push((name.clone(), queue));
        }
    }
    let mut transform_threads = Vec::new();
    for (name, queue) in stateful {
        let ctx = TransformContext {
            name: name.clone(),
            counters: parts.counters[&name].clone(),
        };
        let t = cfg.transforms[&name].component().build(&ctx)?;
        let out = parts.output_of(&name)?;
        transform_threads.push(run_stateful(&name, t, queue, out, ctx.counters.clone())?);
    }
    let actions = Arc::new(cfg.actions.clone());
    let mut source_threads = Vec::new();
    for (name, s) in &cfg.sources {
        let counters = metrics::register("source", name);
        let mut output = parts.output_of(name)?;
        if s.component().can_wait() {
            output = output.waiting();
        }
        let ctx = SourceContext {
            name: name.clone(),
            actions: actions.clone(),
            output,
            counters,
        };
        let h = s
            .component()
            .spawn(ctx)
            .with_context(|| format!("starting source `{name}`"))?;
        source_threads.push(h);
    }
    // The outputs hold the queues now: when their threads end, the queues close.
    drop(parts);
    tracing::info!(
        "nflogd running: {} source(s), {} sink(s)",
        source_threads.len(),
        sink_threads.len()
    );
    if let Some(a) = &cfg.metrics_address {
        metrics::serve(a).with_context(|| format!("metrics_address {a}"))?;
    }
    let interval = cfg.stats_interval.0;
    if !interval.is_zero() {
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                tracing::info!("stats: {}", metrics::summary(false));
            })?;
    }
    // Sources end on shutdown (within their receive timeout) or on their own (stdin at its
    // end); waiting for them costs no wakeups. Then the sinks drain what is queued and exit.
    for h in source_threads.into_iter().chain(transform_threads) {
        let _ = h.join();
    }
    if !crate::signals::shutdown_requested() {
        tracing::info!("all sources have ended");
        crate::signals::request_shutdown();
    }
    // Sinks finish what they hold within their own limits; one that hangs (a peer that never
    // answers) does not hold the process past the drain time: what it spooled stays spooled.
    let deadline = std::time::Instant::now() + cfg.drain_timeout.0;
    while !sink_threads.iter().all(|h| h.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stuck: Vec<String> = sink_threads
        .iter()
        .filter(|h| !h.is_finished())
        .map(|h| h.thread().name().unwrap_or("?").to_string())
        .collect();
    if !stuck.is_empty() {
        tracing::warn!(
            "sinks still busy after drain_timeout ({:?}), left behind: {}",
            cfg.drain_timeout.0,
            stuck.join(", ")
        );
    }
    tracing::info!("stopped; final stats: {}", metrics::summary(true));
    if crate::signals::failed() {
        anyhow::bail!("a thread died (see the log above); stopped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event::{Event, RawLine, Timestamp};

    /// A stateful transform: numbers the events it has seen across batches.
    #[derive(Clone, Default)]
    struct Count(u64);

    impl Transform for Count {
        fn apply(&mut self, batch: &mut Vec<Event>) {
            for e in batch.iter_mut() {
                self.0 += 1;
                if let Event::Raw(r) = e {
                    r.position = Some(self.0);
                }
            }
        }
        fn another(&self) -> Box<dyn Transform> {
            Box::new(self.clone())
        }
    }

    fn raw() -> Event {
        Event::Raw(Box::new(RawLine {
            time: Timestamp { secs: 0, micros: 0 },
            host: None,
            origin: "t".into(),
            position: None,
            line: String::new(),
            reason: String::new(),
        }))
    }

    /// Batches go through the transform's own thread, its state carried from one batch to the
    /// next, on to its consumer; the thread ends once its inputs are gone and its queue is empty.
    #[test]
    fn a_stateful_transform_runs_behind_its_queue() {
        let counters = Arc::new(ComponentCounters::default());
        let (input, queue) =
            pipeline::sink_queue("t", counters.clone(), pipeline::QueueLimits::default());
        let (sink, sink_queue) =
            pipeline::sink_queue("s", counters, pipeline::QueueLimits::default());
        let mut out = Fanout::default();
        out.sinks.push(sink);
        let thread = run_stateful(
            "t",
            Box::new(Count::default()),
            queue,
            out,
            Arc::new(ComponentCounters::default()),
        )
        .unwrap();
        let mut upstream = Fanout::default();
        upstream.sinks.push(input);
        for n in [3, 2] {
            let mut b: Vec<Event> = (0..n).map(|_| raw()).collect();
            upstream.send(&mut b);
        }
        drop(upstream);
        thread.join().unwrap();
        let positions: Vec<Option<u64>> = sink_queue
            .rx
            .try_iter()
            .flat_map(|b| {
                b.iter()
                    .map(|e| match e {
                        Event::Raw(r) => r.position,
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(positions, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
    }
}
