//! The client side of a RELP session: opening it, numbering `syslog` frames, and reading the
//! receiver's answers, which confirm frames in the order they were sent.

use super::conn::Conn;
use crate::relp::{self, Parsed};
use anyhow::{anyhow, bail, Result};
use std::time::{Duration, Instant};

/// Frames sent and not yet answered, at most: librelp's default window.
pub const WINDOW: u64 = 128;
/// The longest message imrelp takes by default (`maxDataSize`); longer ones end the session.
pub const MAX_DATA: usize = 128 << 10;
/// How long a receiver may take to answer before the session counts as broken.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Session {
    next_txnr: u32,
    /// `syslog` frames sent in this session, and how many of them the receiver took.
    pub sent: u64,
    pub confirmed: u64,
    /// The transaction number the next answer must carry.
    expect: std::collections::VecDeque<u32>,
    rbuf: Vec<u8>,
}

impl Session {
    /// Opens a session on a new connection: `open` with our offers, and the receiver's `200`.
    pub fn open(conn: &mut Conn) -> Result<Session> {
        let mut s = Session {
            next_txnr: 1,
            sent: 0,
            confirmed: 0,
            expect: Default::default(),
            rbuf: Vec::new(),
        };
        let mut out = Vec::new();
        relp::write_frame(&mut out, s.next_txnr, "open", &[relp::OFFERS.as_bytes()]);
        s.expect.push_back(s.next_txnr);
        s.next_txnr = relp::next_txnr(s.next_txnr);
        conn.send(&out, &[])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut opened = false;
        while !opened {
            if Instant::now() >= deadline {
                bail!("no answer to `open` in time");
            }
            s.answers(conn, deadline, &mut |f| {
                if !f.ok() {
                    bail!(
                        "the receiver refused the session: {}",
                        String::from_utf8_lossy(f.data)
                    );
                }
                let data = String::from_utf8_lossy(f.data);
                if !data.lines().any(|l| {
                    l.strip_prefix("commands=")
                        .is_some_and(|c| c.split(',').any(|c| c == "syslog"))
                }) {
                    bail!("the receiver does not take the syslog command: {data}");
                }
                opened = true;
                Ok(())
            })?;
        }
        Ok(s)
    }

    /// Appends a `syslog` frame whose data is the concatenation of `parts`.
    pub fn frame(&mut self, out: &mut Vec<u8>, parts: &[&[u8]]) {
        relp::write_frame(out, self.next_txnr, "syslog", parts);
        self.expect.push_back(self.next_txnr);
        self.next_txnr = relp::next_txnr(self.next_txnr);
        self.sent += 1;
    }

    /// Reads the answers that arrived, waiting until `deadline` for some if none has (a
    /// deadline already past only looks); each `200` confirms the oldest frame sent.
    pub fn read_answers(&mut self, conn: &mut Conn, deadline: Instant) -> Result<()> {
        let mut confirmed = 0;
        self.answers(conn, deadline, &mut |f| {
            if !f.ok() {
                bail!(
                    "the receiver did not take a message: {}",
                    String::from_utf8_lossy(f.data)
                );
            }
            confirmed += 1;
            Ok(())
        })?;
        self.confirmed += confirmed;
        Ok(())
    }

    /// Waits until fewer than `WINDOW` frames are unanswered.
    pub fn wait_for_window(&mut self, conn: &mut Conn) -> Result<()> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.sent - self.confirmed >= WINDOW {
            if Instant::now() >= deadline {
                bail!("no answer for {} s", ANSWER_TIMEOUT.as_secs());
            }
            self.read_answers(conn, deadline)?;
        }
        Ok(())
    }

    /// Ends the session: `close`, and the receiver's answer before `deadline`.
    pub fn close(&mut self, conn: &mut Conn, deadline: Instant) -> Result<()> {
        let mut out = Vec::new();
        relp::write_frame(&mut out, self.next_txnr, "close", &[]);
        let close = self.next_txnr;
        conn.send(&out, &[])?;
        self.expect.push_back(close);
        while self.expect.contains(&close) {
            if Instant::now() >= deadline {
                bail!("no answer to `close` in time");
            }
            let mut confirmed = 0;
            self.answers(conn, deadline, &mut |f| {
                if f.txnr != close && f.ok() {
                    confirmed += 1;
                }
                Ok(())
            })?;
            self.confirmed += confirmed;
        }
        Ok(())
    }

    /// Reads once (waiting up to `deadline`; nothing read in time is no error) and hands each
    /// whole `rsp` to `on_answer` in order. A frame out of order, a `serverclose`, an end of
    /// stream or garbage is an error.
    fn answers(
        &mut self,
        conn: &mut Conn,
        deadline: Instant,
        on_answer: &mut dyn FnMut(&relp::Frame) -> Result<()>,
    ) -> Result<()> {
        let mut buf = [0u8; 16 << 10];
        let wait = deadline.saturating_duration_since(Instant::now());
        match conn.read(&mut buf, wait)? {
            Some(0) => bail!("the receiver closed the connection"),
            Some(n) => self.rbuf.extend_from_slice(&buf[..n]),
            None => return Ok(()),
        }
        let mut at = 0;
        loop {
            match relp::parse(&self.rbuf[at..], 64 << 10) {
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => return Err(anyhow!("the receiver's answer: {why}")),
                Parsed::Frame(f, n) => {
                    at += n;
                    match f.command {
                        b"rsp" => {
                            if self.expect.front() != Some(&f.txnr) {
                                bail!(
                                    "an answer to frame {} where {:?} was due",
                                    f.txnr,
                                    self.expect.front()
                                );
                            }
                            self.expect.pop_front();
                            on_answer(&f)?;
                        }
                        b"serverclose" => bail!("the receiver is closing the session"),
                        other => bail!(
                            "an unexpected `{}` from the receiver",
                            String::from_utf8_lossy(other)
                        ),
                    }
                }
            }
        }
        self.rbuf.drain(..at);
        Ok(())
    }
}
