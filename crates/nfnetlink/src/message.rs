//! Netlink message framing: the `nlmsghdr` walk over one datagram, the nfnetlink `nfgenmsg`
//! header, and request building.

use crate::attr::{align4, Attrs};
use crate::{Error, Result};

pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_MULTI: u16 = 2;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NFNETLINK_V0: u8 = 0;

/// One netlink message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// nfnetlink subsystem (high byte of the type).
    pub fn subsys(&self) -> u8 {
        (self.kind >> 8) as u8
    }
    /// nfnetlink message type within the subsystem (low byte).
    pub fn subtype(&self) -> u8 {
        self.kind as u8
    }
    /// The nfgenmsg header: (family, version, res_id in host order), and the attributes after it.
    pub fn nfgen(&self) -> Result<(u8, u8, u16, Attrs<'a>)> {
        if self.payload.len() < NFGENMSG_LEN {
            return Err(Error::Malformed("nfnetlink message shorter than nfgenmsg"));
        }
        let p = self.payload;
        Ok((
            p[0],
            p[1],
            u16::from_be_bytes([p[2], p[3]]),
            Attrs::new(&p[NFGENMSG_LEN..]),
        ))
    }
    /// For NLMSG_ERROR: the errno (0 is an acknowledgement).
    pub fn error_code(&self) -> Result<i32> {
        let b = self
            .payload
            .get(..4)
            .ok_or(Error::Malformed("short NLMSG_ERROR"))?;
        Ok(-i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Iterator over the messages of one datagram; a bad length ends it with one error.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        if r.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(Error::Malformed(
                "trailing bytes shorter than nlmsghdr",
            )));
        }
        let len = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize;
        if len < NLMSG_HDRLEN || len > r.len() {
            self.rest = &[];
            return Some(Err(Error::Malformed("nlmsg_len out of bounds")));
        }
        let m = Message {
            kind: u16::from_ne_bytes([r[4], r[5]]),
            flags: u16::from_ne_bytes([r[6], r[7]]),
            seq: u32::from_ne_bytes([r[8], r[9], r[10], r[11]]),
            pid: u32::from_ne_bytes([r[12], r[13], r[14], r[15]]),
            payload: &r[NLMSG_HDRLEN..len],
        };
        self.rest = r.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(m))
    }
}

/// Builds one request message; attributes are appended with `attr`.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub fn new(kind: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Request { buf }
    }
    /// An nfnetlink request: header plus nfgenmsg.
    pub fn nfnl(subsys: u8, msg: u8, flags: u16, seq: u32, family: u8, res_id: u16) -> Self {
        let mut r = Request::new(((subsys as u16) << 8) | msg as u16, flags, seq);
        r.buf.extend_from_slice(&[family, NFNETLINK_V0]);
        r.buf.extend_from_slice(&res_id.to_be_bytes());
        r
    }
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }
    pub fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        crate::attr::put(&mut self.buf, kind, data);
        self
    }
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_length() {
        let mut dgram = Request::nfnl(4, 1, NLM_F_REQUEST, 7, 2, 513)
            .attr(1, &[1])
            .finish();
        dgram.extend(Request::new(NLMSG_DONE, 0, 8).finish());
        let msgs: Vec<_> = Messages::new(&dgram).collect::<Result<_>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[0].subsys(), msgs[0].subtype(), msgs[0].seq),
            (4, 1, 7)
        );
        let (fam, _, res, attrs) = msgs[0].nfgen().unwrap();
        assert_eq!((fam, res), (2, 513));
        assert_eq!(attrs.count(), 1);
        assert_eq!(msgs[1].kind, NLMSG_DONE);
        let mut bad = dgram.clone();
        bad[0] = 255;
        let r: Vec<_> = Messages::new(&bad).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
    }

    /// Datagrams cut short: fewer bytes than a header, a length below the header's, a length
    /// past the datagram; each ends the walk with one error, after the messages before it.
    #[test]
    fn short_headers_and_lengths() {
        let ok = Request::new(NLMSG_DONE, 0, 1).finish();
        for cut in 1..NLMSG_HDRLEN {
            let mut d = ok.clone();
            d.extend_from_slice(&ok[..cut]);
            let r: Vec<_> = Messages::new(&d).collect();
            assert_eq!(r.len(), 2, "cut {cut}");
            assert!(r[0].is_ok() && r[1].is_err(), "cut {cut}");
        }
        for len in [0u32, 4, 15] {
            let mut d = ok.clone();
            d[..4].copy_from_slice(&len.to_ne_bytes());
            let r: Vec<_> = Messages::new(&d).collect();
            assert_eq!(r.len(), 1);
            assert!(r[0].is_err(), "nlmsg_len {len}");
        }
        // A message shorter than its nfgenmsg.
        let m = Messages::new(&ok).next().unwrap().unwrap();
        assert!(m.nfgen().is_err());
    }

    /// NLMSG_ERROR: the errno the kernel sends (negative), 0 for an acknowledgement, and an
    /// error when the payload is too short to hold it.
    #[test]
    fn error_messages() {
        let err = |code: i32| {
            Request::new(NLMSG_ERROR, 0, 3)
                .raw(&code.to_ne_bytes())
                .finish()
        };
        let m = |d: &[u8]| Messages::new(d).next().unwrap().unwrap().error_code();
        assert_eq!(m(&err(-libc_ebusy())).unwrap(), libc_ebusy());
        assert_eq!(m(&err(0)).unwrap(), 0);
        let short = Request::new(NLMSG_ERROR, 0, 3).finish();
        assert!(m(&short).is_err());
    }

    /// EBUSY (16), as the kernel answers a bind to an NFLOG group another process holds.
    fn libc_ebusy() -> i32 {
        16
    }
}
