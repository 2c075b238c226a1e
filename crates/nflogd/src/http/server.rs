//! A small HTTP/1.1 server for the dashboard, the API and the metrics: read-only (GET and
//! HEAD), one thread per connection up to a bound, one request per connection, optional TLS
//! and basic authentication.
//!
//! Why not tiny_http (which served /metrics before): its TLS is tied to rustls 0.20 and its
//! server hands out requests one at a time from one thread, while a live tail holds its
//! connection open. Requests are parsed by httparse; the rest is a few lines.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 64;
/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// A request as handlers see it.
pub struct Request {
    pub path: String,
    /// Query parameters, decoded.
    pub query: Vec<(String, String)>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a streamed body as it comes (server-sent events), until the writer fails or it
/// returns.
pub type Streamer = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

pub enum Body {
    Bytes(Vec<u8>),
    Stream(Streamer),
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: Body::Bytes(body.into()),
            headers: Vec::new(),
        }
    }

    pub fn json(v: &serde_json::Value) -> Response {
        Response::new(200, "application/json", v.to_string())
    }

    pub fn error(status: u16, message: &str) -> Response {
        Response::new(
            status,
            "application/json",
            serde_json::json!({ "error": message }).to_string(),
        )
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct Settings {
    pub address: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The `Authorization` value that lets a request in (`Basic base64(user:password)`).
    pub authorization: Option<String>,
    pub handler: Arc<Handler>,
    /// Thread names.
    pub name: &'static str,
}

/// Listens and serves from threads of its own until shutdown.
pub fn serve(s: Settings) -> Result<SocketAddr> {
    let listener =
        TcpListener::bind(s.address).with_context(|| format!("listening on {}", s.address))?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let s = Arc::new(s);
    std::thread::Builder::new()
        .name(s.name.into())
        .spawn(move || {
            while !crate::signals::shutdown_requested() {
                if !readable(&listener, 250) {
                    continue;
                }
                let conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => continue,
                };
                let _ = conn.set_nonblocking(false);
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    let mut c = conn;
                    let _ = c.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                let (s, active) = (s.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-conn", s.name))
                    .spawn(move || {
                        if let Err(e) = connection(&s, conn) {
                            tracing::debug!("http: {e:#}");
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    tracing::warn!("http: cannot start a thread for a connection");
                }
            }
        })?;
    Ok(local)
}

/// Waits up to `ms` for a connection to accept (so that shutdown is noticed, without a sleep
/// that every request would wait out).
fn readable(listener: &TcpListener, ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, ms) > 0 }
}

fn connection(s: &Settings, conn: TcpStream) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let _ = conn.set_nodelay(true);
    match &s.tls {
        Some(tls) => {
            let session = rustls::ServerConnection::new(tls.clone())?;
            let mut stream = rustls::StreamOwned::new(session, conn);
            exchange(s, &mut stream)?;
            stream.conn.send_close_notify();
            let _ = stream.flush();
            Ok(())
        }
        None => {
            let mut c = conn;
            exchange(s, &mut c)
        }
    }
}

/// Reads one request and writes its response.
fn exchange(s: &Settings, stream: &mut (impl Read + Write)) -> Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let (response, head_only) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // closed before a whole request
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break (answer(s, &req), req.method == Some("HEAD"))
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                break (Response::error(431, "request head too large"), false)
            }
            Err(e) => break (Response::error(400, &format!("bad request: {e}")), false),
        }
    };
    write_response(stream, response, head_only)
}

fn answer(s: &Settings, req: &httparse::Request) -> Response {
    let method = req.method.unwrap_or("");
    if method != "GET" && method != "HEAD" {
        let mut r = Response::error(405, "read-only: GET and HEAD only");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if let Some(want) = &s.authorization {
        let given = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            .map(|h| h.value)
            .unwrap_or(b"");
        if !same(given, want.as_bytes()) {
            let mut r = Response::error(401, "authentication required");
            r.headers.push((
                "WWW-Authenticate",
                "Basic realm=\"nflogd\", charset=\"UTF-8\"".into(),
            ));
            return r;
        }
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        path: path.to_string(),
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    (s.handler)(&request)
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guessed password was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_response(stream: &mut impl Write, r: Response, head_only: bool) -> Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
        r.status,
        reason(r.status),
        r.content_type
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match r.body {
        Body::Bytes(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            stream.write_all(head.as_bytes())?;
            if !head_only {
                stream.write_all(&b)?;
            }
            stream.flush()?;
        }
        Body::Stream(f) => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            if !head_only {
                f(stream)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparing_secrets() {
        assert!(same(b"Basic abc", b"Basic abc"));
        assert!(!same(b"Basic abd", b"Basic abc"));
        assert!(!same(b"Basic ab", b"Basic abc"));
    }
}
