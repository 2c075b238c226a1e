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
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

fn tls_config(cfg: &SyslogConfig) -> Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_file_iter(p)
            .with_context(|| format!("reading {}", p.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificates in {}", p.display()))
    };
    let cert = cfg
        .cert_file
        .as_deref()
        .ok_or_else(|| anyhow!("cert_file missing"))?;
    let key = cfg
        .key_file
        .as_deref()
        .ok_or_else(|| anyhow!("key_file missing"))?;
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(
        builder
            .with_single_cert(chain, key)
            .context("the certificate and key do not match")?,
    ))
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
            tracing::info!("source `{name}`: syslog over UDP on {}", cfg.address);
            Ok(std::thread::Builder::new()
                .name(format!("syslog:{name}"))
                .spawn(move || {
                    let mut buf = vec![0u8; max.max(2048)];
                    let mut batchers: std::collections::HashMap<std::net::IpAddr, LineBatcher> =
                        Default::default();
                    while !crate::signals::shutdown_requested() {
                        match sock.recv_from(&mut buf) {
                            Ok((n, peer)) => {
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
                                ) => {}
                            Err(e) => {
                                ComponentCounters::add(&counters.errors, 1);
                                crate::rate_limited_warn!("source `{name}`: receive failed: {e}");
                            }
                        }
                    }
                })?)
        }
        Mode::Tcp | Mode::Tls => {
            let tls = if cfg.mode == Mode::Tls {
                Some(tls_config(&cfg).with_context(|| format!("source `{name}`: TLS"))?)
            } else {
                None
            };
            let listener = TcpListener::bind(&cfg.address)
                .with_context(|| format!("binding tcp {}", cfg.address))?;
            listener.set_nonblocking(true)?;
            tracing::info!(
                "source `{name}`: syslog over {} on {}",
                if tls.is_some() { "TLS" } else { "TCP" },
                cfg.address
            );
            let open = Arc::new(AtomicUsize::new(0));
            Ok(std::thread::Builder::new()
                .name(format!("syslog:{name}"))
                .spawn(move || {
                    while !crate::signals::shutdown_requested() {
                        match listener.accept() {
                            Ok((stream, peer)) => {
                                if open.load(Ordering::Relaxed) >= cfg.max_connections {
                                    ComponentCounters::add(&counters.errors, 1);
                                    crate::rate_limited_warn!(
                                        "source `{name}`: refusing {peer}: {} connections open",
                                        cfg.max_connections
                                    );
                                    continue;
                                }
                                open.fetch_add(1, Ordering::Relaxed);
                                let (open, tls, actions, fanout, conn_counters, name) = (
                                    open.clone(),
                                    tls.clone(),
                                    actions.clone(),
                                    fanout.clone(),
                                    counters.clone(),
                                    name.clone(),
                                );
                                let spawned = std::thread::Builder::new()
                                    .name(format!("syslog:{peer}"))
                                    .spawn(move || {
                                        let origin = format!(
                                            "{}:{peer}",
                                            if tls.is_some() { "tls" } else { "tcp" }
                                        );
                                        let b = LineBatcher::new(
                                            &origin,
                                            actions,
                                            fanout,
                                            conn_counters.clone(),
                                        );
                                        if let Err(e) = serve(stream, tls, b, max, &conn_counters) {
                                            crate::rate_limited_warn!(
                                                "source `{name}`: connection from {peer}: {e:#}"
                                            );
                                        }
                                        open.fetch_sub(1, Ordering::Relaxed);
                                    });
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
                })?)
        }
    }
}

/// Reads one connection until it closes (or nflogd stops), deframing and decoding.
fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut b: LineBatcher,
    max: usize,
    counters: &ComponentCounters,
) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(250)))?;
    let mut reader: Box<dyn Read> = match tls {
        Some(cfg) => Box::new(rustls::StreamOwned::new(
            rustls::ServerConnection::new(cfg)?,
            stream,
        )),
        None => Box::new(stream),
    };
    let mut deframer = Deframer::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut oversized = 0;
    while !crate::signals::shutdown_requested() {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                deframer.feed(&buf[..n], |m| b.line(&String::from_utf8_lossy(m), None));
                b.flush();
                if deframer.oversized > oversized {
                    ComponentCounters::add(&counters.malformed, deframer.oversized - oversized);
                    oversized = deframer.oversized;
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
