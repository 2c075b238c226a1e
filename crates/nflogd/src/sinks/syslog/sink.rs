//! The sender thread: renders a batch into framed messages, writes it, and on failure keeps the
//! batch, reconnects with backoff and writes it again.

use super::config::{facility_code, severity_code, Format, Framing, SyslogSinkConfig, Transport};
use super::format::{self, Header};
use crate::metrics::ComponentCounters;
use crate::pipeline::{Batch, SinkQueue};
use crate::schema::{Renderer, SchemaOptions};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::RecvTimeoutError;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Conn::Udp(_) => None,
            Conn::Tcp(s) => Some(s),
            Conn::Tls(s) => Some(s.get_ref()),
        }
    }

    /// A stream whose peer closed reads end-of-file: find out before writing into it, so a
    /// batch is not written into a dead connection.
    fn peer_closed(&self) -> bool {
        let Some(s) = self.tcp() else { return false };
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        let closed = matches!(s.peek(&mut b), Ok(0)) || matches!(s.take_error(), Ok(Some(_)));
        let _ = s.set_nonblocking(false);
        closed
    }

    fn send(&mut self, buf: &[u8], messages: &[(usize, usize)]) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => {
                for &(a, b) in messages {
                    s.send(&buf[a..b])?;
                }
                Ok(())
            }
            Conn::Tcp(s) => {
                s.write_all(buf)?;
                s.flush()
            }
            Conn::Tls(s) => {
                s.write_all(buf)?;
                s.flush()
            }
        }
    }
}

fn tls_config(cfg: &SyslogSinkConfig) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let ca = cfg
        .ca_file
        .clone()
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(&ca).with_context(|| format!("reading {}", ca.display()))?
    {
        let c = c.with_context(|| format!("parsing {}", ca.display()))?;
        // A bundle may hold certificates rustls does not accept as roots; skip those.
        let _ = roots.add(c);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)?.collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(k)?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

struct SyslogSink {
    name: String,
    cfg: SyslogSinkConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
    conn: Option<Conn>,
    renderer: Renderer,
    sd: Vec<u8>,
    facility: u8,
    severity: Option<u8>,
    hostname: String,
    counters: Arc<ComponentCounters>,
    buf: Vec<u8>,
    body: Vec<u8>,
    messages: Vec<(usize, usize)>,
}

impl SyslogSink {
    fn connect(&self) -> Result<Conn> {
        let addr = self
            .cfg
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to nothing", self.cfg.address))?;
        Ok(match self.cfg.transport {
            Transport::Udp => {
                let s = UdpSocket::bind(if addr.is_ipv6() {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                })?;
                s.connect(addr)?;
                Conn::Udp(s)
            }
            Transport::Tcp | Transport::Tls => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(Duration::from_secs(30)))?;
                match &self.tls {
                    None => Conn::Tcp(s),
                    Some(cfg) => {
                        let name =
                            rustls_pki_types::ServerName::try_from(self.server_name.clone())?;
                        let mut c = rustls::ClientConnection::new(cfg.clone(), name)?;
                        let mut s = s;
                        // Finish the handshake now, so that certificate errors show as such.
                        while c.is_handshaking() {
                            c.complete_io(&mut s)?;
                        }
                        Conn::Tls(Box::new(rustls::StreamOwned::new(c, s)))
                    }
                }
            }
        })
    }

    fn render(&mut self, batch: &Batch) {
        self.buf.clear();
        self.messages.clear();
        let header = Header {
            format: self.cfg.format,
            facility: self.facility,
            hostname: &self.hostname,
            app_name: &self.cfg.app_name,
            procid: self.cfg.procid.as_deref().unwrap_or(""),
            msgid: self.cfg.msgid.as_deref().unwrap_or(""),
            sd: &self.sd,
        };
        for ev in batch.iter() {
            self.body.clear();
            let (time, host) = match ev {
                event::Event::Packet(p) => (p.time, p.host.as_deref()),
                event::Event::Raw(r) => (r.time, r.host.as_deref()),
            };
            header.write(
                format::severity(self.severity, ev),
                time,
                host,
                &mut self.body,
            );
            self.renderer.render(ev, &mut self.body);
            let start = self.buf.len();
            match (self.cfg.transport, self.cfg.framing) {
                (Transport::Udp, _) => self.buf.extend_from_slice(&self.body),
                (_, Framing::OctetCounting) => {
                    let _ = write!(self.buf, "{} ", self.body.len());
                    self.buf.extend_from_slice(&self.body);
                }
                (_, Framing::Lf) => {
                    // An LF inside a message would split it: LF framing cannot carry one.
                    self.buf
                        .extend(self.body.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
                    self.buf.push(b'\n');
                }
            }
            self.messages.push((start, self.buf.len()));
        }
    }

    /// Writes the rendered batch, reconnecting until it is written or nflogd stops.
    fn deliver(&mut self, n: u64) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.conn.as_ref().is_some_and(Conn::peer_closed) {
                self.conn = None;
            }
            if self.conn.is_none() {
                match self.connect() {
                    Ok(c) => {
                        tracing::info!("sink `{}`: connected to {}", self.name, self.cfg.address);
                        self.conn = Some(c);
                    }
                    Err(e) => {
                        ComponentCounters::add(&self.counters.errors, 1);
                        crate::rate_limited_warn!(
                            "sink `{}`: cannot reach {}: {e:#}; retrying",
                            self.name,
                            self.cfg.address
                        );
                    }
                }
            }
            if let Some(c) = self.conn.as_mut() {
                match c.send(&self.buf, &self.messages) {
                    Ok(()) => {
                        ComponentCounters::add(&self.counters.sent, n);
                        return;
                    }
                    Err(e) => {
                        ComponentCounters::add(&self.counters.errors, 1);
                        crate::rate_limited_warn!(
                            "sink `{}`: sending to {} failed: {e}; reconnecting",
                            self.name,
                            self.cfg.address
                        );
                        self.conn = None;
                    }
                }
            }
            if crate::signals::shutdown_requested() && backoff >= Duration::from_secs(2) {
                ComponentCounters::add(&self.counters.dropped, n);
                tracing::error!(
                    "sink `{}`: stopping with {n} events undelivered to {}",
                    self.name,
                    self.cfg.address
                );
                return;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn run(mut self, q: SinkQueue) {
        loop {
            match q.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(b) => {
                    ComponentCounters::add(&self.counters.received, b.len() as u64);
                    self.render(&b);
                    self.deliver(b.len() as u64);
                    q.taken(&b);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if crate::signals::reopen_generation() != 0
                        && self.conn.as_ref().is_some_and(Conn::peer_closed)
                    {
                        self.conn = None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(Conn::Tls(mut s)) = self.conn.take() {
            s.conn.send_close_notify();
            let _ = s.flush();
            let mut b = [0u8; 1];
            let _ = s.sock.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = s.read(&mut b);
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
    let tls = if cfg.transport == Transport::Tls {
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
    let sink = SyslogSink {
        name: name.to_string(),
        sd: if cfg.format == Format::Rfc5424 {
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
        renderer: Renderer::new(opts),
        counters,
        buf: Vec::with_capacity(256 * 1024),
        body: Vec::with_capacity(2048),
        messages: Vec::new(),
        cfg,
    };
    tracing::info!(
        "sink `{name}`: syslog {:?} to {} over {:?}",
        sink.cfg.format,
        sink.cfg.address,
        sink.cfg.transport
    );
    Ok(std::thread::Builder::new()
        .name(format!("syslog:{name}"))
        .spawn(move || sink.run(queue))?)
}
