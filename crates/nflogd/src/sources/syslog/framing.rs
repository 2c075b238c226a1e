//! RFC 6587 stream framing: octet counting (`MSG-LEN SP SYSLOG-MSG`, also RFC 5425's TLS
//! framing) and non-transparent LF framing, decided frame by frame by the first byte.

/// Collects stream bytes and yields whole messages.
pub struct Deframer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes still to discard: the tail of an oversized octet-counted frame.
    skip: usize,
    /// Messages cut to `max` or with a bad length, since creation.
    pub oversized: u64,
    /// Bytes at the start of `buf` already searched for a line end: a sender that trickles a
    /// long line byte by byte costs a scan of each byte once, not of the whole line each time.
    scanned: usize,
    /// Dropping the tail of an LF frame that was cut at `max`.
    discarding: bool,
}

impl Deframer {
    pub fn new(max: usize) -> Self {
        Deframer {
            buf: Vec::new(),
            max,
            skip: 0,
            oversized: 0,
            scanned: 0,
            discarding: false,
        }
    }

    /// Adds bytes and calls `f` with every complete message. How the stream is cut into
    /// calls changes nothing (the fuzz target `syslog_frames` holds it to that).
    pub fn feed(&mut self, data: &[u8], mut f: impl FnMut(&[u8])) {
        let skipped = self.skip.min(data.len());
        self.skip -= skipped;
        self.buf.extend_from_slice(&data[skipped..]);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            if rest.is_empty() {
                break;
            }
            // Where the search for a line end resumes in the frame at the buffer's start.
            let from = if start == 0 {
                self.scanned.min(rest.len())
            } else {
                0
            };
            let line_end = rest[from..]
                .iter()
                .position(|&b| b == b'\n' || b == 0)
                .map(|i| from + i);
            if self.discarding {
                // The tail of an LF frame already cut at `max`, up to its end.
                self.scanned = 0;
                match line_end {
                    Some(i) => {
                        start += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        start = self.buf.len();
                        break;
                    }
                }
            }
            if from == 0 && rest[0].is_ascii_digit() {
                // Octet counting, if a length (at most 9 digits) and a space lead; else an LF
                // frame that starts with a digit.
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == rest.len() && digits <= 9 {
                    break;
                }
                if digits <= 9 && rest[digits] == b' ' {
                    let len: usize = std::str::from_utf8(&rest[..digits])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let total = digits + 1 + len;
                    if len > self.max {
                        // Too long to hold: pass on its start, skip the rest as it arrives.
                        if rest.len() < digits + 1 + self.max {
                            break;
                        }
                        self.oversized += 1;
                        f(&rest[digits + 1..digits + 1 + self.max]);
                        let have = rest.len().min(total);
                        self.skip = total - have;
                        start += have;
                        continue;
                    }
                    if rest.len() < total {
                        break;
                    }
                    let msg = &rest[digits + 1..total];
                    f(msg.strip_suffix(b"\n").unwrap_or(msg));
                    start += total;
                    continue;
                }
            }
            match line_end {
                Some(i) => {
                    let msg = &rest[..i];
                    let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
                    if msg.len() > self.max {
                        self.oversized += 1;
                        f(&msg[..self.max]);
                    } else {
                        f(msg);
                    }
                    start += i + 1;
                    self.scanned = 0;
                }
                None => {
                    // What is left becomes the start of the buffer, searched to its end.
                    self.scanned = rest.len();
                    if rest.len() > self.max {
                        // Too long to hold: pass on its start, drop the rest up to its end.
                        self.oversized += 1;
                        f(&rest[..self.max]);
                        start = self.buf.len();
                        self.scanned = 0;
                        self.discarding = true;
                    }
                    break;
                }
            }
        }
        self.buf.drain(..start.min(self.buf.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut d = Deframer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |m| out.push(String::from_utf8_lossy(m).into_owned()));
        }
        out
    }

    #[test]
    fn both_framings_split_anywhere() {
        let stream = b"<4>Nov 23 10:00:00 a kernel: one\n18 <4>1 - h k - - two<4>x three\r\n";
        let whole = frames(&[stream], 1000);
        assert_eq!(
            whole,
            vec![
                "<4>Nov 23 10:00:00 a kernel: one",
                "<4>1 - h k - - two",
                "<4>x three"
            ]
        );
        for cut in 0..stream.len() {
            assert_eq!(
                frames(&[&stream[..cut], &stream[cut..]], 1000),
                whole,
                "cut at {cut}"
            );
        }
    }

    /// A line sent a byte at a time is searched once per byte: 60 000 one-byte feeds look at
    /// 60 000 bytes, not 1.8 billion.
    #[test]
    fn a_trickled_line_is_scanned_once() {
        let mut d = Deframer::new(64 * 1024);
        let mut out = Vec::new();
        for _ in 0..60_000 {
            d.feed(b"x", |m| out.push(m.len()));
            assert_eq!(d.scanned, d.buf.len());
        }
        d.feed(b"\n", |m| out.push(m.len()));
        assert_eq!(out, vec![60_000]);
        assert_eq!(d.scanned, 0);
        for cut in [1, 7, 30] {
            let stream = b"<4>one\n9 <4>two\nxx<4>three\n";
            let mut d = Deframer::new(100);
            let mut got = Vec::new();
            for c in stream.chunks(cut) {
                d.feed(c, |m| got.push(String::from_utf8_lossy(m).into_owned()));
            }
            assert_eq!(got, ["<4>one", "<4>two\nxx", "<4>three"], "chunks of {cut}");
        }
    }

    #[test]
    fn oversized_messages_are_cut_and_counted() {
        let mut d = Deframer::new(8);
        let mut out = Vec::new();
        d.feed(b"0123456789abcdef", |m| out.push(m.to_vec()));
        assert_eq!(out, vec![b"01234567".to_vec()]);
        assert_eq!(d.oversized, 1);
        // An LF frame that arrives whole is held to the limit as well (found by fuzzing).
        let mut whole = Deframer::new(8);
        let mut got = Vec::new();
        whole.feed(b"xyz0123456789\nok\n", |m| got.push(m.to_vec()));
        assert_eq!(got, vec![b"xyz01234".to_vec(), b"ok".to_vec()]);
        assert_eq!(whole.oversized, 1);
        // The rest of that line, up to its end, is dropped with it.
        let mut out = Vec::new();
        d.feed(b"ghij\nnext\n", |m| out.push(m.to_vec()));
        assert_eq!(out, vec![b"next".to_vec()]);
        // An octet-counted frame over the limit: its start is kept, its tail skipped, and the
        // next frame is intact.
        let mut out = Vec::new();
        d.feed(b"20 0123456789", |m| out.push(m.to_vec()));
        d.feed(b"abcdefghij5 hello", |m| out.push(m.to_vec()));
        assert_eq!(out, vec![b"01234567".to_vec(), b"hello".to_vec()]);
    }
}
