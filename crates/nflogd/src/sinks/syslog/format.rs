//! Syslog message headers: RFC 5424 and RFC 3164, and RFC 5424's structured-data escaping.

use super::config::{Format, SyslogSinkConfig};
use event::{Action, Event, Timestamp};
use std::io::Write;

/// RFC 5424 §6.3.3: in a PARAM-VALUE, `"`, `\` and `]` are escaped with a backslash.
pub fn escape_param(v: &str, out: &mut Vec<u8>) {
    for b in v.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The fixed part of every message's structured data, escaped once.
pub fn structured_data(cfg: &SyslogSinkConfig) -> Vec<u8> {
    if cfg.structured_data.is_empty() {
        return b"-".to_vec();
    }
    let mut out = Vec::new();
    for (id, params) in &cfg.structured_data {
        out.push(b'[');
        out.extend_from_slice(id.as_bytes());
        for (k, v) in params {
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_param(v, &mut out);
            out.push(b'"');
        }
        out.push(b']');
    }
    out
}

fn nil_or(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// The severity for an event: a fixed one, or from the line's level, else from the verdict.
pub fn severity(fixed: Option<u8>, ev: &Event) -> u8 {
    if let Some(s) = fixed {
        return s;
    }
    match ev {
        Event::Packet(p) => p.level.unwrap_or(match p.action {
            Some(Action::Drop | Action::Reject) => 4,
            Some(Action::Accept) => 5,
            None => 6,
        }),
        Event::Raw(_) => 3,
        Event::Decision(d) => match d.verdict {
            event::Verdict::Ban => 4,
            event::Verdict::Unban => 5,
        },
        Event::Flow(_) | Event::Counter(_) | Event::Line(_) => 6,
    }
}

pub struct Header<'a> {
    pub format: Format,
    pub facility: u8,
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub procid: &'a str,
    pub msgid: &'a str,
}

impl Header<'_> {
    /// Writes the header for one message; the message body follows it. The structured data is
    /// left out: it is put in when the message is sent (it may hold a secret, which must not
    /// rest in the spool), and the place it goes is returned (RFC 5424 only).
    pub fn write(
        &self,
        severity: u8,
        time: Timestamp,
        host: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let pri = self.facility as u16 * 8 + severity as u16;
        let host = host.unwrap_or(self.hostname);
        match self.format {
            Format::Rfc5424 => {
                let _ = write!(out, "<{pri}>1 ");
                time.write_rfc3339_utc(out);
                let _ = write!(
                    out,
                    " {} {} {} {} ",
                    nil_or(host),
                    nil_or(self.app_name),
                    nil_or(self.procid),
                    nil_or(self.msgid)
                );
                let at = out.len();
                out.push(b' ');
                Some(at)
            }
            Format::Rfc3164 => {
                let _ = write!(out, "<{pri}>");
                bsd_time(time, out);
                let _ = write!(out, " {} {}", host, self.app_name);
                if !self.procid.is_empty() {
                    let _ = write!(out, "[{}]", self.procid);
                }
                out.extend_from_slice(b": ");
                None
            }
        }
    }
}

/// `Nov 23 10:00:00` (day space-padded), local time.
fn bsd_time(t: Timestamp, out: &mut Vec<u8>) {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(t.secs, 0).single() {
        Some(d) => {
            let _ = write!(out, "{}", d.format("%b %e %H:%M:%S"));
        }
        None => out.extend_from_slice(b"Jan  1 00:00:00"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_values_are_escaped() {
        let mut v = Vec::new();
        escape_param(r#"a"b\c]d"#, &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), r#"a\"b\\c\]d"#);
    }

    #[test]
    fn headers() {
        let h = Header {
            format: Format::Rfc5424,
            facility: 0,
            hostname: "fw1",
            app_name: "kernel",
            procid: "",
            msgid: "LOG",
        };
        let mut v = Vec::new();
        let at = h.write(
            4,
            Timestamp {
                secs: 1_795_442_637,
                micros: 625_094,
            },
            None,
            &mut v,
        );
        assert_eq!(at, Some(v.len() - 1));
        v.splice(
            at.unwrap()..at.unwrap(),
            *b"[SEKOIA@53288 intake_key=\"k\"]",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "<4>1 2026-11-23T14:03:57.625094Z fw1 kernel - LOG [SEKOIA@53288 intake_key=\"k\"] "
        );
        let h = Header {
            format: Format::Rfc3164,
            facility: 16,
            hostname: "fw1",
            app_name: "kernel",
            procid: "",
            msgid: "",
        };
        let mut v = Vec::new();
        let at = h.write(
            6,
            Timestamp {
                secs: 1_795_442_637,
                micros: 0,
            },
            Some("edge"),
            &mut v,
        );
        assert_eq!(at, None);
        let s = String::from_utf8(v).unwrap();
        assert!(
            s.starts_with("<134>") && s.ends_with(" edge kernel: "),
            "{s}"
        );
    }
}
