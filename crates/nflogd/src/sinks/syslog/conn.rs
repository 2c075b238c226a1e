//! A connection to the receiver: a UDP socket, or a TCP stream (plain or TLS) that counts the
//! bytes it puts on the wire, so that what the receiver has read can be told from the socket.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A TCP stream counting the bytes written to it (TLS records included).
pub struct Wire {
    pub sock: TcpStream,
    pub written: u64,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.sock.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

pub enum Conn {
    Udp(UdpSocket),
    Tcp(Wire),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Wire>>),
}

impl Conn {
    pub fn wire(&self) -> Option<&Wire> {
        match self {
            Conn::Udp(_) => None,
            Conn::Tcp(w) => Some(w),
            Conn::Tls(s) => Some(s.get_ref()),
        }
    }

    /// A stream whose peer closed reads end-of-file: find out before writing into it, so a
    /// batch is not written into a dead connection.
    pub fn peer_closed(&self) -> bool {
        let Some(w) = self.wire() else { return false };
        let s = &w.sock;
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        let closed = matches!(s.peek(&mut b), Ok(0)) || matches!(s.take_error(), Ok(Some(_)));
        let _ = s.set_nonblocking(false);
        closed
    }

    /// Writes framed bytes: the whole buffer on a stream, each message as a datagram on UDP.
    pub fn send(&mut self, buf: &[u8], messages: &[(usize, usize)]) -> std::io::Result<()> {
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

    /// Reads what the receiver sent, waiting at most `wait` (zero: only what has arrived);
    /// `Ok(0)` is its end of stream and nothing in time is `Ok(None)`.
    pub fn read(&mut self, buf: &mut [u8], wait: Duration) -> std::io::Result<Option<usize>> {
        let Some(w) = self.wire() else {
            return Ok(None);
        };
        let look = wait.is_zero();
        if look {
            w.sock.set_nonblocking(true)?;
        } else {
            w.sock.set_read_timeout(Some(wait))?;
        }
        let r = match self {
            Conn::Udp(_) => return Ok(None),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        };
        if look {
            if let Some(w) = self.wire() {
                w.sock.set_nonblocking(false)?;
            }
        }
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            // A peer that closed without TLS's close_notify has still closed.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Closes our side and waits until `deadline` for the receiver to close its own, which it
    /// does once it has read everything before our close. True if it did: all that was sent
    /// was read.
    pub fn close_and_wait(&mut self, deadline: Instant) -> bool {
        match self {
            Conn::Udp(_) => return false,
            Conn::Tcp(w) => {
                let _ = w.sock.shutdown(std::net::Shutdown::Write);
            }
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                if s.flush().is_err() {
                    return false;
                }
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.read(&mut buf, left) {
                Ok(Some(0)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

/// Asks the kernel to probe an idle connection every second: the peer's answer carries its
/// current receive window, which tells us it has read what we sent (see `ReadProgress`).
pub fn probe_when_idle(sock: &TcpStream) {
    let fd = sock.as_raw_fd();
    let set = |level, name, v: libc::c_int| unsafe {
        // SAFETY: setsockopt on a socket we own, with a pointer to an int of the given size.
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1);
}

/// What the kernel knows of a stream's progress: bytes not yet acknowledged by the peer, and
/// the receive window the peer last advertised (None on kernels whose TCP_INFO lacks it).
fn socket_progress(sock: &TcpStream) -> Option<(u64, Option<u32>)> {
    let fd = sock.as_raw_fd();
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut outq) } != 0 {
        return None;
    }
    // struct tcp_info: tcpi_snd_wnd, "peer's advertised receive window", is at byte 228
    // (Linux 6.2 and later; older kernels return a shorter struct).
    const SND_WND: usize = 228;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info` and sets `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    let wnd = (r == 0 && len as usize >= SND_WND + 4).then(|| {
        u32::from_ne_bytes([
            info[SND_WND],
            info[SND_WND + 1],
            info[SND_WND + 2],
            info[SND_WND + 3],
        ])
    });
    Some((outq.max(0) as u64, wnd))
}

/// How long a byte must be known read before it counts as taken: the receiver's time to pass
/// what it read on (rsyslog's queue to its action).
const SETTLE: Duration = Duration::from_secs(1);

/// Plain TCP syslog has no acknowledgement, so what the receiving program has read is inferred
/// from the socket: the peer's TCP acknowledged it, and the peer's receive window is back to
/// its largest, i.e. nothing waits unread in its buffer. A window short of its largest counts
/// twice its shortfall as unread (the kernel advertises a fraction of its free buffer). What
/// is sent and not yet known read (with `SETTLE` to spare) is sent again after a break.
#[derive(Default)]
pub struct ReadProgress {
    largest_window: u32,
    /// (when, bytes known read then), oldest first.
    seen: std::collections::VecDeque<(Instant, u64)>,
    settled: u64,
}

impl ReadProgress {
    /// Bytes of the stream (counted from the connection's start) the receiver has read, as
    /// far as the socket can tell, `SETTLE` ago.
    pub fn read_upto(&mut self, wire: &Wire) -> u64 {
        let Some((outq, wnd)) = socket_progress(&wire.sock) else {
            return self.settled;
        };
        let acked = wire.written.saturating_sub(outq);
        let unread = wnd.map_or(0, |w| {
            self.largest_window = self.largest_window.max(w);
            2 * u64::from(self.largest_window - w)
        });
        let now = Instant::now();
        let read = acked.saturating_sub(unread);
        if self.seen.back().is_none_or(|&(_, r)| r < read) {
            self.seen.push_back((now, read));
        }
        while let Some(&(t, r)) = self.seen.front() {
            if now.duration_since(t) < SETTLE {
                break;
            }
            self.settled = self.settled.max(r);
            self.seen.pop_front();
        }
        self.settled
    }
}
