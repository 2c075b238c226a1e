//! TLS settings, with rustls and ring: the clients the sinks share (syslog, PostgreSQL,
//! ClickHouse), and the servers (the syslog source, the HTTP dashboard).

use anyhow::{Context, Result};
use rustls::pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::path::Path;
use std::sync::Arc;

/// Debian's bundle of the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration that checks the server's certificate against the CA bundle `ca`, or
/// the system's; with a client certificate when both files are given. There is no way to turn
/// the check off: a TLS connection whose server is not authenticated protects nothing.
pub fn client_config(
    ca: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let ca = ca.unwrap_or(Path::new(SYSTEM_CAS));
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        // A bundle may hold certificates rustls does not accept as roots; skip those.
        let _ = roots.add(c.with_context(|| format!("parsing {}", ca.display()))?);
    }
    let builder = builder.with_root_certificates(roots);
    let config = match (cert_file, key_file) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .with_context(|| format!("reading {}", c.display()))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(k)
                .with_context(|| format!("reading {}", k.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The same policy for ureq (the ClickHouse sink's HTTP client): the server checked against
/// `ca` or the system's CAs, a client certificate when both files are given, rustls with ring.
pub fn http_client_config(
    ca: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{parse_pem, ClientCert, PemItem, RootCerts, TlsConfig};
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let ca = ca.unwrap_or(Path::new(SYSTEM_CAS));
    let pem = read(ca)?;
    let roots: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        anyhow::bail!("{}: no CA certificate in it", ca.display());
    }
    let client = match (cert_file, key_file) {
        (Some(c), Some(k)) => {
            let pem = read(c)?;
            let chain: Vec<_> = parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let pem = read(k)?;
            let key = parse_pem(&pem)
                .find_map(|item| match item {
                    Ok(PemItem::PrivateKey(k)) => Some(k),
                    _ => None,
                })
                .with_context(|| format!("{}: no private key in it", k.display()))?;
            Some(ClientCert::new_with_certs(&chain, key))
        }
        _ => None,
    };
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(client)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}

/// A server configuration with the certificate chain and key of two PEM files; with `ca`,
/// clients must show a certificate it signed.
pub fn server_config(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let read_certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_file_iter(p)
            .with_context(|| format!("reading {}", p.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificates in {}", p.display()))
    };
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match ca {
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
