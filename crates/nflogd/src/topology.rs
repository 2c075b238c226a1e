//! Builds the running topology from a validated config: sink queues and threads first (so no
//! event has nowhere to go), then stateful transforms' threads, then sources, each with its
//! output: the stateless transforms that run in its thread and the queues downstream. Then it
//! waits for shutdown and drains.
//!
//! SIGHUP reads the configuration again (`reload`): components whose table changed restart,
//! new ones start, removed ones stop, the others keep running. Producers (sources, stateful
//! transforms) take up their new outputs at their next batch (`pipeline::Rewire`); a queue
//! nothing feeds any more is retired once no send can still reach it, its consumer takes what
//! is queued and ends, and only then does its replacement start (a sink's spool or a guard's
//! table is never shared by two instances). Nothing queued is lost.

use crate::config::Config;
use crate::metrics::{self, ComponentCounters};
use crate::pipeline::{self, Batch, Fanout, Rewire, SinkHandle, SinkQueue};
use crate::sinks::SinkContext;
use crate::sources::SourceContext;
use crate::transforms::action::ActionConfig;
use crate::transforms::{Transform, TransformContext};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        return String::from_utf8_lossy(&buf[..end]).into_owned();
    }
    "localhost".into()
}

/// A running sink or stateful transform: the producers' end of its queue and its thread.
struct Consumer {
    handle: SinkHandle,
    /// None until it starts (its queue exists first, so that producers can be wired to it).
    thread: Option<JoinHandle<()>>,
    /// A stateful transform's own output.
    rewire: Option<Arc<Rewire>>,
}

struct RunningSource {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    rewire: Arc<Rewire>,
    /// Whether its consumers read programs' lines and packets' bytes: a source decides at its
    /// start whether to keep them, so a change restarts it.
    wants: (bool, bool),
}

/// A consumer a reload replaced or removed: its queue is retired once its producers have
/// settled, its thread then drains and ends, and its replacement (if any) starts.
struct Retiring {
    name: String,
    old: Consumer,
    retired: bool,
    /// A stateful transform (retired before sinks, which it may still feed).
    transform: bool,
    /// The replacement's queue, to start on once the old thread has ended.
    replacement: Option<SinkQueue>,
}

pub struct Topology {
    cfg: Config,
    host: String,
    community_id: Option<u16>,
    actions: Arc<ActionConfig>,
    consumers: HashMap<String, Consumer>,
    sources: HashMap<String, RunningSource>,
    counters: HashMap<(&'static str, String), Arc<ComponentCounters>>,
    retiring: Vec<Retiring>,
    /// Producers whose new wiring must be in use before anything is retired.
    unsettled: Vec<Arc<Rewire>>,
}

impl Topology {
    /// A component's counters: the same across its restarts (one entry in /metrics).
    fn counters(&mut self, kind: &'static str, name: &str) -> Arc<ComponentCounters> {
        self.counters
            .entry((kind, name.to_string()))
            .or_insert_with(|| metrics::register(kind, name))
            .clone()
    }

    /// Where the events of `node` (a source or transform) go, as the configuration now says.
    fn output_of(&self, node: &str) -> Result<Fanout> {
        let graph = self.cfg.graph();
        let mut out = Fanout::default();
        for consumer in graph.consumers(node) {
            if let Some(q) = self.consumers.get(consumer) {
                out.sinks.push(q.handle.clone());
                continue;
            }
            let t = &self.cfg.transforms[consumer];
            let ctx = TransformContext {
                name: consumer.to_string(),
                counters: self.counters[&("transform", consumer.to_string())].clone(),
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
        self.cfg
            .graph()
            .feeding_sources(node)
            .iter()
            .any(|s| !self.cfg.sources[*s].component().can_wait())
    }

    /// A queue for sink or stateful transform `name`, as the configuration says.
    fn queue(&mut self, name: &str) -> (SinkHandle, SinkQueue) {
        if self.cfg.sinks.contains_key(name) {
            let counters = self.counters("sink", name);
            let s = &self.cfg.sinks[name];
            let (mut handle, mut queue) =
                pipeline::sink_queue(name, counters, s.component().queue_limits());
            queue.urgent = self.urgent(name);
            handle.takes_payload = s.component().takes_payload();
            (handle, queue)
        } else {
            let t = &self.cfg.transforms[name];
            let takes_lines = t.component().takes_lines();
            let counters = self.counters("transform", name);
            let (mut handle, mut queue) =
                pipeline::sink_queue(name, counters, pipeline::QueueLimits::default());
            handle.takes_lines = takes_lines;
            queue.urgent = self.urgent(name);
            (handle, queue)
        }
    }

    /// A queue for consumer `name` that producers can be wired to before its thread starts.
    fn reserve(&mut self, name: &str) -> SinkQueue {
        let (handle, queue) = self.queue(name);
        self.consumers.insert(
            name.to_string(),
            Consumer {
                handle,
                thread: None,
                rewire: None,
            },
        );
        queue
    }

    /// Starts the consumer of `queue`, reserved for `name` (`reserve`).
    fn start_consumer(&mut self, name: &str, queue: SinkQueue) -> Result<()> {
        let (thread, rewire) = self.spawn_consumer(name, queue)?;
        if let Some(c) = self.consumers.get_mut(name) {
            c.thread = Some(thread);
            c.rewire = rewire;
        }
        Ok(())
    }

    /// Starts the consumer of `queue`: sink or stateful transform `name`.
    fn spawn_consumer(
        &mut self,
        name: &str,
        queue: SinkQueue,
    ) -> Result<(JoinHandle<()>, Option<Arc<Rewire>>)> {
        if let Some(s) = self.cfg.sinks.get(name) {
            let ctx = SinkContext {
                name: name.to_string(),
                host: self.host.clone(),
                community_id: self.community_id,
                queue,
                counters: self.counters[&("sink", name.to_string())].clone(),
            };
            let h = s
                .component()
                .spawn(ctx)
                .with_context(|| format!("starting sink `{name}`"))?;
            return Ok((h, None));
        }
        let counters = self.counters("transform", name);
        let ctx = TransformContext {
            name: name.to_string(),
            counters: counters.clone(),
        };
        let t = self.cfg.transforms[name].component().build(&ctx)?;
        let rewire = Arc::new(Rewire::default());
        let out = self.output_of(name)?.rewired_by(rewire.clone());
        Ok((run_stateful(name, t, queue, out, counters)?, Some(rewire)))
    }

    /// Starts source `name` with its stop flag and its rewirable output.
    fn spawn_source(&mut self, name: &str) -> Result<RunningSource> {
        let counters = self.counters("source", name);
        let s = &self.cfg.sources[name];
        let rewire = Arc::new(Rewire::default());
        let mut output = self.output_of(name)?;
        if s.component().can_wait() {
            output = output.waiting();
        }
        let wants = (output.wants_lines(), output.wants_payload());
        let ctx = SourceContext {
            name: name.to_string(),
            actions: self.actions.clone(),
            output: output.rewired_by(rewire.clone()),
            counters,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = crate::signals::with_stop_flag(stop.clone(), || s.component().spawn(ctx))
            .with_context(|| format!("starting source `{name}`"))?;
        Ok(RunningSource {
            stop,
            thread,
            rewire,
            wants,
        })
    }

    /// Sinks, then stateful transforms, then sources.
    pub fn start(cfg: Config) -> Result<Topology> {
        let host = cfg.hostname.clone().unwrap_or_else(hostname);
        let mut t = Topology {
            host,
            community_id: cfg.community_id.then_some(cfg.community_id_seed),
            actions: Arc::new(cfg.actions.clone()),
            cfg,
            consumers: HashMap::new(),
            sources: HashMap::new(),
            counters: HashMap::new(),
            retiring: Vec::new(),
            unsettled: Vec::new(),
        };
        let sinks: Vec<String> = t.cfg.sinks.keys().cloned().collect();
        for name in &sinks {
            let queue = t.reserve(name);
            t.start_consumer(name, queue)?;
        }
        let transforms: Vec<String> = t.cfg.transforms.keys().cloned().collect();
        for name in &transforms {
            t.counters("transform", name);
        }
        let stateful: Vec<String> = transforms
            .into_iter()
            .filter(|n| t.cfg.transforms[n].component().stateful())
            .collect();
        // Every stateful transform's queue first: one may feed another.
        let queues: Vec<(String, SinkQueue)> =
            stateful.iter().map(|n| (n.clone(), t.reserve(n))).collect();
        for (name, queue) in queues {
            t.start_consumer(&name, queue)?;
        }
        let sources: Vec<String> = t.cfg.sources.keys().cloned().collect();
        for name in sources {
            let s = t.spawn_source(&name)?;
            t.sources.insert(name, s);
        }
        Ok(t)
    }

    /// Reads `new` in: what changed restarts, what is new starts, what is gone stops.
    pub fn reload(&mut self, new: Config) -> Result<()> {
        // One hand-over at a time: the previous reload's replacements must have started.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while !self.retiring.is_empty() && std::time::Instant::now() < end {
            self.advance();
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(r) = self.retiring.first() {
            anyhow::bail!(
                "the previous reload is still handing `{}` over; send SIGHUP again later",
                r.name
            );
        }
        let old = std::mem::replace(&mut self.cfg, new);
        if old.globals() != self.cfg.globals() {
            tracing::warn!("reload: settings outside [sources], [transforms] and [sinks] changed; they take effect at the next start (systemctl restart nflogd)");
        }
        let new_raw = self.cfg.raw.clone();
        let changed = |kind: &str, name: &str| {
            old.section(kind, name) != new_raw.get(kind).and_then(|t| t.get(name))
        };
        let mut summary = Vec::new();

        // Consumers: sinks and stateful transforms.
        let stateful_now = |c: &Config, n: &str| {
            c.sinks.contains_key(n)
                || c.transforms
                    .get(n)
                    .is_some_and(|t| t.component().stateful())
        };
        let running: Vec<String> = self.consumers.keys().cloned().collect();
        for name in running {
            let kind = if old.sinks.contains_key(&name) {
                "sinks"
            } else {
                "transforms"
            };
            let still = stateful_now(&self.cfg, &name);
            if still && !changed(kind, &name) {
                continue;
            }
            let old_consumer = self.consumers.remove(&name).expect("running");
            let replacement = if still {
                // Its queue takes events now; its thread starts once the old one has ended.
                let queue = self.reserve(&name);
                summary.push(format!("{} `{name}` restarts", &kind[..kind.len() - 1]));
                Some(queue)
            } else {
                summary.push(format!("{} `{name}` stops", &kind[..kind.len() - 1]));
                None
            };
            self.retiring.push(Retiring {
                name,
                transform: kind == "transforms",
                old: old_consumer,
                retired: false,
                replacement,
            });
        }
        let mut new_consumers: Vec<(String, SinkQueue)> = Vec::new();
        let wanted: Vec<String> = self
            .cfg
            .sinks
            .keys()
            .chain(self.cfg.transforms.keys())
            .filter(|n| stateful_now(&self.cfg, n) && !self.consumers.contains_key(*n))
            .cloned()
            .collect();
        for name in wanted {
            if !self.cfg.sinks.contains_key(&name) {
                self.counters("transform", &name);
            }
            let queue = self.reserve(&name);
            let kind = if self.cfg.sinks.contains_key(&name) {
                "sink"
            } else {
                "transform"
            };
            summary.push(format!("{kind} `{name}` starts"));
            new_consumers.push((name, queue));
        }
        let transforms: Vec<String> = self.cfg.transforms.keys().cloned().collect();
        for name in &transforms {
            self.counters("transform", name);
        }
        for (name, queue) in new_consumers {
            self.start_consumer(&name, queue)?;
        }

        // Sources.
        let running: Vec<String> = self.sources.keys().cloned().collect();
        for name in running {
            let gone = !self.cfg.sources.contains_key(&name);
            let wants = || {
                self.output_of(&name)
                    .map(|o| (o.wants_lines(), o.wants_payload()))
                    .ok()
            };
            if !gone && !changed("sources", &name) && wants() == Some(self.sources[&name].wants) {
                continue;
            }
            let s = self.sources.remove(&name).expect("running");
            s.stop.store(true, Ordering::Relaxed);
            let _ = s.thread.join();
            if gone {
                summary.push(format!("source `{name}` stops"));
            } else {
                summary.push(format!("source `{name}` restarts"));
            }
        }
        let wanted: Vec<String> = self
            .cfg
            .sources
            .keys()
            .filter(|n| !self.sources.contains_key(*n))
            .cloned()
            .collect();
        // Kept producers take up their new outputs.
        self.unsettled.clear();
        let kept: Vec<String> = self.sources.keys().cloned().collect();
        for name in kept {
            let mut out = self.output_of(&name)?;
            if self.cfg.sources[&name].component().can_wait() {
                out = out.waiting();
            }
            let r = self.sources[&name].rewire.clone();
            r.publish(out);
            self.unsettled.push(r);
        }
        let kept: Vec<(String, Arc<Rewire>)> = self
            .consumers
            .iter()
            .filter_map(|(n, c)| c.rewire.clone().map(|r| (n.clone(), r)))
            .collect();
        for (name, r) in kept {
            r.publish(self.output_of(&name)?);
            self.unsettled.push(r);
        }
        for name in wanted {
            let s = self.spawn_source(&name)?;
            if !summary.iter().any(|x| x.contains(&format!("`{name}`"))) {
                summary.push(format!("source `{name}` starts"));
            }
            self.sources.insert(name, s);
        }
        tracing::info!(
            "reload: {}",
            if summary.is_empty() {
                "nothing changed".to_string()
            } else {
                summary.join(", ")
            }
        );
        self.advance();
        Ok(())
    }

    /// Moves replaced consumers on: retires their queues once every producer has settled,
    /// starts each replacement once its old thread has ended. Stateful transforms go first:
    /// one may still feed a sink that is going.
    fn advance(&mut self) {
        if self.retiring.is_empty() {
            return;
        }
        if !self.unsettled.is_empty() {
            let settled = self
                .unsettled
                .iter()
                .all(|r| r.settled(Duration::from_millis(20)));
            if !settled {
                return;
            }
            self.unsettled.clear();
        }
        let transforms_left = self.retiring.iter().any(|r| r.transform);
        for r in &mut self.retiring {
            if !r.retired && (r.transform || !transforms_left) {
                r.old.handle.retire();
                r.retired = true;
            }
        }
        let mut still = Vec::new();
        for mut r in std::mem::take(&mut self.retiring) {
            if r.old.thread.as_ref().is_some_and(|t| !t.is_finished()) {
                still.push(r);
                continue;
            }
            if let Some(t) = r.old.thread.take() {
                let _ = t.join();
            }
            if let Some(queue) = r.replacement {
                if let Err(e) = self.start_consumer(&r.name, queue) {
                    tracing::error!("reload: {e:#}");
                }
            }
        }
        self.retiring = still;
    }

    fn sources_ended(&self) -> bool {
        self.sources.values().all(|s| s.thread.is_finished())
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
            // Ends when every input is gone (its sources ended) or its queue was retired, and
            // the queue is empty.
            let tick = std::time::Duration::from_millis(100);
            let mut last_tick = std::time::Instant::now();
            loop {
                match queue.recv_timeout(tick) {
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

/// Runs the configuration until a shutdown (or until every source has ended); SIGHUP reads
/// `path` again and applies what changed.
pub fn run(cfg: Config, path: Option<&Path>) -> Result<()> {
    crate::files::set_umask(&cfg.umask)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let interval = cfg.stats_interval.0;
    let drain_timeout = cfg.drain_timeout.0;
    let mut topology = Topology::start(cfg)?;
    // Once the stores are open (a schema upgrade done): the API reads them.
    crate::http::start(&topology.cfg, &topology.host)?;
    tracing::info!(
        "nflogd running: {} source(s), {} sink(s)",
        topology.sources.len(),
        topology.cfg.sinks.len()
    );
    if !interval.is_zero() {
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                tracing::info!("stats: {}", metrics::summary(false));
            })?;
    }
    let path: Option<PathBuf> = path.map(Path::to_path_buf);
    let mut generation = crate::signals::reopen_generation();
    // Sources end on shutdown (within their receive timeout) or on their own (stdin at its
    // end). A SIGHUP between reads the configuration again.
    while !crate::signals::shutdown_requested() && !topology.sources_ended() {
        std::thread::sleep(Duration::from_millis(50));
        topology.advance();
        let g = crate::signals::reopen_generation();
        if g == generation {
            continue;
        }
        generation = g;
        match &path {
            None => tracing::info!(
                "reload: running the embedded default, there is no file to read again"
            ),
            Some(p) => match Config::load(p).and_then(|c| topology.reload(c)) {
                Ok(()) => {}
                Err(e) => tracing::error!("reload: {e:#}; the running configuration stays"),
            },
        }
    }
    if !crate::signals::shutdown_requested() {
        tracing::info!("all sources have ended");
        crate::signals::request_shutdown();
    }
    let Topology {
        sources,
        consumers,
        retiring,
        ..
    } = topology;
    for (_, s) in sources {
        let _ = s.thread.join();
    }
    // With the sources gone and these ends dropped, each queue closes once the producers
    // upstream of it have ended: stateful transforms drain into sinks, sinks drain.
    let mut transform_threads = Vec::new();
    let mut sink_threads = Vec::new();
    for (_, c) in consumers {
        drop(c.handle);
        match (c.thread, c.rewire.is_some()) {
            (Some(t), true) => transform_threads.push(t),
            (Some(t), false) => sink_threads.push(t),
            (None, _) => {}
        }
    }
    for r in retiring {
        drop(r.old.handle);
        sink_threads.extend(r.old.thread);
    }
    for t in transform_threads {
        let _ = t.join();
    }
    // Sinks finish what they hold within their own limits; one that hangs (a peer that never
    // answers) does not hold the process past the drain time: what it spooled stays spooled.
    let deadline = std::time::Instant::now() + drain_timeout;
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
            drain_timeout,
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
