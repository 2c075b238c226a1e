//! Listener threads: one for UDP; for TCP/TLS one accepting thread and one thread per
//! connection, each with its own line decoder and batches.

use super::config::{Mode, SyslogConfig};
use super::framing::Deframer;
use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::sources::lines::LineBatcher;
use crate::transforms::action::ActionConfig;
use anyhow::{anyhow, Context, Result};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

fn tls_config(cfg: &SyslogConfig) -> Result<Arc<rustls::ServerConfig>> {
    let cert = cfg
        .cert_file
        .as_deref()
        .ok_or_else(|| anyhow!("cert_file missing"))?;
    let key = cfg
        .key_file
        .as_deref()
        .ok_or_else(|| anyhow!("key_file missing"))?;
    crate::tls::server_config(cert, key, cfg.ca_file.as_deref())
}

pub fn spawn(
    name: &str,
    cfg: &SyslogConfig,
    actions: Arc<ActionConfig>,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
) -> Result<JoinHandle<()>> {
    let name = name.to_string();
    let cfg = cfg.clone();
    let max = cfg.max_message.0 as usize;
    match cfg.mode {
        Mode::Udp => {
            let sock = UdpSocket::bind(&cfg.address)
                .with_context(|| format!("binding udp {}", cfg.address))?;
            sock.set_read_timeout(Some(Duration::from_millis(250)))?;
            super::udp::report_drops(&sock)
                .with_context(|| format!("source `{name}`: SO_RXQ_OVFL"))?;
            tracing::info!("source `{name}`: syslog over UDP on {}", cfg.address);
            Ok(crate::signals::spawn_thread(
                format!("syslog:{name}"),
                move || {
                    let mut buf = vec![0u8; max.max(2048)];
                    let mut batchers: std::collections::HashMap<std::net::IpAddr, LineBatcher> =
                        Default::default();
                    let mut kernel_drops = 0u32;
                    let mut count_drops = |now: u32| {
                        let lost = now.wrapping_sub(kernel_drops);
                        if lost > 0 {
                            ComponentCounters::add(&counters.kernel_lost, lost as u64);
                            crate::rate_limited_warn!(
                                "source `{name}`: the kernel dropped {lost} datagrams (receive buffer full)"
                            );
                        }
                        kernel_drops = now;
                    };
                    while !crate::signals::shutdown_requested() {
                        match super::udp::recv(&sock, &mut buf) {
                            Ok((n, peer, drops)) => {
                                if let Some(d) = drops {
                                    count_drops(d);
                                }
                                if batchers.len() > 4096 {
                                    batchers.clear();
                                }
                                let b = batchers.entry(peer.ip()).or_insert_with(|| {
                                    LineBatcher::new(
                                        &format!("udp:{}", peer.ip()),
                                        actions.clone(),
                                        fanout.clone(),
                                        counters.clone(),
                                    )
                                });
                                let msg = String::from_utf8_lossy(&buf[..n]);
                                for line in msg.split('\n').filter(|l| !l.trim().is_empty()) {
                                    b.line(line, None);
                                }
                                b.flush();
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) =>
                            {
                                // Idle: drops after the last datagram show only here.
                                if let Some(d) = super::udp::drops_now(&sock) {
                                    count_drops(d);
                                }
                            }
                            Err(e) => {
                                ComponentCounters::add(&counters.errors, 1);
                                crate::rate_limited_warn!("source `{name}`: receive failed: {e}");
                            }
                        }
                    }
                    if let Some(d) = super::udp::drops_now(&sock) {
                        count_drops(d);
                    }
                },
            )?)
        }
        Mode::Tcp | Mode::Tls | Mode::Relp | Mode::RelpTls => {
            let tls = if cfg.mode.tls() {
                Some(tls_config(&cfg).with_context(|| format!("source `{name}`: TLS"))?)
            } else {
                None
            };
            let listener = TcpListener::bind(&cfg.address)
                .with_context(|| format!("binding tcp {}", cfg.address))?;
            listener.set_nonblocking(true)?;
            tracing::info!(
                "source `{name}`: syslog over {} on {}",
                match cfg.mode {
                    Mode::Relp => "RELP",
                    Mode::RelpTls => "RELP over TLS",
                    Mode::Tls => "TLS",
                    _ => "TCP",
                },
                cfg.address
            );
            let conns = Arc::new(Connections::default());
            Ok(crate::signals::spawn_thread(
                format!("syslog:{name}"),
                move || {
                    while !crate::signals::shutdown_requested() {
                        match listener.accept() {
                            Ok((stream, peer)) => {
                                let Some(conn) = conns.admit(&stream, peer, &cfg, &counters, &name)
                                else {
                                    continue;
                                };
                                let (conns, tls, actions, fanout, conn_counters, name, cfg) = (
                                    conns.clone(),
                                    tls.clone(),
                                    actions.clone(),
                                    fanout.clone(),
                                    counters.clone(),
                                    name.clone(),
                                    cfg.clone(),
                                );
                                let spawned = crate::signals::spawn_thread(
                                    format!("syslog:{peer}"),
                                    move || {
                                        let origin = format!(
                                            "{}:{peer}",
                                            match cfg.mode {
                                                Mode::Relp | Mode::RelpTls => "relp",
                                                Mode::Tls => "tls",
                                                _ => "tcp",
                                            }
                                        );
                                        let b = LineBatcher::new(
                                            &origin,
                                            actions,
                                            fanout,
                                            conn_counters.clone(),
                                        );
                                        if let Err(e) =
                                            serve(stream, tls, b, &cfg, &conn, &conn_counters)
                                        {
                                            crate::rate_limited_warn!(
                                                "source `{name}`: connection from {peer}: {e:#}"
                                            );
                                        }
                                        conns.remove(conn.id);
                                    },
                                );
                                if spawned.is_err() {
                                    ComponentCounters::add(&counters.errors, 1);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(50))
                            }
                            Err(e) => {
                                ComponentCounters::add(&counters.errors, 1);
                                crate::rate_limited_warn!("source `{name}`: accept failed: {e}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                },
            )?)
        }
    }
}

/// Milliseconds since the listener's first use: when a connection last delivered a message.
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// One open connection, as the listener sees it.
struct Conn {
    id: u64,
    peer: IpAddr,
    /// When it last delivered a complete message (or connected), in `now_ms` time.
    last_message: AtomicU64,
    /// Set when the listener closed it to make room: its reader ends.
    evicted: std::sync::atomic::AtomicBool,
    /// A handle on its socket, to close it from the accepting thread.
    socket: TcpStream,
}

/// The open connections of one listener: so that idle connections cannot keep every slot
/// (a new peer takes the place of the one quiet for longest) and one address cannot take
/// them all (a cap per address).
#[derive(Default)]
struct Connections {
    open: Mutex<Vec<Arc<Conn>>>,
    next_id: AtomicU64,
}

/// A connection quiet for less than this is not closed to make room.
const EVICT_AFTER_MS: u64 = 1000;

impl Connections {
    /// Registers a new connection, or refuses it (counted) and returns None.
    fn admit(
        &self,
        stream: &TcpStream,
        peer: SocketAddr,
        cfg: &SyslogConfig,
        counters: &ComponentCounters,
        name: &str,
    ) -> Option<Arc<Conn>> {
        let mut open = self.open.lock().ok()?;
        let refuse = |why: &str| {
            ComponentCounters::add(&counters.refused, 1);
            crate::rate_limited_warn!("source `{name}`: refusing {peer}: {why}");
            None
        };
        if open.iter().filter(|c| c.peer == peer.ip()).count() >= cfg.max_connections_per_peer {
            return refuse(&format!(
                "{} connections from that address are open",
                cfg.max_connections_per_peer
            ));
        }
        if open.len() >= cfg.max_connections {
            let now = now_ms();
            let quietest = open
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.last_message.load(Ordering::Relaxed))
                .filter(|(_, c)| {
                    now.saturating_sub(c.last_message.load(Ordering::Relaxed)) >= EVICT_AFTER_MS
                })
                .map(|(i, _)| i);
            let Some(i) = quietest else {
                return refuse(&format!(
                    "{} connections are open, all of them active",
                    cfg.max_connections
                ));
            };
            let victim = open.swap_remove(i);
            victim.evicted.store(true, Ordering::Relaxed);
            let _ = victim.socket.shutdown(std::net::Shutdown::Both);
            ComponentCounters::add(&counters.evicted, 1);
            crate::rate_limited_warn!(
                "source `{name}`: {} connections open; closed the quietest, from {}, for {peer}",
                cfg.max_connections,
                victim.peer
            );
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: peer.ip(),
            last_message: AtomicU64::new(now_ms()),
            evicted: Default::default(),
            socket: stream.try_clone().ok()?,
        });
        open.push(conn.clone());
        Some(conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.retain(|c| c.id != id);
        }
    }
}

/// A connection's byte stream, plain or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    fn handshaking(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.conn.is_handshaking())
    }
}

/// What one connection's reader does with the bytes it reads.
pub(super) enum Protocol {
    /// Syslog frames (octet counting or LF), nothing answered.
    Syslog(Deframer),
    /// RELP: frames answered as their messages are taken.
    Relp(super::relp::Server),
}

/// Reads one connection until it closes (or nflogd stops, or it idles too long), deframing and
/// decoding.
fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut b: LineBatcher,
    cfg: &SyslogConfig,
    conn: &Conn,
    counters: &ComponentCounters,
) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(250)))?;
    let mut reader = match tls {
        Some(t) => Stream::Tls(Box::new(rustls::StreamOwned::new(
            rustls::ServerConnection::new(t)?,
            stream,
        ))),
        None => Stream::Plain(stream),
    };
    let started = now_ms();
    let handshake_ms = cfg.handshake_timeout.0.as_millis() as u64;
    let idle_ms = cfg.idle_timeout.0.as_millis() as u64;
    let max = cfg.max_message.0 as usize;
    let mut protocol = if cfg.mode.relp() {
        Protocol::Relp(super::relp::Server::new(max))
    } else {
        Protocol::Syslog(Deframer::new(max))
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut oversized = 0;
    while !crate::signals::shutdown_requested() && !conn.evicted.load(Ordering::Relaxed) {
        let now = now_ms();
        if reader.handshaking() && now.saturating_sub(started) > handshake_ms {
            ComponentCounters::add(&counters.timeouts, 1);
            return Err(anyhow!("no TLS handshake within {handshake_ms} ms; closed"));
        }
        if idle_ms > 0 && now.saturating_sub(conn.last_message.load(Ordering::Relaxed)) > idle_ms {
            ComponentCounters::add(&counters.timeouts, 1);
            b.flush();
            return Err(anyhow!("no message for {idle_ms} ms; closed"));
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut messages = 0;
                let mut line = |m: &[u8]| {
                    messages += 1;
                    b.line(&String::from_utf8_lossy(m), None)
                };
                let (ended, bad) = match &mut protocol {
                    Protocol::Syslog(d) => {
                        d.feed(&buf[..n], &mut line);
                        (false, None)
                    }
                    Protocol::Relp(r) => match r.feed(&buf[..n], &mut line) {
                        Ok(ended) => (ended, None),
                        Err(e) => (true, Some(e)),
                    },
                };
                if messages > 0 {
                    conn.last_message.store(now_ms(), Ordering::Relaxed);
                }
                // A source that can wait: this blocks while a sink has no room, and TCP's
                // flow control then holds the sender back.
                b.flush();
                let cut = match &mut protocol {
                    Protocol::Syslog(d) => d.oversized,
                    Protocol::Relp(r) => {
                        // Answered only now that the fan-out has taken the messages.
                        r.answer(&mut reader)?;
                        r.oversized
                    }
                };
                if cut > oversized {
                    ComponentCounters::add(&counters.malformed, cut - oversized);
                    oversized = cut;
                }
                if let Some(e) = bad {
                    ComponentCounters::add(&counters.malformed, 1);
                    return Err(e);
                }
                if ended {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                b.flush();
                return Err(e.into());
            }
        }
    }
    b.flush();
    Ok(())
}
