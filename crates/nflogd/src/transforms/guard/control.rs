//! `nflogd guard list|ban|unban` against the running daemon: one JSON request a line on a
//! UNIX socket (mode 0600: root's), answered by the guard's own thread.

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    List,
    /// `address` is an address or a prefix; `seconds` the ban's length (else `ban_time`).
    Ban {
        address: String,
        seconds: Option<u64>,
    },
    Unban {
        address: String,
    },
}

/// A request and where its answer goes.
pub type Call = (Request, Sender<serde_json::Value>);

/// Serves `path` until shutdown; requests go to `to_guard`.
pub fn serve(path: &Path, to_guard: Sender<Call>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by an earlier run is replaced; anything else at the path is not.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("guard-control".into())
        .spawn(move || {
            while !crate::signals::shutdown_requested() {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(conn, &to_guard);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            let _ = std::fs::remove_file(&path);
        })?;
    Ok(())
}

fn answer(conn: UnixStream, to_guard: &Sender<Call>) -> Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&conn).take(64 * 1024)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            to_guard.send((req, tx))?;
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| serde_json::json!({"error": "the guard did not answer"}))
        }
        Err(e) => serde_json::json!({"error": format!("bad request: {e}")}),
    };
    let mut w = &conn;
    writeln!(w, "{reply}")?;
    Ok(())
}

/// Sends one request and returns the answer (the client side).
pub fn call(path: &Path, req: &Request) -> Result<serde_json::Value> {
    let mut conn = UnixStream::connect(path)
        .with_context(|| format!("connecting to {} (is nflogd running?)", path.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(15)))?;
    writeln!(conn, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).context("reading the answer")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("{e}");
    }
    Ok(v)
}

/// The guard's end: requests waiting to be answered.
pub type Inbox = Receiver<Call>;
