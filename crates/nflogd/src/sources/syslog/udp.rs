//! Receiving syslog datagrams with the kernel's count of those it dropped: SO_RXQ_OVFL puts the
//! socket's drop counter (datagrams lost because the receive buffer was full) beside each
//! datagram, so a UDP source reports what it never saw instead of losing it silently.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Asks the kernel to report drops with each datagram.
pub fn report_drops(sock: &UdpSocket) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram: its length, its sender, and the socket's drop counter when the kernel sent
/// it (a running total, wrapping at 2^32).
pub fn recv(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr, Option<u32>)> {
    // SAFETY: every pointer handed to recvmsg points into a live local of the stated size, and
    // the control messages are walked with the kernel's own macros within `control`.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut control = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut drops = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        let peer = match addr.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(&addr as *const _ as *const libc::sockaddr_in);
                SocketAddr::from((
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let a = &*(&addr as *const _ as *const libc::sockaddr_in6);
                SocketAddr::from((a.sin6_addr.s6_addr, u16::from_be(a.sin6_port)))
            }
            _ => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        Ok((n as usize, peer, drops))
    }
}

/// The socket's drop counter now (SO_MEMINFO): drops after the last datagram read are seen no
/// other way.
pub fn drops_now(sock: &UdpSocket) -> Option<u32> {
    // SO_MEMINFO (55, not in libc for every architecture) fills SK_MEMINFO_VARS u32s.
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = libc::SK_MEMINFO_DROPS as usize;
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && len as usize > SK_MEMINFO_DROPS * 4).then_some(info[SK_MEMINFO_DROPS])
}
