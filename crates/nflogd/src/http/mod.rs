//! HTTP: the dashboard at `/` (its files embedded, `dashboard/`), the JSON API under `/api/`
//! (`api`), the Prometheus metrics at `/metrics`, served by a small read-only server
//! (`server`); what is shown live comes from the `dashboard` sink (`live`).

pub mod api;
pub mod live;
pub mod server;

use crate::config::Config;
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// The address to listen on: a bare port (`9177`, `:9177`) is loopback's.
pub fn listen_address(s: &str) -> Result<SocketAddr> {
    let s = s.trim();
    let port = s.strip_prefix(':').unwrap_or(s);
    if let Ok(p) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    let mut addrs = s
        .to_socket_addrs()
        .with_context(|| format!("`{s}` is not HOST:PORT or a port"))?;
    match addrs.next() {
        Some(a) => Ok(a),
        None => bail!("`{s}` names no address"),
    }
}

/// Starts the servers the configuration asks for: `http_address` (everything) and
/// `metrics_address` (the metrics only). Returns the addresses they listen on.
pub fn start(cfg: &Config, host: &str) -> Result<Vec<SocketAddr>> {
    let mut bound = Vec::new();
    if let Some(a) = &cfg.http_address {
        let address = listen_address(a)?;
        let tls = match (&cfg.http_cert_file, &cfg.http_key_file) {
            (Some(c), Some(k)) => Some(crate::tls::server_config(c, k, None).context("http TLS")?),
            _ => None,
        };
        let authorization = cfg
            .http_user
            .as_ref()
            .zip(cfg.http_password.as_ref())
            .map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            });
        if authorization.is_none() && !address.ip().is_loopback() {
            tracing::warn!(
                "http_address {address} is not loopback and has no http_user: anyone who reaches it reads the events"
            );
        }
        let api = Arc::new(api::Api::new(cfg, host));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let local = server::serve(server::Settings {
            address,
            tls,
            authorization,
            handler: Arc::new(move |r| api.handle(r)),
            name: "http",
        })
        .context("http_address")?;
        tracing::info!("dashboard: {scheme}://{local}/ (API under /api/, metrics at /metrics)");
        bound.push(local);
    }
    if let Some(a) = &cfg.metrics_address {
        let address = listen_address(a)?;
        if cfg.http_address.is_some() && bound.first() == Some(&address) {
            return Ok(bound); // one server serves both
        }
        let local = server::serve(server::Settings {
            address,
            tls: None,
            authorization: None,
            handler: Arc::new(|r| match r.path.as_str() {
                "/metrics" => metrics_response(),
                _ => server::Response::new(404, "text/plain", "try /metrics\n"),
            }),
            name: "metrics",
        })
        .context("metrics_address")?;
        tracing::info!("metrics: http://{local}/metrics");
        bound.push(local);
    }
    Ok(bound)
}

pub fn metrics_response() -> server::Response {
    server::Response::new(
        200,
        "text/plain; version=0.0.4",
        crate::metrics::prometheus(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ports_listen_on_loopback() {
        assert_eq!(
            listen_address("9177").unwrap(),
            "127.0.0.1:9177".parse().unwrap()
        );
        assert_eq!(
            listen_address(":80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            listen_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(listen_address("nowhere").is_err());
    }
}
