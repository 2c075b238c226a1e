//! Just enough HTTP/1.1 for ClickHouse's interface: one POST per request, body sent with its
//! length, the answer read to its end (Content-Length, chunked, or close).

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
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

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

pub struct Client {
    pub endpoint: Endpoint,
    pub auth: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
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

impl Client {
    fn connect(&self) -> Result<Box<dyn Stream>> {
        let addr = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to nothing", self.endpoint.host))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        Ok(match &self.tls {
            None => Box::new(s),
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from(self.endpoint.host.clone())?;
                let c = rustls::ClientConnection::new(cfg.clone(), name)?;
                Box::new(rustls::StreamOwned::new(c, s))
            }
        })
    }

    /// Runs `query` with `body` after it (the data of an INSERT); returns the answer's body.
    /// A transport failure is `Unreachable`; a refusal carries ClickHouse's message.
    pub fn post(&self, query: &str, body: &[u8]) -> Result<Vec<u8>> {
        let mut s = self.connect().map_err(|e| {
            Unreachable(format!(
                "{}:{}: {e:#}",
                self.endpoint.host, self.endpoint.port
            ))
        })?;
        let mut head = format!(
            "POST /?query={} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            percent_encode(query),
            self.endpoint.host,
            body.len()
        );
        if let Some(a) = &self.auth {
            head.push_str(&format!("Authorization: Basic {a}\r\n"));
        }
        head.push_str("\r\n");
        let sent = s
            .write_all(head.as_bytes())
            .and_then(|_| s.write_all(body))
            .and_then(|_| s.flush());
        if let Err(e) = sent {
            return Err(Unreachable(format!("sending: {e}")).into());
        }
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status)
            .map_err(|e| Unreachable(format!("reading the answer: {e}")))?;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Unreachable(format!("not an HTTP answer: {status:?}")))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut h = String::new();
            r.read_line(&mut h).context("reading headers")?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                    _ => {}
                }
            }
        }
        // An answer is a status or a few rows; a length beyond this is a broken peer, not data.
        const MAX_ANSWER: usize = 64 << 20;
        let mut answer = Vec::new();
        if chunked {
            loop {
                let mut line = String::new();
                r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| anyhow!("bad chunk size {line:?}"))?;
                if n == 0 {
                    break;
                }
                if answer.len() + n > MAX_ANSWER {
                    bail!("answer larger than {MAX_ANSWER} bytes");
                }
                let start = answer.len();
                answer.resize(start + n, 0);
                r.read_exact(&mut answer[start..])?;
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else if let Some(n) = length {
            if n > MAX_ANSWER {
                bail!("answer larger than {MAX_ANSWER} bytes");
            }
            answer.resize(n, 0);
            r.read_exact(&mut answer)?;
        } else {
            r.take(MAX_ANSWER as u64).read_to_end(&mut answer)?;
        }
        if code != 200 {
            bail!(
                "ClickHouse answered {code}: {}",
                String::from_utf8_lossy(&answer).trim()
            );
        }
        Ok(answer)
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
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 4096];
            let _ = c.read(&mut b);
            let _ = c.write_all(reply);
        });
        Client {
            endpoint: Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            auth: None,
            tls: None,
        }
    }

    #[test]
    fn broken_answers_are_errors() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n",
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
