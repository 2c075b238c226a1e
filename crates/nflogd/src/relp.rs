//! RELP, rsyslog's Reliable Event Logging Protocol (librelp, omrelp/imrelp): the frame codec the
//! syslog sink and source share. A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the
//! client numbers its frames 1, 2, … (after 999 999 999 comes 1 again) and the server answers
//! each with an `rsp` frame of the same number whose data starts with a status code (`200 OK`).
//! A session opens with `open` (offers `relp_version`, `relp_software`, `commands`) and ends with
//! `close`; the server may announce its going with `serverclose`.

use std::io::Write;

/// The most digits librelp takes in a transaction number or a data length.
const MAX_DIGITS: usize = 9;
/// The longest command name librelp takes.
const MAX_COMMAND: usize = 32;

/// The offers a session opens with, and a server answers with after `200 OK`.
pub const OFFERS: &str = concat!(
    "relp_version=0\nrelp_software=nflogd,",
    env!("CARGO_PKG_VERSION"),
    "\ncommands=syslog"
);

/// One frame read from a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u32,
    pub command: &'a [u8],
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// For an `rsp`: whether its status says the frame answered was taken (2xx).
    pub fn ok(&self) -> bool {
        self.data.first() == Some(&b'2')
    }
}

/// What a buffer starts with.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame, and how many bytes it took.
    Frame(Frame<'a>, usize),
    /// The start of a frame; more bytes are needed.
    Incomplete,
    /// Not a RELP frame (or data longer than allowed): the session cannot go on.
    Invalid(&'static str),
}

/// Reads a decimal field of at most `MAX_DIGITS` digits ending at a space (or, for a data
/// length, a line feed); returns its value and where it ended.
fn number(buf: &[u8], what: &'static str) -> Result<Option<(u32, usize)>, &'static str> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_DIGITS {
        return Err(what);
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err(what);
    }
    let v = buf[..digits]
        .iter()
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    Ok(Some((v, digits)))
}

/// Parses the frame at the start of `buf`, refusing data longer than `max_data`.
pub fn parse(buf: &[u8], max_data: usize) -> Parsed<'_> {
    let (txnr, mut at) = match number(buf, "a transaction number must be 1 to 9 digits") {
        Ok(Some(v)) => v,
        Ok(None) => return Parsed::Incomplete,
        Err(e) => return Parsed::Invalid(e),
    };
    if buf[at] != b' ' {
        return Parsed::Invalid("no space after the transaction number");
    }
    at += 1;
    let rest = &buf[at..];
    let cmd_len = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if cmd_len > MAX_COMMAND {
        return Parsed::Invalid("a command is at most 32 letters");
    }
    if cmd_len == rest.len() {
        return Parsed::Incomplete;
    }
    if cmd_len == 0 || rest[cmd_len] != b' ' {
        return Parsed::Invalid("a command is letters followed by a space");
    }
    let command = &rest[..cmd_len];
    at += cmd_len + 1;
    let (len, digits) = match number(&buf[at..], "a data length must be 1 to 9 digits") {
        Ok(Some(v)) => v,
        Ok(None) => return Parsed::Incomplete,
        Err(e) => return Parsed::Invalid(e),
    };
    at += digits;
    let len = len as usize;
    if len > max_data {
        return Parsed::Invalid("data longer than allowed");
    }
    if len == 0 {
        // No data: the trailer follows the length at once.
        return match buf[at] {
            b'\n' => Parsed::Frame(
                Frame {
                    txnr,
                    command,
                    data: &[],
                },
                at + 1,
            ),
            _ => Parsed::Invalid("no line feed after an empty frame"),
        };
    }
    if buf[at] != b' ' {
        return Parsed::Invalid("no space after the data length");
    }
    at += 1;
    if buf.len() < at + len + 1 {
        return Parsed::Incomplete;
    }
    if buf[at + len] != b'\n' {
        return Parsed::Invalid("no line feed after the data");
    }
    Parsed::Frame(
        Frame {
            txnr,
            command,
            data: &buf[at..at + len],
        },
        at + len + 1,
    )
}

/// Appends a frame whose data is the concatenation of `data`.
pub fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[&[u8]]) {
    let len: usize = data.iter().map(|d| d.len()).sum();
    let _ = write!(out, "{txnr} {command} {len}");
    if len > 0 {
        out.push(b' ');
        for d in data {
            out.extend_from_slice(d);
        }
    }
    out.push(b'\n');
}

/// The transaction number after `txnr`.
pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= 999_999_999 {
        1
    } else {
        txnr + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_librelp_writes_them() {
        let mut b = Vec::new();
        write_frame(&mut b, 1, "open", &[OFFERS.as_bytes()]);
        write_frame(&mut b, 2, "syslog", &[b"<13>", b"hello"]);
        write_frame(&mut b, 3, "close", &[]);
        let Parsed::Frame(f, n) = parse(&b, 128 << 10) else {
            panic!("open")
        };
        assert_eq!(
            (f.txnr, f.command, f.data),
            (1, &b"open"[..], OFFERS.as_bytes())
        );
        let rest = &b[n..];
        assert_eq!(&rest[..21], b"2 syslog 9 <13>hello\n");
        let Parsed::Frame(f, n2) = parse(rest, 128 << 10) else {
            panic!("syslog")
        };
        assert_eq!(f.data, b"<13>hello");
        assert_eq!(
            parse(&rest[n2..], 10),
            Parsed::Frame(
                Frame {
                    txnr: 3,
                    command: b"close",
                    data: b""
                },
                10
            )
        );
    }

    /// Any cut of a frame is incomplete, never invalid; a whole one parses the same.
    #[test]
    fn every_cut_is_incomplete() {
        let f = b"42 rsp 6 200 OK\n";
        for cut in 0..f.len() {
            assert_eq!(parse(&f[..cut], 100), Parsed::Incomplete, "cut at {cut}");
        }
        let Parsed::Frame(fr, n) = parse(f, 100) else {
            panic!()
        };
        assert!(fr.ok());
        assert_eq!((fr.txnr, n), (42, f.len()));
        let Parsed::Frame(bad, _) = parse(b"7 rsp 15 500 no such cmd\n", 100) else {
            panic!()
        };
        assert!(!bad.ok());
    }

    #[test]
    fn malformed_frames_say_why() {
        for (f, why) in [
            (&b"x rsp 0\n"[..], "a transaction number"),
            (b"1234567890 rsp 0\n", "a transaction number"),
            (b"1\trsp 0\n", "no space after the transaction"),
            (b"1 r5p 0\n", "a command is letters"),
            (b"1 rsp 5 hello!\n", "no line feed after the data"),
            (b"1 rsp 0 \n", "no line feed after an empty"),
            (b"1 rsp 2000 x", "data longer"),
            (b"1 rsp 6x200 OK\n", "no space after the data length"),
        ] {
            match parse(f, 1000) {
                Parsed::Invalid(e) => assert!(e.starts_with(why), "{f:?}: {e}"),
                p => panic!("{f:?}: {p:?}"),
            }
        }
    }

    #[test]
    fn transaction_numbers_wrap_as_librelp_does() {
        assert_eq!(next_txnr(1), 2);
        assert_eq!(next_txnr(999_999_999), 1);
    }
}
