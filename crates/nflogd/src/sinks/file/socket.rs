//! A file sink's records sent to a socket instead, as ulogd2's JSON output does in its socket
//! modes: `tcp://HOST:PORT` and `unix:PATH` get the lines as a stream, `udp://HOST:PORT` one
//! datagram per line. A peer that is away is connected to again at the next write; what it
//! could not take stays in the sink's buffer (and its queue) meanwhile.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(String),
    Udp(String),
    Unix(String),
}

/// The socket a path names, if it names one.
pub fn target(path: &str) -> Option<Target> {
    if let Some(a) = path.strip_prefix("tcp://") {
        Some(Target::Tcp(a.to_string()))
    } else if let Some(a) = path.strip_prefix("udp://") {
        Some(Target::Udp(a.to_string()))
    } else {
        path.strip_prefix("unix:")
            .map(|p| Target::Unix(p.to_string()))
    }
}

pub enum Peer {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
}

fn resolve(addr: &str) -> io::Result<std::net::SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))
}

/// Writes block at most this long: a peer that stops reading holds the sink, not nflogd.
const TIMEOUT: Duration = Duration::from_secs(5);

pub fn connect(t: &Target) -> io::Result<Peer> {
    Ok(match t {
        Target::Tcp(a) => {
            let s = TcpStream::connect_timeout(&resolve(a)?, TIMEOUT)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Peer::Tcp(s)
        }
        Target::Udp(a) => {
            let to = resolve(a)?;
            let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let s = UdpSocket::bind(any)?;
            s.connect(to)?;
            Peer::Udp(s)
        }
        Target::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Peer::Unix(s)
        }
    })
}

impl Peer {
    /// Writes what it can of `b`; a datagram socket sends its first line, whole.
    pub fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Peer::Tcp(s) => s.write(b),
            Peer::Unix(s) => s.write(b),
            Peer::Udp(s) => {
                let end = b
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |i| i + 1);
                match s.send(&b[..end]) {
                    Ok(_) => Ok(end),
                    // Nobody listening (ICMP port unreachable): the datagram is gone either way,
                    // as with any UDP receiver that is down.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(end),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_sockets_or_files() {
        assert_eq!(
            target("tcp://127.0.0.1:5140"),
            Some(Target::Tcp("127.0.0.1:5140".into()))
        );
        assert_eq!(
            target("udp://[::1]:5140"),
            Some(Target::Udp("[::1]:5140".into()))
        );
        assert_eq!(
            target("unix:/run/x.sock"),
            Some(Target::Unix("/run/x.sock".into()))
        );
        assert_eq!(target("/var/log/nflogd/events.json"), None);
    }

    #[test]
    fn udp_sends_a_datagram_per_line() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let t = Target::Udp(rx.local_addr().unwrap().to_string());
        let mut p = connect(&t).unwrap();
        let buf = b"{\"a\":1}\n{\"b\":2}\n";
        let mut done = 0;
        while done < buf.len() {
            done += p.write(&buf[done..]).unwrap();
        }
        let mut got = [0u8; 64];
        for want in ["{\"a\":1}\n", "{\"b\":2}\n"] {
            let n = rx.recv(&mut got).unwrap();
            assert_eq!(&got[..n], want.as_bytes());
        }
    }
}
