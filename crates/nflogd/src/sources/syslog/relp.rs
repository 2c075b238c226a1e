//! The server side of RELP: a session's frames in, its messages handed on, and the answers
//! written once the pipeline has taken those messages, so a client such as rsyslog's omrelp
//! removes an event from its queue only when nflogd has it.

use crate::relp::{self, Parsed};
use anyhow::{anyhow, Result};
use std::io::Write;

pub struct Server {
    buf: Vec<u8>,
    /// The longest message kept; longer ones are cut there (and counted in `oversized`).
    max: usize,
    pub oversized: u64,
    opened: bool,
    /// Answers to write once the messages before them are taken.
    out: Vec<u8>,
}

impl Server {
    pub fn new(max: usize) -> Server {
        Server {
            buf: Vec::new(),
            max,
            oversized: 0,
            opened: false,
            out: Vec::new(),
        }
    }

    /// Takes bytes read from the client: hands each `syslog` message to `line` and prepares
    /// its answer. True once the client closed the session.
    pub fn feed(&mut self, data: &[u8], line: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let mut closed = false;
        // A frame may be up to four times the message limit (it is cut to the limit); past
        // that the session is ended rather than buffered without bound.
        let limit = self.max.saturating_mul(4).max(128 << 10);
        while !closed {
            let (txnr, command, data, n) = match relp::parse(&self.buf[at..], limit) {
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => return Err(anyhow!("not a RELP frame: {why}")),
                Parsed::Frame(f, n) => (f.txnr, f.command, f.data, n),
            };
            let answer: &[&[u8]] = match (command, self.opened) {
                (b"open", false) => {
                    self.opened = true;
                    &[b"200 OK\n", relp::OFFERS.as_bytes()]
                }
                (b"open", true) => &[b"500 the session is open already"],
                (b"syslog", true) => {
                    if data.len() > self.max {
                        self.oversized += 1;
                    }
                    line(&data[..data.len().min(self.max)]);
                    &[b"200 OK"]
                }
                (b"close", _) => {
                    closed = true;
                    &[]
                }
                (_, false) => &[b"500 the session is not open"],
                _ => &[b"500 command not supported"],
            };
            relp::write_frame(&mut self.out, txnr, "rsp", answer);
            at += n;
        }
        self.buf.drain(..at);
        Ok(closed)
    }

    /// Writes the answers prepared so far.
    pub fn answer(&mut self, w: &mut impl Write) -> Result<()> {
        if !self.out.is_empty() {
            w.write_all(&self.out)?;
            w.flush()?;
            self.out.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(input: &[u8], max: usize) -> (Result<bool>, Vec<String>, String) {
        let mut s = Server::new(max);
        let mut got = Vec::new();
        let r = s.feed(input, &mut |m| {
            got.push(String::from_utf8_lossy(m).into_owned())
        });
        let mut out = Vec::new();
        s.answer(&mut out).unwrap();
        (r, got, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_session_as_omrelp_runs_it() {
        let mut input = Vec::new();
        relp::write_frame(&mut input, 1, "open", &[b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"]);
        relp::write_frame(
            &mut input,
            2,
            "syslog",
            &[b"<4>Nov 23 10:00:00 fw kernel: IN=eth0"],
        );
        relp::write_frame(&mut input, 3, "syslog", &[b"<4>too long for the limit"]);
        relp::write_frame(&mut input, 4, "close", &[]);
        let (r, got, out) = session(&input, 20);
        assert!(r.unwrap(), "the client closed");
        assert_eq!(got, ["<4>Nov 23 10:00:00 f", "<4>too long for the "]);
        let want = format!(
            "1 rsp {} 200 OK\n{}\n2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 0\n",
            7 + relp::OFFERS.len(),
            relp::OFFERS
        );
        assert_eq!(out, want);
    }

    /// A frame cut anywhere waits for the rest; nothing is answered before the session opens.
    #[test]
    fn cut_frames_and_a_session_not_opened() {
        let mut s = Server::new(1000);
        let mut got = 0;
        let f = b"1 open 0\n2 syslog 5 hello\n";
        for b in f {
            assert!(!s.feed(&[*b], &mut |_| got += 1).unwrap());
        }
        assert_eq!(got, 1);
        let (r, got, out) = session(b"1 syslog 5 hello\n", 1000);
        assert!(!r.unwrap());
        assert!(got.is_empty());
        assert_eq!(out, "1 rsp 27 500 the session is not open\n");
        let (r, _, _) = session(b"GET / HTTP/1.1\r\n", 1000);
        assert!(r.unwrap_err().to_string().contains("not a RELP frame"));
    }
}
