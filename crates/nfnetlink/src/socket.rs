//! A netlink socket over libc.
//!
//! Written on libc rather than `netlink-sys` because the reader needs what that crate does not
//! expose: SO_RCVBUFFORCE (buffers above rmem_max), MSG_TRUNC to detect a datagram larger than
//! the buffer, and ENOBUFS reported as a value rather than folded into an I/O error.

use crate::message::{Messages, NLMSG_ERROR};
use crate::{Error, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub const NETLINK_ROUTE: i32 = 0;
pub const NETLINK_NETFILTER: i32 = 12;
const SOL_NETLINK: i32 = 270;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;
const NETLINK_NO_ENOBUFS: i32 = 5;

/// What `recv_many` got.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvMany {
    /// This many datagrams.
    Data(usize),
    /// ENOBUFS: the kernel dropped messages for this socket.
    Overrun,
    /// Nothing within the receive timeout (or nothing waiting, when nonblocking).
    Timeout,
}

/// What one receive returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A datagram of this many bytes; `truncated` when it was larger than the buffer.
    Data { len: usize, truncated: bool },
    /// The socket buffer overflowed and the kernel dropped messages (ENOBUFS).
    Overrun,
    /// The receive timeout passed with nothing to read.
    Timeout,
}

pub struct NetlinkSocket {
    fd: OwnedFd,
    portid: u32,
    seq: u32,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl NetlinkSocket {
    /// Opens and binds a socket of the given netlink protocol, with a kernel-chosen port id.
    pub fn open(protocol: i32) -> Result<Self> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zero is a valid initial value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_nl of the given length.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                len,
            )
        })?;
        let mut got: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut glen = len;
        // SAFETY: got is a writable sockaddr_nl and glen its size.
        cvt(unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                &mut got as *mut _ as *mut libc::sockaddr,
                &mut glen,
            )
        })?;
        Ok(NetlinkSocket {
            fd,
            portid: got.nl_pid,
            seq: 1,
        })
    }

    pub fn portid(&self) -> u32 {
        self.portid
    }

    fn setsockopt<T>(&self, level: i32, name: i32, value: T) -> io::Result<()> {
        // SAFETY: value lives for the call and its size is passed.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                &value as *const T as *const libc::c_void,
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Sets the receive buffer, past `net.core.rmem_max` when the process may (CAP_NET_ADMIN).
    /// Returns the size the kernel reports afterwards (it doubles the request for bookkeeping).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<usize> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        if self
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
            .is_err()
        {
            self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, v)?;
        }
        let mut out: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: out is a writable int and len its size.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &mut out as *mut _ as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok(out as usize)
    }

    /// Sets the send buffer, past `net.core.wmem_max` when the process may: a netlink message
    /// (an nf_tables batch of many elements) must fit in it whole.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        if self
            .setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v)
            .is_err()
        {
            self.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, v)?;
        }
        Ok(())
    }

    pub fn set_recv_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv)
    }

    /// Joins a multicast group (rtnetlink link events, conntrack events).
    pub fn add_membership(&self, group: u32) -> io::Result<()> {
        self.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as libc::c_int)
    }

    /// Tells the kernel not to report overruns (only sensible with sequence-gap accounting).
    /// Attaches a classic BPF program (SO_ATTACH_FILTER); the kernel checks it.
    pub fn attach_filter(&self, program: &[crate::ctfilter::SockFilter]) -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, prog)
    }

    /// Acknowledgements without a copy of the request: a big batch's answers then fit the
    /// receive buffer.
    pub fn set_cap_ack(&self) -> io::Result<()> {
        const NETLINK_CAP_ACK: libc::c_int = 10;
        self.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1 as libc::c_int)
    }

    pub fn set_no_enobufs(&self, on: bool) -> io::Result<()> {
        self.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, on as libc::c_int)
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl zeroed = the kernel (pid 0).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and addr are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a datagram is ready or `timeout` passes; true when one is ready.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(n > 0)
    }

    /// Receives one datagram into `buf`.
    pub fn recv(&self, buf: &mut [u8], nonblocking: bool) -> io::Result<Recv> {
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    flags,
                )
            };
            if n >= 0 {
                let n = n as usize;
                return Ok(Recv::Data {
                    len: n.min(buf.len()),
                    truncated: n > buf.len(),
                });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => return Ok(Recv::Overrun),
                Some(libc::EAGAIN) => return Ok(Recv::Timeout),
                _ => return Err(e),
            }
        }
    }

    /// Receives up to `lens.len()` datagrams with one system call (recvmmsg): datagram `i` lands
    /// in `buf[i * slot..]` and its length in `lens[i]`. Waits for the first unless
    /// `nonblocking`; returns how many came (a datagram longer than `slot` is cut to it).
    pub fn recv_many(
        &self,
        buf: &mut [u8],
        slot: usize,
        lens: &mut [usize],
        nonblocking: bool,
    ) -> io::Result<RecvMany> {
        let n = lens.len().min(buf.len() / slot.max(1));
        let mut iovs: Vec<libc::iovec> = (0..n)
            .map(|i| libc::iovec {
                iov_base: buf[i * slot..].as_mut_ptr() as *mut libc::c_void,
                iov_len: slot,
            })
            .collect();
        // SAFETY: zeroed mmsghdr is a valid "no name, no control" header.
        let mut hdrs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: the headers point at iovecs that point into buf, all alive for the call.
            let got = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if got >= 0 {
                let got = got as usize;
                for (l, h) in lens.iter_mut().zip(&hdrs).take(got) {
                    *l = (h.msg_len as usize).min(slot);
                }
                return Ok(RecvMany::Data(got));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => return Ok(RecvMany::Overrun),
                Some(libc::EAGAIN) => return Ok(RecvMany::Timeout),
                _ => return Err(e),
            }
        }
    }

    /// Waits for the acknowledgements of requests numbered `first` to `first + count - 1`
    /// (other traffic on the socket is skipped) and calls `each(index, errno)` for each, errno
    /// 0 for success. `each` returns false to stop waiting (an error after which the kernel
    /// answers nothing more).
    pub fn wait_acks(
        &self,
        first: u32,
        count: usize,
        mut each: impl FnMut(usize, i32) -> bool,
    ) -> Result<()> {
        let mut waiting = count;
        let mut buf = vec![0u8; 1 << 16];
        while waiting > 0 {
            if !self.wait_readable(Duration::from_secs(5))? {
                return Err(Error::Malformed("no acknowledgement from the kernel"));
            }
            let len = match self.recv(&mut buf, true)? {
                Recv::Data { len, .. } => len,
                Recv::Overrun => return Err(Error::Malformed("acknowledgements were lost")),
                Recv::Timeout => continue,
            };
            for m in Messages::new(&buf[..len]) {
                let m = m?;
                let index = m.seq.wrapping_sub(first) as usize;
                if m.kind != NLMSG_ERROR || index >= count {
                    continue;
                }
                waiting -= 1;
                if !each(index, m.error_code()?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Sends a request flagged NLM_F_ACK and waits for its acknowledgement, skipping other
    /// traffic on the socket (packets already queued for this port).
    pub fn request_ack(&mut self, msg: &[u8], seq: u32) -> Result<()> {
        self.send(msg)?;
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..10_000 {
            match self.recv(&mut buf, false)? {
                Recv::Data { len, .. } => {
                    for m in Messages::new(&buf[..len]) {
                        let m = m?;
                        if m.kind == NLMSG_ERROR && m.seq == seq {
                            return match m.error_code()? {
                                0 => Ok(()),
                                errno => Err(Error::Kernel { errno }),
                            };
                        }
                    }
                }
                Recv::Overrun => continue,
                Recv::Timeout => {
                    return Err(Error::Malformed("no acknowledgement from the kernel"))
                }
            }
        }
        Err(Error::Malformed("no acknowledgement from the kernel"))
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sends an nfnetlink dump request (`subsys`/`msg`, all families) and calls `each` for every
/// message of the answer until NLMSG_DONE. A message that does not frame ends that datagram.
pub fn dump(
    sock: &mut NetlinkSocket,
    buf: &mut [u8],
    subsys: u8,
    msg: u8,
    mut each: impl FnMut(&crate::Message),
) -> Result<()> {
    use crate::message::{Request, NLMSG_DONE, NLM_F_DUMP, NLM_F_REQUEST};
    let seq = sock.next_seq();
    sock.send(&Request::nfnl(subsys, msg, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, 0).finish())?;
    loop {
        let len = match sock.recv(buf, false)? {
            Recv::Data { len, .. } => len,
            Recv::Overrun => {
                return Err(Error::Kernel {
                    errno: libc::ENOBUFS,
                })
            }
            Recv::Timeout => return Err(Error::Io(io::ErrorKind::TimedOut.into())),
        };
        for m in Messages::new(&buf[..len]) {
            let Ok(m) = m else { break };
            if m.seq != seq {
                continue;
            }
            match m.kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => match m.error_code()? {
                    0 => {}
                    errno => return Err(Error::Kernel { errno }),
                },
                _ => each(&m),
            }
        }
    }
}
