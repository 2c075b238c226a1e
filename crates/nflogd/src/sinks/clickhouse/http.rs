//! ClickHouse's HTTP interface through ureq: one POST per query (the rows of an INSERT as its
//! body), connections kept alive between them, answers read to a bounded size.

use anyhow::{anyhow, bail, Result};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("url: `{url}` must start with http:// or https://");
        };
        let hostport = rest.split('/').next().unwrap_or("");
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().map_err(|_| anyhow!("url: bad port in `{url}`"))?,
            ),
            _ => (
                hostport.trim_matches(['[', ']']).to_string(),
                if tls { 8443 } else { 8123 },
            ),
        };
        if host.is_empty() {
            bail!("url: no host in `{url}`");
        }
        Ok(Endpoint { tls, host, port })
    }
}

/// A failure to reach the server, as against an answer that refuses the request.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

pub struct Client {
    endpoint: Endpoint,
    auth: Option<String>,
    agent: ureq::Agent,
}

fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// An answer is a status or a few rows; a body beyond this is a broken peer, not data.
const MAX_ANSWER: u64 = 64 << 20;

impl Client {
    /// A client of `endpoint`, with HTTP basic `auth` (base64 of `user:password`), checking an
    /// https server with `tls`.
    pub fn new(
        endpoint: Endpoint,
        auth: Option<String>,
        tls: Option<ureq::tls::TlsConfig>,
    ) -> Client {
        let mut config = ureq::Agent::config_builder()
            // ClickHouse's refusals come with a body that says why: read it, not an error.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(120)))
            .max_response_header_size(64 << 10);
        if let Some(t) = tls {
            config = config.tls_config(t);
        }
        Client {
            endpoint,
            auth,
            agent: config.build().new_agent(),
        }
    }

    /// Runs `query` with `body` after it (the data of an INSERT); returns the answer's body.
    /// A transport failure is `Unreachable`; a refusal carries ClickHouse's message.
    pub fn post(&self, query: &str, body: &[u8]) -> Result<Vec<u8>> {
        let e = &self.endpoint;
        let host = if e.host.contains(':') {
            format!("[{}]", e.host)
        } else {
            e.host.clone()
        };
        let url = format!(
            "{}://{host}:{}/?query={}",
            if e.tls { "https" } else { "http" },
            e.port,
            percent_encode(query)
        );
        let mut req = self.agent.post(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", &format!("Basic {a}"));
        }
        let mut answer = req
            .send(body)
            .map_err(|err| Unreachable(format!("{}:{}: {err}", e.host, e.port)))?;
        let code = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|err| anyhow!("reading ClickHouse's answer: {err}"))?;
        if code != 200 {
            bail!(
                "ClickHouse answered {code}: {}",
                String::from_utf8_lossy(&text).trim()
            );
        }
        Ok(text)
    }

    pub fn query(&self, q: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.post(q, b"")?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:18123").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (false, "127.0.0.1", 18123)
        );
        let e = Endpoint::parse("https://ch.example.net/").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (true, "ch.example.net", 8443)
        );
        let e = Endpoint::parse("http://[::1]:8123").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8123));
        assert!(Endpoint::parse("ch:8123").is_err());
    }

    /// A peer that answers `reply` to one request.
    fn answering(reply: &'static [u8]) -> Client {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 4096];
            let _ = c.read(&mut b);
            let _ = c.write_all(reply);
        });
        Client::new(
            Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            None,
            None,
        )
    }

    #[test]
    fn broken_answers_are_errors() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 500 Internal\r\nContent-Length: 5\r\n\r\nnope!",
            b"",
        ] {
            assert!(answering(reply).post("SELECT 1", b"").is_err(), "{reply:?}");
        }
        let ok = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n1\n");
        assert_eq!(ok.post("SELECT 1", b"").unwrap(), b"1\n");
    }

    #[test]
    fn queries_are_escaped() {
        assert_eq!(percent_encode("SELECT 1+1 & x"), "SELECT%201%2B1%20%26%20x");
    }
}
