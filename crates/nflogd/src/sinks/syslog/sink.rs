//! The sender thread: renders each batch into messages, appends them to the sink's disk spool,
//! and sends from the spool, oldest first. A batch leaves the spool only once the receiver has
//! it: confirmed frame by frame over RELP, known read from the socket over plain TCP/TLS (see
//! `conn::ReadProgress`), at once over UDP. After a broken connection what was sent and not
//! confirmed is sent again (counted as `resent`). On failure it reconnects with backoff while
//! new batches keep going to the spool.

use super::config::{facility_code, severity_code, Format, Framing, SyslogSinkConfig, Transport};
use super::conn::{Conn, ReadProgress, Wire};
use super::format::{self, Header};
use super::relp::{self, Session};
use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::schema::{Renderer, SchemaOptions};
use crate::spool::Spool;
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::RecvTimeoutError;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Events sent and not confirmed, at most; past it the oldest count as delivered (a plain TCP
/// receiver whose socket never shows it read everything must not stall the sink).
const MAX_UNCONFIRMED: u64 = 1_000_000;

/// The largest UDP payload over IPv4 (65 535 less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// A spooled message as two parts, with its structured data to go between them (at the place
/// its first four bytes name), or as one when it has none. A message spooled by an earlier
/// nflogd, without that place, is sent as it is.
fn sd_parts(spooled: &[u8]) -> (&[u8], Option<&[u8]>) {
    let Some((at, m)) = spooled
        .split_first_chunk::<4>()
        .map(|(a, m)| (u32::from_le_bytes(*a), m))
    else {
        return (spooled, None);
    };
    if at == u32::MAX {
        return (m, None);
    }
    let at = at as usize;
    if at > m.len() || !m.starts_with(b"<") {
        return (spooled, None);
    }
    (&m[..at], Some(&m[at..]))
}

fn tls_config(cfg: &SyslogSinkConfig) -> Result<Arc<rustls::ClientConfig>> {
    crate::tls::client_config(
        cfg.ca_file.as_deref(),
        cfg.cert_file.as_deref(),
        cfg.key_file.as_deref(),
    )
}

struct SyslogSink {
    name: String,
    cfg: SyslogSinkConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
    conn: Option<Conn>,
    /// The RELP session on `conn`, for the RELP transports.
    relp: Option<Session>,
    /// Plain TCP/TLS: what the receiver has read, as the socket tells.
    progress: ReadProgress,
    /// Events of the record being sent that went out before a failure (see `send`).
    handed_over: u64,
    renderer: Renderer,
    sd: Vec<u8>,
    facility: u8,
    severity: Option<u8>,
    hostname: String,
    counters: Arc<ComponentCounters>,
    /// The batch being rendered: message bodies back to back, and where each ends.
    body: Vec<u8>,
    ends: Vec<usize>,
    /// Framed bytes of the batch being sent.
    buf: Vec<u8>,
    messages: Vec<(usize, usize)>,
    spool: Spool,
    /// A batch the spool refused (full, `block`): it is retried before anything new is taken.
    held: Option<Batch>,
    next_connect: std::time::Instant,
    backoff: Duration,
    sync_interval: Duration,
}

impl SyslogSink {
    fn connect(&self) -> Result<(Conn, Option<Session>)> {
        let addr = self
            .cfg
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to nothing", self.cfg.address))?;
        let transport = self.cfg.transport();
        if transport == Transport::Udp {
            let s = UdpSocket::bind(if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })?;
            s.connect(addr)?;
            return Ok((Conn::Udp(s), None));
        }
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        sock.set_nodelay(true)?;
        sock.set_write_timeout(Some(Duration::from_secs(30)))?;
        if !transport.relp() {
            super::conn::probe_when_idle(&sock);
        }
        let wire = Wire { sock, written: 0 };
        let mut conn = match &self.tls {
            None => Conn::Tcp(wire),
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from(self.server_name.clone())?;
                let mut c = rustls::ClientConnection::new(cfg.clone(), name)?;
                let mut wire = wire;
                // Finish the handshake now, so that certificate errors show as such.
                while c.is_handshaking() {
                    c.complete_io(&mut wire)?;
                }
                Conn::Tls(Box::new(rustls::StreamOwned::new(c, wire)))
            }
        };
        let session = if transport.relp() {
            Some(Session::open(&mut conn).context("opening the RELP session")?)
        } else {
            None
        };
        Ok((conn, session))
    }

    /// Renders a batch to message bodies (header + record), one after the other in `body`.
    fn render(&mut self, batch: &Batch) {
        self.body.clear();
        self.ends.clear();
        let header = Header {
            format: self.cfg.format(),
            facility: self.facility,
            hostname: &self.hostname,
            app_name: &self.cfg.app_name,
            procid: self.cfg.procid.as_deref().unwrap_or(""),
            msgid: self.cfg.msgid.as_deref().unwrap_or(""),
        };
        for ev in batch.iter() {
            let (time, host) = match ev {
                event::Event::Packet(p) => (p.time, p.host.as_deref()),
                event::Event::Raw(r) => (r.time, r.host.as_deref()),
                event::Event::Flow(f) => (f.time, None),
                event::Event::Counter(c) => (c.time, None),
                event::Event::Decision(d) => (d.time, None),
                event::Event::Line(l) => (l.time, l.host.as_deref()),
            };
            // Each spooled message starts with where its structured data goes (u32::MAX for
            // none); the data itself is added when it is sent.
            let start = self.body.len();
            self.body.extend_from_slice(&[0; 4]);
            let at = header.write(
                format::severity(self.severity, ev),
                time,
                host,
                &mut self.body,
            );
            let at = at.map_or(u32::MAX, |a| (a - start - 4) as u32);
            self.body[start..start + 4].copy_from_slice(&at.to_le_bytes());
            self.renderer.render(ev, &mut self.body);
            self.ends.push(self.body.len());
        }
    }

    /// Frames messages for the transport into `buf`, the structured data put back in place
    /// (RELP: numbered `syslog` frames of the session).
    fn frame(&mut self, msgs: &[Vec<u8>]) {
        self.buf.clear();
        self.messages.clear();
        for spooled in msgs {
            let (head, tail) = sd_parts(spooled);
            let len = head.len() + tail.map_or(0, |t| self.sd.len() + t.len());
            let start = self.buf.len();
            if let Some(session) = self.relp.as_mut() {
                let sd = tail.map_or(&[][..], |_| &self.sd[..]);
                let mut parts = [head, sd, tail.unwrap_or(&[])];
                if len > relp::MAX_DATA {
                    // imrelp ends a session whose frame is over its `maxDataSize`: cut it.
                    ComponentCounters::add(&self.counters.truncated, 1);
                    let mut room = relp::MAX_DATA;
                    for p in &mut parts {
                        *p = &p[..p.len().min(room)];
                        room -= p.len();
                    }
                }
                session.frame(&mut self.buf, &parts);
                self.messages.push((start, self.buf.len()));
                continue;
            }
            if let (Transport::Tcp | Transport::Tls, Framing::OctetCounting) =
                (self.cfg.transport(), self.cfg.framing())
            {
                let _ = write!(self.buf, "{len} ");
            }
            let body = self.buf.len();
            self.buf.extend_from_slice(head);
            if let Some(t) = tail {
                self.buf.extend_from_slice(&self.sd);
                self.buf.extend_from_slice(t);
            }
            match (self.cfg.transport(), self.cfg.framing()) {
                (Transport::Udp, _) if len > MAX_DATAGRAM => {
                    // RFC 5426: a message longer than a datagram can carry is truncated.
                    ComponentCounters::add(&self.counters.truncated, 1);
                    crate::rate_limited_warn!(
                        "sink `{}`: a {len}-byte message truncated to {MAX_DATAGRAM} bytes for UDP",
                        self.name
                    );
                    self.buf.truncate(body + MAX_DATAGRAM);
                }
                (Transport::Tcp | Transport::Tls, Framing::Lf) => {
                    // An LF inside a message would split it: LF framing cannot carry one.
                    for b in &mut self.buf[body..] {
                        if *b == b'\n' {
                            *b = b' ';
                        }
                    }
                    self.buf.push(b'\n');
                }
                _ => {}
            }
            self.messages.push((start, self.buf.len()));
        }
    }

    /// Puts a batch into the spool; false if the spool is full (`block`) and kept it out.
    fn spool_batch(&mut self, b: &Batch) -> bool {
        self.render(b);
        let mut msgs = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            msgs.push(&self.body[start..end]);
            start = end;
        }
        self.spool.append_counted(&self.name, &msgs, &self.counters)
    }

    /// Sends what the spool holds, oldest first, and takes the receiver's confirmations; stops
    /// at the first failure (and waits out the backoff before connecting again).
    fn deliver(&mut self) {
        loop {
            if self.conn.as_ref().is_some_and(Conn::peer_closed) && self.relp.is_none() {
                self.broken("the receiver closed the connection");
            }
            if let Err(e) = self.take_confirmations() {
                self.broken(&format!("{e:#}"));
            }
            if self.spool.unconfirmed_events() >= MAX_UNCONFIRMED {
                // A receiver that never shows it read: confirm the oldest rather than stall.
                let before = self.spool.unconfirmed_events();
                self.spool.confirm(1);
                ComponentCounters::add(
                    &self.counters.sent,
                    before - self.spool.unconfirmed_events(),
                );
            }
            let msgs = match self.spool.peek() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    ComponentCounters::add(&self.counters.errors, 1);
                    crate::rate_limited_warn!("sink `{}`: cannot read the spool: {e}", self.name);
                    break;
                }
            };
            if self.conn.is_none() && !self.reconnect() {
                break;
            }
            if let Err(e) = self.send(&msgs) {
                // Part of this record may have reached the receiver: it is sent again too.
                ComponentCounters::add(&self.counters.resent, self.handed_over);
                self.broken(&format!("sending failed: {e:#}"));
                break;
            }
        }
        self.publish();
    }

    /// Connects (unless the backoff says wait); false if there is no connection.
    fn reconnect(&mut self) -> bool {
        if Instant::now() < self.next_connect {
            return false;
        }
        match self.connect() {
            Ok((c, session)) => {
                tracing::info!("sink `{}`: connected to {}", self.name, self.cfg.address);
                self.conn = Some(c);
                self.relp = session;
                self.progress = ReadProgress::default();
                self.backoff = Duration::from_millis(100);
                true
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.errors, 1);
                crate::rate_limited_warn!(
                    "sink `{}`: cannot reach {}: {e:#}; retrying",
                    self.name,
                    self.cfg.address
                );
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
                false
            }
        }
    }

    /// Sends one spooled record. UDP has nothing to confirm with: it leaves the spool at once.
    /// On failure `handed_over` says how many of its events may have reached the receiver.
    fn send(&mut self, msgs: &[Vec<u8>]) -> Result<()> {
        self.handed_over = 0;
        if self.relp.is_some() {
            // A window of frames at a time, waiting for answers in between.
            let mut i = 0;
            while i < msgs.len() {
                let (Some(c), Some(session)) = (self.conn.as_mut(), self.relp.as_mut()) else {
                    return Err(anyhow!("not connected"));
                };
                session.wait_for_window(c)?;
                let room = (relp::WINDOW - (session.sent - session.confirmed)) as usize;
                let part = &msgs[i..(i + room).min(msgs.len())];
                self.frame(part);
                i += part.len();
                self.handed_over = i as u64;
                if let Some(c) = self.conn.as_mut() {
                    c.send(&self.buf, &self.messages)?;
                }
            }
            // The record's mark: the session's frame count at its end.
            let sent = self.relp.as_ref().map_or(0, |s| s.sent);
            self.spool.sent(sent);
            return Ok(());
        }
        self.frame(msgs);
        let Some(c) = self.conn.as_mut() else {
            return Err(anyhow!("not connected"));
        };
        self.handed_over = msgs.len() as u64;
        c.send(&self.buf, &self.messages)?;
        match c.wire() {
            // The record's mark: the stream's byte count at its end.
            Some(w) => self.spool.sent(w.written),
            None => {
                self.spool.ack();
                ComponentCounters::add(&self.counters.sent, msgs.len() as u64);
            }
        }
        Ok(())
    }

    /// Moves past what the receiver has confirmed: answered over RELP, read over TCP/TLS.
    fn take_confirmations(&mut self) -> Result<()> {
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        let upto = match (self.relp.as_mut(), c.wire()) {
            (Some(session), _) => {
                session.read_answers(c, Instant::now())?;
                session.confirmed
            }
            (None, Some(w)) => self.progress.read_upto(w),
            (None, None) => return Ok(()),
        };
        self.confirm_upto(upto);
        Ok(())
    }

    /// The records sent up to `mark` are the receiver's: they leave the spool.
    fn confirm_upto(&mut self, mark: u64) {
        let n = self.spool.confirm_upto(mark);
        ComponentCounters::add(&self.counters.sent, n);
    }

    /// The connection is gone: what it did not confirm will be sent again on the next one.
    fn broken(&mut self, why: &str) {
        ComponentCounters::add(&self.counters.errors, 1);
        self.conn = None;
        self.relp = None;
        let again = self.spool.rewind();
        ComponentCounters::add(&self.counters.resent, again);
        crate::rate_limited_warn!(
            "sink `{}`: {}: {why}; reconnecting{}",
            self.name,
            self.cfg.address,
            if again > 0 {
                format!(", and sending again the {again} events it had not confirmed")
            } else {
                String::new()
            }
        );
        self.next_connect = Instant::now() + self.backoff;
    }

    /// Closes the connection the orderly way (RELP `close`; TCP/TLS: our end first, then the
    /// receiver's, which comes once it has read everything), confirming what was sent; what a
    /// receiver does not confirm by `deadline` is sent again later.
    fn close(&mut self, deadline: Instant) {
        let Some(mut c) = self.conn.take() else {
            return;
        };
        let all_read = match self.relp.as_mut() {
            Some(session) => session.close(&mut c, deadline).is_ok(),
            None => c.close_and_wait(deadline),
        };
        if all_read {
            self.confirm_upto(u64::MAX);
        }
        self.relp = None;
        let again = self.spool.rewind();
        ComponentCounters::add(&self.counters.resent, again);
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters
            .spool_pending
            .store(self.spool.pending_events(), Relaxed);
        self.counters
            .spool_corrupt
            .store(self.spool.stats.corrupt_records, Relaxed);
    }

    fn run(mut self, q: SinkQueue) {
        let mut last_sync = std::time::Instant::now();
        let mut generation = crate::signals::reopen_generation();
        let mut open = true;
        while open || self.held.is_some() {
            // Take new batches into the spool, unless one is still held back by a full spool.
            if let Some(b) = self.held.take() {
                if self.spool_batch(&b) {
                    q.taken(&b);
                } else {
                    self.held = Some(b);
                }
            }
            if self.held.is_none() && open {
                let wait = if self.spool.pending_events() > 0 {
                    Duration::from_millis(20)
                } else {
                    Duration::from_millis(200)
                };
                match q.recv_timeout(wait) {
                    Ok(b) => {
                        ComponentCounters::add(&self.counters.received, b.len() as u64);
                        if self.spool_batch(&b) {
                            q.taken(&b);
                        } else {
                            self.held = Some(b);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            let g = crate::signals::reopen_generation();
            if g != generation {
                // SIGHUP: reconnect (the receiver may have moved behind its name).
                generation = g;
                self.close(Instant::now() + Duration::from_secs(1));
                self.next_connect = Instant::now();
            }
            self.deliver();
            if last_sync.elapsed() >= self.sync_interval {
                let _ = self.spool.sync();
                last_sync = std::time::Instant::now();
            }
            if self.held.is_some() && crate::signals::shutdown_requested() {
                // Stopping with a full spool: what is held back cannot be kept.
                let n = self.held.take().map_or(0, |b| {
                    q.taken(&b);
                    b.len() as u64
                });
                ComponentCounters::add(&self.counters.dropped, n);
            }
        }
        // Stopping: give the receiver a last chance, then close so that it confirms what it
        // read; what it does not take stays spooled for the next start.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.spool.pending_events() > self.spool.unconfirmed_events()
            && Instant::now() < deadline
        {
            self.next_connect = Instant::now();
            self.deliver();
            if self.spool.pending_events() > self.spool.unconfirmed_events() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.close(Instant::now() + Duration::from_secs(1));
        self.publish();
        let _ = self.spool.sync();
        if self.spool.pending_events() > 0 {
            tracing::warn!(
                "sink `{}`: {} events stay in the spool for the next start",
                self.name,
                self.spool.pending_events()
            );
        }
    }
}

pub fn spawn(
    name: &str,
    cfg: &SyslogSinkConfig,
    opts: SchemaOptions,
    queue: SinkQueue,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let cfg = cfg.resolved();
    let tls = if cfg.transport().tls() {
        Some(tls_config(&cfg).with_context(|| format!("sink `{name}`: TLS"))?)
    } else {
        None
    };
    let host = cfg
        .address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_default();
    let server_name = cfg.server_name.clone().unwrap_or(host);
    let hostname = cfg
        .hostname
        .clone()
        .unwrap_or_else(|| opts.hostname.clone());
    let mut opts = opts;
    opts.kind = cfg.schema;
    let spool = cfg.spool.open(name)?;
    ComponentCounters::add(&counters.replayed, spool.pending_events());
    let sink = SyslogSink {
        name: name.to_string(),
        sd: if cfg.format() == Format::Rfc5424 {
            format::structured_data(&cfg)
        } else {
            Vec::new()
        },
        facility: facility_code(&cfg.facility).unwrap_or(0),
        severity: severity_code(&cfg.severity),
        hostname,
        tls,
        server_name,
        conn: None,
        relp: None,
        progress: ReadProgress::default(),
        handed_over: 0,
        renderer: Renderer::new(opts),
        counters,
        buf: Vec::with_capacity(256 * 1024),
        body: Vec::with_capacity(256 * 1024),
        ends: Vec::new(),
        messages: Vec::new(),
        spool,
        held: None,
        next_connect: std::time::Instant::now(),
        backoff: Duration::from_millis(100),
        sync_interval: cfg.spool.sync_interval.0,
        cfg,
    };
    tracing::info!(
        "sink `{name}`: syslog {:?} to {} over {:?}",
        sink.cfg.format(),
        sink.cfg.address,
        sink.cfg.transport()
    );
    Ok(std::thread::Builder::new()
        .name(format!("syslog:{name}"))
        .spawn(move || sink.run(queue))?)
}

#[cfg(test)]
mod tests {
    use super::sd_parts;

    /// A spooled message splits where its structured data goes; one without a place (RFC 3164)
    /// is whole; one spooled by an earlier nflogd (no place recorded) is sent as it was.
    #[test]
    fn spooled_messages_split_where_the_structured_data_goes() {
        let mut m = 12u32.to_le_bytes().to_vec();
        m.extend_from_slice(b"<4>1 - h k - IN=eth0");
        assert_eq!(sd_parts(&m), (&b"<4>1 - h k -"[..], Some(&b" IN=eth0"[..])));
        let mut bsd = u32::MAX.to_le_bytes().to_vec();
        bsd.extend_from_slice(b"<4>Nov 23 fw kernel: IN=");
        assert_eq!(sd_parts(&bsd), (&bsd[4..], None));
        let old = b"<4>1 2026-11-23T10:00:00Z fw kernel - - [SD] IN=";
        assert_eq!(sd_parts(old), (&old[..], None));
    }
}
