//! The wrappers a LOG line travels in: /dev/kmsg records, `dmesg -r`, syslog (RFC 3164 and RFC
//! 5424, with or without `<PRI>`, with or without the printk time), rsyslog's ISO-timestamped
//! files, and journald's records (`journalctl -o json` lines; the `MESSAGE=` field of `-o export`,
//! whose other fields `JournalExport` gathers). `open` peels them off and keeps host, time and
//! level.

use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};
use event::Timestamp;
use std::borrow::Cow;

/// What surrounded the kernel text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    /// The LOG text itself, from the prefix on.
    pub body: Cow<'a, str>,
    pub host: Option<Cow<'a, str>>,
    /// Wall-clock time the wrapper gives.
    pub time: Option<Timestamp>,
    /// printk level / syslog severity (0–7).
    pub level: Option<u8>,
    pub facility: Option<u8>,
    /// /dev/kmsg: microseconds since boot, and the record's sequence number.
    pub kmsg_usec: Option<u64>,
    pub kmsg_seq: Option<u64>,
    /// The program that wrote it (syslog's TAG or APP-NAME, journald's SYSLOG_IDENTIFIER):
    /// `kernel` for LOG lines, `sshd` or `sshd-session` for the lines a guard reads.
    pub program: Option<Cow<'a, str>>,
    /// Its process id, when the wrapper gives one (`sshd[123]:`).
    pub pid: Option<u32>,
    /// The header is LOGEMU's (no tag): the body is ulogd2's line, read with `parse_ulogd`.
    pub ulogd: bool,
}

/// Splits a syslog TAG `name[pid]` into its name and pid.
fn split_tag(tag: &str) -> (&str, Option<u32>) {
    match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, pid)) => (name, pid.parse().ok()),
        None => (tag, None),
    }
}

fn pri(s: &str) -> Option<(u16, &str)> {
    let r = s.strip_prefix('<')?;
    let end = r.find('>')?;
    if end == 0 || end > 3 {
        return None;
    }
    Some((r[..end].parse().ok()?, &r[end + 1..]))
}

/// `[  883.782525] ` printk time: `[`, spaces, digits and dots, spaces, `] ` (within 25 bytes).
fn printk_time(s: &str) -> &str {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return s;
    }
    let end = b.len().min(25);
    let mut i = 1;
    while i < end && b[i] == b' ' {
        i += 1;
    }
    while i < end && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    while i < end && b[i] == b' ' {
        i += 1;
    }
    if i < end && b[i] == b']' && b.get(i + 1) == Some(&b' ') {
        return &s[i + 2..];
    }
    s
}

/// `kmsg record`: `prival,seq,usec,flags[,…];text`.
fn kmsg(s: &str) -> Option<Envelope<'_>> {
    // `prival,seq,…;`: starts with a digit and has its `;` within the first few dozen bytes.
    if !s.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    let semi = s.as_bytes().iter().take(80).position(|&b| b == b';')?;
    let mut f = s[..semi].split(',');
    let prival: u16 = f.next()?.parse().ok()?;
    let seq: u64 = f.next()?.parse().ok()?;
    let usec: u64 = f.next()?.parse().ok()?;
    Some(Envelope {
        body: Cow::Borrowed(&s[semi + 1..]),
        level: Some((prival & 7) as u8),
        facility: Some((prival >> 3) as u8),
        kmsg_usec: Some(usec),
        kmsg_seq: Some(seq),
        program: Some(Cow::Borrowed("kernel")),
        ..Default::default()
    })
}

fn rfc3339(s: &str) -> Option<Timestamp> {
    let d = DateTime::parse_from_rfc3339(s).ok()?;
    Some(Timestamp {
        secs: d.timestamp(),
        micros: d.timestamp_subsec_micros(),
    })
}

/// The local time now, looked up at most once a second: only the year of a BSD timestamp
/// depends on it.
fn local_now() -> DateTime<Local> {
    thread_local! {
        static NOW: std::cell::Cell<Option<(std::time::Instant, DateTime<Local>)>> =
            const { std::cell::Cell::new(None) };
    }
    NOW.with(|c| match c.get() {
        Some((at, now)) if at.elapsed() < std::time::Duration::from_secs(1) => now,
        _ => {
            let now = Local::now();
            c.set(Some((std::time::Instant::now(), now)));
            now
        }
    })
}

thread_local! {
    /// The last BSD timestamp text and its value: a log has many lines per second, and the
    /// local-time conversion is the expensive part.
    static LAST_BSD: std::cell::Cell<([u8; 15], Option<Timestamp>)> =
        const { std::cell::Cell::new(([0; 15], None)) };
}

/// `Nov 23 10:00:00` in local time, in the year that makes it not lie in the future.
fn bsd_time(s: &str) -> Option<(Timestamp, &str)> {
    let b = s.as_bytes();
    if b.len() < 16
        || b[3] != b' '
        || b[6] != b' '
        || b[9] != b':'
        || b[12] != b':'
        || b[15] != b' '
    {
        return None;
    }
    let key: [u8; 15] = b[..15].try_into().ok()?;
    let (last, cached) = LAST_BSD.with(|c| c.get());
    if let (true, Some(t)) = (last == key, cached) {
        return Some((t, &s[16..]));
    }
    let t = bsd_time_uncached(s)?;
    LAST_BSD.with(|c| c.set((key, Some(t))));
    Some((t, &s[16..]))
}

fn bsd_time_uncached(s: &str) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &s[..3])? as u32 + 1;
    let day: u32 = s[4..6].trim().parse().ok()?;
    let (h, mi, se): (u32, u32, u32) = (
        s[7..9].parse().ok()?,
        s[10..12].parse().ok()?,
        s[13..15].parse().ok()?,
    );
    let now = local_now();
    let at = |y: i32| {
        NaiveDate::from_ymd_opt(y, month, day)?
            .and_hms_opt(h, mi, se)
            .and_then(|n| Local.from_local_datetime(&n).earliest())
    };
    let mut t = at(now.year())?;
    if t > now + chrono::Duration::days(1) {
        t = at(now.year() - 1)?;
    }
    Some(Timestamp {
        secs: t.timestamp(),
        micros: 0,
    })
}

/// Splits `HOST TAG: rest` (TAG like `kernel:` or `kernel[12]:`) into host, tag and rest; `None`
/// if the shape is not there.
fn host_tag(s: &str) -> Option<(&str, &str, &str)> {
    let sp = s.as_bytes().iter().take(256).position(|&b| b == b' ')?;
    let host = &s[..sp];
    let rest = &s[sp + 1..];
    // The tag is at most 48 bytes: look for its `: ` only there.
    let head = &rest.as_bytes()[..rest.len().min(64)];
    let colon = memchr::memchr_iter(b':', head).find(|&i| head.get(i + 1) == Some(&b' '))?;
    let tag = &rest[..colon];
    if tag.is_empty() || tag.len() > 48 || tag.contains(' ') {
        return None;
    }
    Some((host, tag, &rest[colon + 2..]))
}

/// A `journalctl -o json` record: one object a line, every field a string (binary ones are
/// arrays, and such a record is not taken as journald's).
#[derive(serde::Deserialize)]
struct JournalJson<'a> {
    #[serde(rename = "MESSAGE", borrow)]
    message: Cow<'a, str>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow, default)]
    realtime: Option<Cow<'a, str>>,
    #[serde(rename = "_HOSTNAME", borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(rename = "PRIORITY", borrow, default)]
    priority: Option<Cow<'a, str>>,
    #[serde(rename = "SYSLOG_FACILITY", borrow, default)]
    facility: Option<Cow<'a, str>>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow, default)]
    identifier: Option<Cow<'a, str>>,
    #[serde(rename = "_PID", borrow, default)]
    pid: Option<Cow<'a, str>>,
}

/// Microseconds since the epoch, as journald writes `__REALTIME_TIMESTAMP`.
fn journal_time(us: &str) -> Option<Timestamp> {
    let us: u64 = us.parse().ok()?;
    Some(Timestamp {
        secs: (us / 1_000_000) as i64,
        micros: (us % 1_000_000) as u32,
    })
}

fn journal_json(line: &str) -> Option<Envelope<'_>> {
    let j: JournalJson = serde_json::from_str(line).ok()?;
    let body = match j.message {
        Cow::Borrowed(m) => Cow::Borrowed(printk_time(m)),
        Cow::Owned(m) => Cow::Owned(printk_time(&m).to_string()),
    };
    Some(Envelope {
        body,
        host: j.host,
        time: j.realtime.as_deref().and_then(journal_time),
        level: j.priority.and_then(|p| p.parse().ok()),
        facility: j.facility.and_then(|f| f.parse().ok()),
        program: j.identifier,
        pid: j.pid.and_then(|p| p.parse().ok()),
        ..Default::default()
    })
}

/// The fields of one `journalctl -o export` entry, gathered line by line: the entry's
/// `MESSAGE=` comes with its time, host and priority only when the blank line ends it (the
/// host field follows the message).
#[derive(Debug, Default)]
pub struct JournalExport {
    time: Option<Timestamp>,
    host: Option<String>,
    level: Option<u8>,
    facility: Option<u8>,
    message: Option<String>,
    program: Option<String>,
    pid: Option<u32>,
    /// Set once a line showed the export form (`__CURSOR=` or `__REALTIME_TIMESTAMP=`).
    active: bool,
}

/// What `JournalExport::line` made of a line.
pub enum ExportLine {
    /// Not part of an export stream: read the line as it is.
    Plain,
    /// A field of the current entry, kept.
    Field,
    /// The blank line that ended an entry with a message: the message and its envelope.
    Entry(Envelope<'static>),
}

impl JournalExport {
    pub fn line(&mut self, line: &str) -> ExportLine {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.starts_with("__CURSOR=") || line.starts_with("__REALTIME_TIMESTAMP=") {
            self.active = true;
        }
        if !self.active {
            return ExportLine::Plain;
        }
        if line.is_empty() {
            let done = std::mem::take(self);
            self.active = true;
            return match done.message {
                Some(m) => {
                    let env = Envelope {
                        body: Cow::Owned(printk_time(&m).to_string()),
                        host: done.host.map(Cow::Owned),
                        time: done.time,
                        level: done.level,
                        facility: done.facility,
                        program: done.program.map(Cow::Owned),
                        pid: done.pid,
                        ..Default::default()
                    };
                    ExportLine::Entry(env)
                }
                None => ExportLine::Field,
            };
        }
        let Some((key, value)) = line.split_once('=') else {
            // A binary field (name, then a length and raw bytes) or not journald at all.
            return ExportLine::Field;
        };
        match key {
            "__REALTIME_TIMESTAMP" => self.time = journal_time(value),
            "_HOSTNAME" => self.host = Some(value.to_string()),
            "PRIORITY" => self.level = value.parse().ok(),
            "SYSLOG_FACILITY" => self.facility = value.parse().ok(),
            "MESSAGE" => self.message = Some(value.to_string()),
            "SYSLOG_IDENTIFIER" => self.program = Some(value.to_string()),
            "_PID" => self.pid = value.parse().ok(),
            _ => {}
        }
        ExportLine::Field
    }
}

/// Peels the wrappers off one line. A line with none gives itself as the body.
pub fn open(line: &str) -> Envelope<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(m) = line.strip_prefix("MESSAGE=") {
        return Envelope {
            body: Cow::Borrowed(printk_time(m)),
            ..Default::default()
        };
    }
    if let Some(e) = kmsg(line) {
        return e;
    }
    if line.starts_with('{') {
        if let Some(e) = journal_json(line) {
            return e;
        }
    }
    let mut env = Envelope::default();
    let mut s = line;
    if let Some((p, rest)) = pri(s) {
        env.level = Some((p & 7) as u8);
        env.facility = Some((p >> 3) as u8);
        s = rest;
    }
    // RFC 5424: VERSION SP TIMESTAMP SP HOST SP APP SP PROCID SP MSGID SP SD [SP MSG]
    if let Some(r) = s.strip_prefix("1 ") {
        let mut parts = r.splitn(6, ' ');
        let (ts, host, app, procid, _msgid, rest) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        if let (Some(ts), Some(host), Some(rest)) = (ts, host, rest) {
            env.time = rfc3339(ts);
            env.host = (host != "-").then_some(Cow::Borrowed(host));
            env.program = app.filter(|a| *a != "-").map(Cow::Borrowed);
            env.pid = procid.and_then(|p| p.parse().ok());
            // Structured data: "-" or one or more [..] elements (a `]` inside is escaped).
            let mut msg = rest;
            if let Some(m) = msg.strip_prefix('-') {
                msg = m;
            } else {
                while msg.starts_with('[') {
                    let b = msg.as_bytes();
                    let mut i = 1;
                    while i < b.len() && !(b[i] == b']' && b[i - 1] != b'\\') {
                        i += 1;
                    }
                    msg = &msg[(i + 1).min(msg.len())..];
                }
            }
            let msg = msg.strip_prefix(' ').unwrap_or(msg);
            let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
            env.body = Cow::Borrowed(printk_time(msg));
            return env;
        }
    }
    // RFC 3164 (`Nov 23 10:00:00 host kernel: …`) or an ISO timestamp first (rsyslog files).
    if let Some((t, rest)) = bsd_time(s) {
        env.time = Some(t);
        s = rest;
    } else if let Some(sp) = s.find(' ') {
        if let Some(t) = rfc3339(&s[..sp]) {
            env.time = Some(t);
            s = &s[sp + 1..];
        }
    }
    if env.time.is_some() {
        // ulogd2's LOGEMU writes no tag: `Nov  3 14:03:57 host <prefix> IN=…`, where a prefix
        // like `IPTABLES: ` looks like one. A tag is `kernel` or has a pid; other text before
        // the netfilter fields is the prefix.
        // (`Jan  8 03:37:09 DENY: IN=…` has no host at all: a host name has no colon at its end.)
        let logemu = s.split_once(' ').filter(|(host, after)| {
            !host.ends_with(':')
                && crate::split_prefix(after).is_some()
                && host_tag(s).is_none_or(|(_, tag, _)| tag != "kernel" && !tag.ends_with(']'))
        });
        if let Some((host, after)) = logemu {
            env.host = Some(Cow::Borrowed(host));
            env.ulogd = true;
            s = after;
        } else if let Some((host, tag, rest)) = host_tag(s) {
            env.host = Some(Cow::Borrowed(host));
            let (program, pid) = split_tag(tag);
            env.program = Some(Cow::Borrowed(program));
            env.pid = pid;
            s = rest;
        }
    } else if let Some(r) = s.strip_prefix("kernel: ") {
        env.program = Some(Cow::Borrowed("kernel"));
        s = r;
    }
    env.body = Cow::Borrowed(printk_time(s.strip_prefix(' ').unwrap_or(s)));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "IPTABLES: DROP IN=vb OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ";

    #[test]
    fn every_wrapper_gives_the_same_body() {
        let cases = [
            (LOG.to_string(), None, None),
            (format!("4,456,891228269,-;{LOG}"), None, Some(4)),
            (format!("<4>[  883.782525] {LOG}"), None, Some(4)),
            (format!("Nov  3 10:00:00 fw1 kernel: {LOG}"), Some("fw1"), None),
            (format!("<4>Nov 23 10:00:00 fw1 kernel: [16571.459614] {LOG}"), Some("fw1"), Some(4)),
            (format!("2026-11-23T10:00:00.123456+01:00 fw1 kernel: {LOG}"), Some("fw1"), None),
            (format!("<4>1 2026-11-23T10:00:00Z fw1 kernel - LOG [SEKOIA@53288 intake_key=\"a\\]b\"] {LOG}"), Some("fw1"), Some(4)),
            (format!("<6>1 2026-11-23T10:00:00Z fw1 kernel - - - {LOG}"), Some("fw1"), Some(6)),
            (format!("MESSAGE={LOG}"), None, None),
            (format!("kernel: {LOG}"), None, None),
        ];
        for (line, host, level) in cases {
            let e = open(&line);
            assert_eq!(e.body, LOG, "{line}");
            assert_eq!(e.host.as_deref(), host, "{line}");
            assert_eq!(e.level, level, "{line}");
        }
        let l = format!("<4>1 2026-11-23T10:00:00.5Z fw1 kernel - - - {LOG}");
        let e = open(&l);
        assert_eq!(
            e.time,
            Some(Timestamp {
                secs: 1_795_428_000,
                micros: 500_000
            })
        );
        assert_eq!(
            open(&format!("4,456,891228269,-;{LOG}")).kmsg_usec,
            Some(891_228_269)
        );
    }

    /// The program and its pid, from each wrapper that carries them (what a guard sorts lines
    /// by): a syslog TAG, RFC 5424's APP-NAME and PROCID, journald's fields.
    #[test]
    fn program_and_pid() {
        let msg = "Invalid user admin from 203.0.113.5 port 51234";
        let cases = [
            (
                format!("Dec  2 10:00:00 web1 sshd[812]: {msg}"),
                Some("sshd"),
                Some(812),
            ),
            (
                format!("2026-12-02T10:00:00.1+01:00 web1 sshd-session[9]: {msg}"),
                Some("sshd-session"),
                Some(9),
            ),
            (
                format!("<38>Dec  2 10:00:00 web1 postfix/smtpd[77]: {msg}"),
                Some("postfix/smtpd"),
                Some(77),
            ),
            (
                format!("Dec  2 10:00:00 web1 dovecot: {msg}"),
                Some("dovecot"),
                None,
            ),
            (
                format!("<38>1 2026-12-02T10:00:00Z web1 sshd 812 - - {msg}"),
                Some("sshd"),
                Some(812),
            ),
            (
                format!("<38>1 2026-12-02T10:00:00Z web1 - - - - {msg}"),
                None,
                None,
            ),
            (
                format!(
                    r#"{{"MESSAGE":"{msg}","SYSLOG_IDENTIFIER":"sshd-session","_PID":"4242","__REALTIME_TIMESTAMP":"1795428000000000"}}"#
                ),
                Some("sshd-session"),
                Some(4242),
            ),
            (msg.to_string(), None, None),
        ];
        for (line, program, pid) in cases {
            let e = open(&line);
            assert_eq!(e.body, msg, "{line}");
            assert_eq!((e.program.as_deref(), e.pid), (program, pid), "{line}");
        }
        let mut j = JournalExport::default();
        for l in [
            "__CURSOR=x",
            "SYSLOG_IDENTIFIER=sshd",
            "_PID=5",
            &format!("MESSAGE={msg}"),
        ] {
            assert!(matches!(j.line(l), ExportLine::Field));
        }
        let ExportLine::Entry(e) = j.line("") else {
            panic!("no entry")
        };
        assert_eq!(
            (e.program.as_deref(), e.pid, &*e.body),
            (Some("sshd"), Some(5), msg)
        );
    }

    #[test]
    fn printk_times() {
        for (s, rest) in [
            ("[  883.782525] x", "x"),
            ("[16571.459614] x", "x"),
            ("[ 12 ] x", "x"),
            ("[] x", "x"),
            ("[1 2] x", "[1 2] x"),
            ("[12.5]x", "[12.5]x"),
            ("[12a] x", "[12a] x"),
            (
                "[12345678901234567890123456] x",
                "[12345678901234567890123456] x",
            ),
            ("[", "["),
        ] {
            assert_eq!(printk_time(s), rest, "{s}");
        }
    }

    #[test]
    fn journald_json_and_export() {
        // `journalctl -k -o json`: one object a line.
        let j = format!(
            r#"{{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795428000123456","PRIORITY":"4","SYSLOG_FACILITY":"0","_TRANSPORT":"kernel","MESSAGE":"{LOG}","_HOSTNAME":"fw1"}}"#
        );
        let e = open(&j);
        assert_eq!(e.body, LOG);
        assert_eq!(e.host.as_deref(), Some("fw1"));
        assert_eq!(e.level, Some(4));
        assert_eq!(
            e.time,
            Some(Timestamp {
                secs: 1_795_428_000,
                micros: 123_456
            })
        );
        // An escaped quote in the prefix is unescaped.
        let q = j.replace("IPTABLES: DROP ", r#"say \"hi\" "#);
        assert!(open(&q).body.starts_with(r#"say "hi" IN="#));
        // A binary MESSAGE (an array) is not taken as journald's.
        assert_eq!(open(r#"{"MESSAGE":[1,2]}"#).body, r#"{"MESSAGE":[1,2]}"#);

        // `journalctl -k -o export`: fields a line, a blank line after each entry; the host
        // follows the message.
        let mut x = JournalExport::default();
        let mut got = Vec::new();
        let stream = format!(
            "__CURSOR=s=1\n__REALTIME_TIMESTAMP=1795428000000001\nPRIORITY=4\n_TRANSPORT=kernel\n\
             MESSAGE={LOG}\n_HOSTNAME=fw2\n\n__CURSOR=s=2\n__REALTIME_TIMESTAMP=1795428001000000\n\
             MESSAGE=[ 12.5] {LOG}\n\n__CURSOR=s=3\nMESSAGE=hello\n_HOSTNAME=fw2\n\n"
        );
        for l in stream.split_inclusive('\n') {
            match x.line(l) {
                ExportLine::Plain => panic!("{l} taken as plain"),
                ExportLine::Field => {}
                ExportLine::Entry(e) => got.push(e),
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].body, LOG);
        assert_eq!(got[0].host.as_deref(), Some("fw2"));
        assert_eq!(got[0].time.map(|t| t.micros), Some(1));
        assert_eq!(got[1].body, LOG);
        assert_eq!(got[1].host, None);
        assert_eq!(got[2].body, "hello");
        // Without an export header, lines are plain.
        assert!(matches!(
            JournalExport::default().line(LOG),
            ExportLine::Plain
        ));
    }
}
