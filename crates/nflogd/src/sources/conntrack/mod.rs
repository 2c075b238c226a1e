//! The `conntrack` source: connection-tracking events over ctnetlink (NEW, UPDATE, DESTROY),
//! with both tuples, NAT, counters and timestamps. An overrun (ENOBUFS: the kernel dropped
//! events) is counted and followed by a dump of the kernel's table, compared with the open-flow
//! table (`table.rs`) so that flows whose events were lost are still recorded.

mod filter;
mod kept;
mod table;

use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::units::ByteSize;
use anyhow::{bail, Context, Result};
use event::{Event, FlowEvent, FlowKind, Timestamp};
use nfnetlink::ctnetlink::{self, EventKind};
use nfnetlink::socket::RecvMany;
use nfnetlink::socket::NETLINK_NETFILTER;
use nfnetlink::{Messages, NetlinkSocket};
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventName {
    New,
    Update,
    Destroy,
}

/// `[sources.NAME] type = "conntrack"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Which events to read. Default new and destroy (as ulogd2).
    #[serde(default = "default_events")]
    pub events: Vec<EventName>,
    /// Socket receive buffer. Default 32 MiB: events gather in it between drains (`GATHER_MAX`),
    /// and a table flush sends hundreds of thousands at once. Memory is used only while queued.
    #[serde(default = "default_buffer")]
    pub socket_buffer: ByteSize,
    /// On an overrun the buffer doubles, up to this. Default 128 MiB.
    #[serde(default = "default_buffer_max")]
    pub socket_buffer_max: ByteSize,
    /// Switch on per-connection packet and byte counters (net.netfilter.nf_conntrack_acct) at
    /// start. Default true.
    #[serde(default = "yes")]
    pub accounting: bool,
    /// Switch on start/stop timestamps (net.netfilter.nf_conntrack_timestamp) at start. Default true.
    #[serde(default = "yes")]
    pub timestamps: bool,
    /// Read the conntrack events of another network namespace, by path.
    pub netns: Option<String>,
    /// Open flows kept (for DESTROY start times and overrun resyncs); 0 turns the table off.
    #[serde(default = "default_table_size")]
    pub table_size: usize,
    /// Keep only flows whose original source is in one of these networks (`filter.rs`).
    #[serde(default)]
    pub accept_src: Vec<ipnet::IpNet>,
    /// … whose original destination is in one of these networks.
    #[serde(default)]
    pub accept_dst: Vec<ipnet::IpNet>,
    /// … of these protocols (names or numbers).
    #[serde(default)]
    pub accept_protocols: Vec<crate::units::Protocol>,
    /// … to these destination ports (flows of protocols without ports never match).
    #[serde(default)]
    pub accept_ports: Vec<u16>,
    /// Dump the table at this interval instead of listening to events (ulogd2's `pollinterval`):
    /// flows new since the last dump are recorded as NEW, flows gone as DESTROY.
    pub poll_interval: Option<crate::units::Duration>,
}

/// How long events gather in the socket between drains while they come steadily. ctnetlink
/// sends one event per datagram, and a thread wakeup per event costs more than the event:
/// gathering cut nflogd's CPU per event from 6.0 to about 3.5 µs at 25 000 flows/s
/// (bench/conntrack.sh). The wait is the time about `GATHER_EVENTS` take to come at the rate
/// just seen, within these bounds: 50 ms instead of 10 ms took another sixth off at 10 000
/// flows/s. A burst that starts during the wait (a table flush: some 500 000 events a second)
/// must fit in the socket buffer until the drain, hence its 32 MiB default.
const GATHER_MIN: Duration = Duration::from_millis(10);
const GATHER_MAX: Duration = Duration::from_millis(50);
const GATHER_EVENTS: u32 = 1000;

/// Events read per system call (recvmmsg), each into a slot of the receive buffer: an event
/// message is well under 1 KiB.
const EVENT_SLOT: usize = 8192;
const EVENT_SLOTS: usize = 32;

fn default_table_size() -> usize {
    262_144
}

fn default_events() -> Vec<EventName> {
    vec![EventName::New, EventName::Destroy]
}
fn default_buffer() -> ByteSize {
    ByteSize(32 << 20)
}
fn default_buffer_max() -> ByteSize {
    ByteSize(128 << 20)
}
fn yes() -> bool {
    true
}

impl ConntrackConfig {
    fn filter(&self) -> Result<filter::FlowFilter> {
        filter::FlowFilter::new(
            &self.accept_src,
            &self.accept_dst,
            &self.accept_protocols,
            &self.accept_ports,
        )
    }

    pub fn validate(&self) -> Result<()> {
        if self.events.is_empty() {
            bail!("events: empty; list some of new, update, destroy");
        }
        if self.socket_buffer_max.0 < self.socket_buffer.0 {
            bail!("socket_buffer_max: smaller than socket_buffer");
        }
        self.filter().context("accept_protocols")?;
        if let Some(i) = self.poll_interval {
            if i.0 < Duration::from_millis(100) {
                bail!("poll_interval: {:?} is too short; use 100ms or more", i.0);
            }
            if self.table_size == 0 {
                bail!("poll_interval needs the flow table: table_size must not be 0");
            }
        }
        if let Some(p) = &self.netns {
            if !std::path::Path::new(p).exists() {
                bail!("netns: {p} does not exist");
            }
        }
        Ok(())
    }
}

fn sysctl_on(name: &str) -> Result<()> {
    let path = format!("/proc/sys/net/netfilter/{name}");
    std::fs::write(&path, "1").with_context(|| format!("setting {path}"))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Everything one source thread owns.
struct Reader {
    name: String,
    events: Vec<EventName>,
    counters: Arc<ComponentCounters>,
    sock: NetlinkSocket,
    /// The receive buffer as the kernel reports it (twice what was asked), and its ceiling.
    rcvbuf: usize,
    rcvbuf_max: usize,
    /// With the table: a socket of its own for table dumps (their replies are unicast).
    dump_sock: Option<NetlinkSocket>,
    table: Option<table::FlowTable>,
    filter: filter::FlowFilter,
    buf: Vec<u8>,
    batch: Vec<Event>,
    /// When the events being handled were received (ns since the epoch): read once per
    /// receive call, not once per event (the clock was a twentieth of the CPU per event).
    now: u64,
}

impl Reader {
    fn open(name: &str, cfg: &ConntrackConfig, counters: Arc<ComponentCounters>) -> Result<Reader> {
        if let Some(ns) = &cfg.netns {
            crate::sources::thread::enter_netns(ns)?;
        }
        if cfg.accounting {
            sysctl_on("nf_conntrack_acct")?;
        }
        if cfg.timestamps {
            sysctl_on("nf_conntrack_timestamp")?;
        }
        let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
        let rcvbuf = sock.set_recv_buffer(cfg.socket_buffer.0 as usize)?;
        sock.set_recv_timeout(Duration::from_millis(250))?;
        // The table needs NEW and DESTROY whatever the records asked for.
        let mut groups = cfg.events.clone();
        if cfg.table_size > 0 {
            groups.extend([EventName::New, EventName::Destroy]);
        }
        groups.sort_by_key(|e| *e as u8);
        groups.dedup();
        // Polling listens to nothing: the dumps say what changed.
        if cfg.poll_interval.is_some() {
            groups.clear();
        }
        for e in &groups {
            sock.add_membership(match e {
                EventName::New => ctnetlink::GROUP_NEW,
                EventName::Update => ctnetlink::GROUP_UPDATE,
                EventName::Destroy => ctnetlink::GROUP_DESTROY,
            })
            .context("joining the conntrack event groups (is nf_conntrack_netlink available?)")?;
        }
        let filter = cfg.filter()?;
        // Events of flows the filters reject are dropped in the kernel when the filters fit a
        // socket filter; the userspace check stays (for dumps, and as the reference).
        if !groups.is_empty() {
            if let Some(prog) = nfnetlink::ctfilter::program(&filter.for_kernel()) {
                match sock.attach_filter(&prog) {
                    Ok(()) => tracing::info!(
                        "source `{name}`: filters applied in the kernel ({} BPF instructions)",
                        prog.len()
                    ),
                    Err(e) => tracing::warn!(
                        "source `{name}`: the kernel refused the event filter ({e}); filtering in nflogd"
                    ),
                }
            }
        }
        let mut reader = Reader {
            name: name.to_string(),
            events: cfg.events.clone(),
            counters,
            sock,
            rcvbuf,
            rcvbuf_max: cfg.socket_buffer_max.0 as usize,
            dump_sock: None,
            table: None,
            filter,
            now: now_ns(),
            buf: vec![0u8; 256 * 1024],
            batch: Vec::with_capacity(256),
        };
        if cfg.table_size > 0 {
            let mut dump_sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
            dump_sock.set_recv_timeout(Duration::from_secs(5))?;
            // Joined after the event groups, so no flow falls between the dump and the events.
            let (entries, malformed) = ctnetlink::dump(&mut dump_sock, &mut reader.buf)
                .context("dumping the conntrack table")?;
            ComponentCounters::add(&reader.counters.malformed, malformed);
            let grace = if cfg.poll_interval.is_some() {
                Duration::ZERO
            } else {
                table::GONE_GRACE
            };
            let mut t = table::FlowTable::new(cfg.table_size, grace);
            let entries = entries
                .into_iter()
                .filter(|(_, ct)| reader.filter.accepts(ct))
                .collect();
            let untracked = t.seed(entries, now_ns());
            ComponentCounters::add(&reader.counters.untracked, untracked);
            reader.counters.open_flows.store(t.len() as u64, Relaxed);
            reader.table = Some(t);
            reader.dump_sock = Some(dump_sock);
        }
        Ok(reader)
    }

    fn wanted(&self, kind: FlowKind) -> bool {
        self.events.iter().any(|e| match e {
            EventName::New => kind == FlowKind::New,
            EventName::Update => kind == FlowKind::Update,
            EventName::Destroy => kind == FlowKind::Destroy,
        })
    }

    /// When the events being handled were received.
    fn time(&self) -> Timestamp {
        Timestamp {
            secs: (self.now / 1_000_000_000) as i64,
            micros: (self.now % 1_000_000_000 / 1000) as u32,
        }
    }

    /// Records a flow the dumps found (its event was lost).
    fn push(&mut self, kind: FlowKind, family: u8, ct: event::Conntrack, recovered: bool) {
        if self.wanted(kind) {
            self.batch.push(Event::Flow(FlowEvent {
                time: self.time(),
                kind,
                family,
                ct,
                recovered,
                enrich: None,
            }));
        }
    }

    /// Parses an event message straight into its place at the end of `batch`, and takes it out
    /// again unless it is to be recorded. Built aside and moved there, an event was copied four
    /// times on its way, a tenth of the instructions spent on it.
    fn on_message(&mut self, m: &nfnetlink::Message, batch: &mut Vec<Event>) -> anyhow::Result<()> {
        let Some((kind, family, attrs)) = ctnetlink::event_parts(m)? else {
            return Ok(());
        };
        batch.push(Event::Flow(FlowEvent {
            time: self.time(),
            kind: match kind {
                EventKind::New => FlowKind::New,
                EventKind::Update => FlowKind::Update,
                EventKind::Destroy => FlowKind::Destroy,
            },
            family,
            ct: event::Conntrack::default(),
            recovered: false,
            enrich: None,
        }));
        let Some(Event::Flow(flow)) = batch.last_mut() else {
            return Ok(());
        };
        let parsed = ctnetlink::parse_into(attrs, &mut flow.ct);
        if parsed.is_err() || !self.keep(flow.kind, family, &mut flow.ct) {
            batch.pop();
        }
        Ok(parsed?)
    }

    /// Whether an event is to be recorded: the filters, the table (which also completes a
    /// DESTROY's times) and the events asked for.
    fn keep(&mut self, kind: FlowKind, family: u8, ct: &mut event::Conntrack) -> bool {
        if !self.filter.accepts(ct) {
            ComponentCounters::add(&self.counters.ignored, 1);
            return false;
        }
        let now = self.now;
        match kind {
            FlowKind::New => {
                // The kernel stamps a flow's start only in its DESTROY; a NEW starts now (as in
                // ulogd2), and the table keeps that time for the DESTROY when it has no stamp.
                ct.start_ns = ct.start_ns.or(Some(now));
                if let Some(t) = &mut self.table {
                    match t.on_new(family, ct, now) {
                        table::NewFlow::Tracked => {}
                        table::NewFlow::AlreadyRecorded => return false,
                        table::NewFlow::Untracked => {
                            ComponentCounters::add(&self.counters.untracked, 1)
                        }
                    }
                }
            }
            FlowKind::Update => {
                if let Some(t) = &mut self.table {
                    t.on_update(ct);
                }
            }
            FlowKind::Destroy => {
                if let Some(t) = &mut self.table {
                    t.on_destroy(ct, now);
                }
            }
        }
        self.wanted(kind)
    }

    /// After an overrun: dump the kernel's table and record the flows whose NEW was lost.
    fn resync(&mut self) {
        self.now = now_ns();
        let (Some(t), Some(dump_sock)) = (&mut self.table, &mut self.dump_sock) else {
            return;
        };
        ComponentCounters::add(&self.counters.resyncs, 1);
        match ctnetlink::dump(dump_sock, &mut self.buf) {
            Ok((entries, malformed)) => {
                ComponentCounters::add(&self.counters.malformed, malformed);
                let entries = entries
                    .into_iter()
                    .filter(|(_, ct)| self.filter.accepts(ct))
                    .collect();
                let (missed, untracked) = t.resync(entries, std::time::Instant::now(), now_ns());
                ComponentCounters::add(&self.counters.untracked, untracked);
                ComponentCounters::add(&self.counters.resynced, missed.len() as u64);
                tracing::info!(
                    "source `{}`: resync after lost events: {} open flows were unknown",
                    self.name,
                    missed.len()
                );
                for (family, ct) in missed {
                    self.push(FlowKind::New, family, ct, true);
                }
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                crate::rate_limited_warn!("source `{}`: resync dump failed: {e}", self.name);
            }
        }
    }

    /// Records the flows a resync found gone whose DESTROY never came.
    fn expire(&mut self) {
        let Some(t) = &mut self.table else { return };
        t.shrink();
        let ended = t.expire_gone(std::time::Instant::now(), now_ns());
        if !ended.is_empty() {
            self.now = now_ns();
        }
        ComponentCounters::add(&self.counters.resynced, ended.len() as u64);
        for (family, ct) in ended {
            self.push(FlowKind::Destroy, family, ct, true);
        }
        self.counters
            .open_flows
            .store(self.table.as_ref().map_or(0, |t| t.len()) as u64, Relaxed);
    }

    /// Poll mode: a dump every `interval`; what appeared is NEW, what vanished is DESTROY (with
    /// the counters of the last dump that saw it, and the time it was found gone).
    fn run_polling(mut self, mut fanout: Fanout, interval: Duration) {
        let mut next = std::time::Instant::now() + interval;
        loop {
            let stopping = crate::signals::shutdown_requested();
            let now = std::time::Instant::now();
            if !stopping && now < next {
                std::thread::sleep(Duration::from_millis(50).min(next - now));
                continue;
            }
            next += interval;
            let (Some(t), Some(dump_sock)) = (&mut self.table, &mut self.dump_sock) else {
                return;
            };
            match ctnetlink::dump(dump_sock, &mut self.buf) {
                Ok((entries, malformed)) => {
                    ComponentCounters::add(&self.counters.malformed, malformed);
                    let entries: Vec<_> = entries
                        .into_iter()
                        .filter(|(_, ct)| self.filter.accepts(ct))
                        .collect();
                    let (appeared, untracked) =
                        t.resync(entries, std::time::Instant::now(), now_ns());
                    ComponentCounters::add(&self.counters.untracked, untracked);
                    let vanished = t.expire_gone(std::time::Instant::now(), now_ns());
                    self.now = now_ns();
                    for (family, ct) in appeared {
                        self.push(FlowKind::New, family, ct, false);
                    }
                    for (family, ct) in vanished {
                        self.push(FlowKind::Destroy, family, ct, false);
                    }
                }
                Err(e) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    crate::rate_limited_warn!("source `{}`: conntrack dump failed: {e}", self.name);
                }
            }
            self.counters
                .open_flows
                .store(self.table.as_ref().map_or(0, |t| t.len()) as u64, Relaxed);
            if !self.batch.is_empty() {
                ComponentCounters::add(&self.counters.received, self.batch.len() as u64);
                fanout.send(&mut self.batch);
            }
            if stopping {
                return;
            }
        }
    }

    fn run(mut self, mut fanout: Fanout) {
        let mut overrun = false;
        let mut gather = None;
        let mut last_drain = std::time::Instant::now();
        while !crate::signals::shutdown_requested() {
            if let Some(wait) = gather {
                std::thread::sleep(wait);
            }
            let (mut got, mut emptied) = (0, false);
            let mut nonblocking = false;
            loop {
                let mut lens = [0usize; EVENT_SLOTS];
                match self
                    .sock
                    .recv_many(&mut self.buf, EVENT_SLOT, &mut lens, nonblocking)
                {
                    Ok(RecvMany::Data(n)) => {
                        got += n;
                        self.now = now_ns();
                        let buf = std::mem::take(&mut self.buf);
                        let mut batch = std::mem::take(&mut self.batch);
                        for (i, len) in lens.iter().enumerate().take(n) {
                            let datagram = &buf[i * EVENT_SLOT..i * EVENT_SLOT + len];
                            for m in Messages::new(datagram) {
                                let handled = m
                                    .map_err(anyhow::Error::from)
                                    .and_then(|m| self.on_message(&m, &mut batch));
                                if let Err(e) = handled {
                                    ComponentCounters::add(&self.counters.malformed, 1);
                                    crate::rate_limited_warn!(
                                        "source `{}`: skipped a malformed conntrack message: {e}",
                                        self.name
                                    );
                                }
                            }
                        }
                        self.buf = buf;
                        self.batch = batch;
                    }
                    Ok(RecvMany::Overrun) => {
                        ComponentCounters::add(&self.counters.overruns, 1);
                        // Double the buffer (getsockopt reports twice the size asked for).
                        if self.rcvbuf / 2 < self.rcvbuf_max {
                            if let Ok(got) =
                                self.sock.set_recv_buffer(self.rcvbuf.min(self.rcvbuf_max))
                            {
                                self.rcvbuf = got;
                            }
                        }
                        crate::rate_limited_warn!(
                            "source `{}`: conntrack events lost (ENOBUFS); receive buffer now {} bytes",
                            self.name,
                            self.rcvbuf / 2
                        );
                        overrun = true;
                    }
                    Ok(RecvMany::Timeout) => {
                        emptied = true;
                        break;
                    }
                    Err(e) => {
                        ComponentCounters::add(&self.counters.errors, 1);
                        crate::rate_limited_warn!("source `{}`: receive failed: {e}", self.name);
                        break;
                    }
                }
                if self.batch.len() >= 1024 {
                    break;
                }
                nonblocking = true;
            }
            // Events coming steadily: let the next ones gather, for about GATHER_EVENTS of them
            // at the rate since the last drain. A burst (the drain stopped at a full batch) is
            // drained at once.
            let since = last_drain.elapsed();
            last_drain = std::time::Instant::now();
            gather = (got > 0 && emptied)
                .then(|| (since * GATHER_EVENTS / got as u32).clamp(GATHER_MIN, GATHER_MAX));
            // Resync once the queue is drained, so the dump is compared with everything before it.
            if overrun && self.batch.len() < 1024 {
                overrun = false;
                self.resync();
            }
            self.expire();
            if !self.batch.is_empty() {
                ComponentCounters::add(&self.counters.received, self.batch.len() as u64);
                fanout.send(&mut self.batch);
            }
        }
    }
}

pub fn spawn(
    name: &str,
    cfg: &ConntrackConfig,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let name = name.to_string();
    let cfg = cfg.clone();
    crate::sources::thread::spawn(
        format!("conntrack:{name}"),
        {
            let cfg = cfg.clone();
            move || {
                let reader = Reader::open(&name, &cfg, counters)?;
                tracing::info!("source `{name}`: reading conntrack events {:?}", cfg.events);
                Ok(reader)
            }
        },
        move |reader| match cfg.poll_interval {
            Some(i) => reader.run_polling(fanout, i.0),
            None => reader.run(fanout),
        },
    )
}

impl super::Source for ConntrackConfig {
    fn validate(&self) -> anyhow::Result<()> {
        ConntrackConfig::validate(self)
    }

    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        super::kernel_socket_capabilities(self.netns.as_deref())
    }

    fn can_wait(&self) -> bool {
        false
    }

    fn spawn(&self, ctx: super::SourceContext) -> anyhow::Result<std::thread::JoinHandle<()>> {
        spawn(&ctx.name, self, ctx.output, ctx.counters)
    }
}
