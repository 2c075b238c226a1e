//! The reader thread: binds the groups, receives batches, decodes them and fans them out.

use super::config::{CopyMode, NflogConfig};
use super::decode::Decoder;
use super::ifnames::IfNames;
use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::transforms::action::{ActionConfig, ActionResolver};
use anyhow::{anyhow, Context, Result};
use event::{Event, Timestamp};
use nfnetlink::nflog::{self, GroupConfig};
use nfnetlink::socket::NETLINK_NETFILTER;
use nfnetlink::{NetlinkSocket, Recv};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest datagram the kernel sends (a 128 KiB batch, or one 64 KiB packet with headers).
const RECV_BUFFER: usize = 256 * 1024;
/// Events gathered from consecutive datagrams before a batch goes out.
const MAX_BATCH_EVENTS: usize = 1024;
/// Longest a partial batch waits for more datagrams. Handing batches over less often spares a
/// thread switch per kernel batch under load; it adds at most this much latency.
const BATCH_LINGER: Duration = Duration::from_millis(5);

struct Reader {
    name: String,
    cfg: NflogConfig,
    sock: NetlinkSocket,
    counters: Arc<ComponentCounters>,
    rcvbuf: usize,
    /// Next expected sequence number per group.
    next_seq: HashMap<u16, u32>,
}

impl Reader {
    fn open(name: &str, cfg: &NflogConfig, counters: Arc<ComponentCounters>) -> Result<Reader> {
        if let Some(ns) = &cfg.netns {
            crate::sources::thread::enter_netns(ns)?;
        }
        let mut sock =
            NetlinkSocket::open(NETLINK_NETFILTER).context("opening the nfnetlink socket")?;
        let rcvbuf = sock
            .set_recv_buffer(cfg.socket_buffer.0 as usize)
            .context("setting the socket buffer")?;
        sock.set_recv_timeout(Duration::from_millis(250))?;
        let mut flags = 0;
        if cfg.sequence {
            flags |= nflog::FLAG_SEQ;
        }
        if cfg.conntrack {
            flags |= nflog::FLAG_CONNTRACK;
        }
        for &group in &cfg.groups {
            let seq = sock.next_seq();
            sock.request_ack(&nflog::bind_request(group, seq), seq).map_err(|e| match e {
                nfnetlink::Error::Kernel { errno } if errno == libc::EBUSY || errno == libc::EPERM => anyhow!(
                    "NFLOG group {group} is already bound by another process (ulogd, another nflogd?): {e}"
                ),
                e => anyhow!("binding NFLOG group {group}: {e}"),
            })?;
            let gc = GroupConfig {
                group,
                copy_mode: match cfg.copy {
                    CopyMode::Packet => nflog::COPY_PACKET,
                    CopyMode::Meta => nflog::COPY_META,
                },
                copy_range: cfg.snaplen,
                qthreshold: Some(cfg.qthreshold),
                timeout_cs: Some(cfg.timeout_cs()),
                nlbufsiz: Some(cfg.batch_size.0 as u32),
                flags,
            };
            let seq = sock.next_seq();
            sock.request_ack(&nflog::settings_request(&gc, seq), seq).map_err(|e| match e {
                nfnetlink::Error::Kernel { errno } if cfg.conntrack && (errno == libc::EOPNOTSUPP || errno == libc::EAGAIN) => {
                    anyhow!("NFLOG group {group}: the kernel cannot attach conntrack entries (load nf_conntrack_netlink): {e}")
                }
                e => anyhow!("configuring NFLOG group {group}: {e}"),
            })?;
        }
        Ok(Reader {
            name: name.to_string(),
            cfg: cfg.clone(),
            sock,
            counters,
            rcvbuf,
            next_seq: HashMap::new(),
        })
    }

    /// Counts packets the kernel numbered but never delivered.
    fn check_seq(&mut self, group: u16, seq: u32) {
        if let Some(expected) = self.next_seq.insert(group, seq.wrapping_add(1)) {
            let gap = seq.wrapping_sub(expected);
            // A gap "backwards" (the group was re-bound) is not loss.
            if gap != 0 && gap < u32::MAX / 2 {
                ComponentCounters::add(&self.counters.kernel_lost, gap as u64);
                crate::rate_limited_warn!(
                    "source `{}`: the kernel lost {gap} packets of group {group}",
                    self.name
                );
            }
        }
    }

    fn overrun(&mut self) {
        ComponentCounters::add(&self.counters.overruns, 1);
        let max = self.cfg.socket_buffer_max.0 as usize;
        // getsockopt reports twice what was asked; ask for double the current real size.
        if self.rcvbuf / 2 < max {
            let want = (self.rcvbuf).min(max);
            if let Ok(got) = self.sock.set_recv_buffer(want) {
                self.rcvbuf = got;
            }
        }
        crate::rate_limited_warn!(
            "source `{}`: socket overrun (ENOBUFS), packets lost; receive buffer now {} bytes",
            self.name,
            self.rcvbuf / 2
        );
    }

    fn run(mut self, mut decoder: Decoder, mut fanout: Fanout) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut batch: Vec<Event> = Vec::with_capacity(256);
        while !crate::signals::shutdown_requested() {
            let mut nonblocking = false;
            let mut first_at: Option<std::time::Instant> = None;
            loop {
                if nonblocking {
                    // Linger for the kernel's next batch while this one is small.
                    let waited = first_at.map(|t| t.elapsed()).unwrap_or_default();
                    if waited >= BATCH_LINGER
                        || !matches!(self.sock.wait_readable(BATCH_LINGER - waited), Ok(true))
                    {
                        break;
                    }
                }
                let r = match self.sock.recv(&mut buf, nonblocking) {
                    Ok(r) => r,
                    Err(e) => {
                        ComponentCounters::add(&self.counters.errors, 1);
                        crate::rate_limited_warn!("source `{}`: receive failed: {e}", self.name);
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                };
                match r {
                    Recv::Data { len, truncated } => {
                        if truncated {
                            ComponentCounters::add(&self.counters.malformed, 1);
                        }
                        self.decode_datagram(&buf[..len], &mut decoder, &mut batch);
                        first_at.get_or_insert_with(std::time::Instant::now);
                    }
                    Recv::Overrun => self.overrun(),
                    Recv::Timeout => {
                        if !nonblocking {
                            break;
                        }
                    }
                }
                if batch.len() >= MAX_BATCH_EVENTS {
                    break;
                }
                nonblocking = true;
            }
            if !batch.is_empty() {
                ComponentCounters::add(&self.counters.received, batch.len() as u64);
                fanout.send(&mut batch);
            }
            decoder.ifnames.refresh();
        }
        for &g in &self.cfg.groups {
            let seq = self.sock.next_seq();
            let _ = self.sock.send(&nflog::unbind_request(g, seq));
        }
    }

    fn decode_datagram(&mut self, data: &[u8], decoder: &mut Decoder, batch: &mut Vec<Event>) {
        let now = Timestamp::now();
        for p in nflog::packets(data) {
            match p {
                Ok(p) => {
                    if p.unknown_attrs > 0 {
                        ComponentCounters::add(
                            &self.counters.unknown_attributes,
                            p.unknown_attrs as u64,
                        );
                    }
                    if let Some(s) = p.seq {
                        self.check_seq(p.group, s);
                    }
                    let ev = decoder.event(&p, now);
                    if ev.headers.truncated {
                        ComponentCounters::add(&self.counters.truncated, 1);
                    }
                    batch.push(Event::Packet(ev));
                }
                Err(e) => {
                    ComponentCounters::add(&self.counters.malformed, 1);
                    crate::rate_limited_warn!(
                        "source `{}`: skipped a malformed NFLOG message: {e}",
                        self.name
                    );
                }
            }
        }
    }
}

/// Starts the source's thread; returns once its groups are bound (or with why they are not).
pub fn spawn(
    name: &str,
    cfg: &NflogConfig,
    actions: Arc<ActionConfig>,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let name = name.to_string();
    let cfg = cfg.clone();
    let keep_payload = fanout.wants_payload();
    crate::sources::thread::spawn(
        format!("nflog:{name}"),
        move || {
            let reader = Reader::open(&name, &cfg, counters)?;
            // The decoder resolves interface names in the same namespace as the socket.
            let mut decoder = Decoder::new(
                IfNames::new(),
                ActionResolver::new(actions, cfg.numeric_label),
                cfg.numeric_label.unwrap_or(0),
            );
            decoder.keep_payload = keep_payload;
            tracing::info!(
                "source `{name}`: reading NFLOG groups {:?}{} (receive buffer {} bytes)",
                cfg.groups,
                cfg.netns
                    .as_deref()
                    .map(|n| format!(" in netns {n}"))
                    .unwrap_or_default(),
                reader.rcvbuf / 2
            );
            Ok((reader, decoder))
        },
        move |(reader, decoder)| reader.run(decoder, fanout),
    )
}
