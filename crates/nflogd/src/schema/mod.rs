//! Output schemas: one event, three renderings. `ulogd` (the keys of ulogd2's JSON output),
//! `ecs` (Elastic Common Schema 8.x) and `text` (the kernel's own LOG line).

mod ecs;
pub mod json;
mod text;
mod ulogd;

use event::{Event, Timestamp};
use logline::LogFlags;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchemaKind {
    Ulogd,
    #[default]
    Ecs,
    Text,
}

/// What a renderer needs besides the event.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    pub kind: SchemaKind,
    /// ulogd's `dvc` value ("Netfilter").
    pub device: String,
    /// ulogd's `boolean_label`: `action: allowed|blocked` instead of `raw.label`.
    pub boolean_label: bool,
    /// Log flags the `text` schema renders with.
    pub log_flags: LogFlags,
    /// observer.hostname for `ecs`.
    pub hostname: String,
}

/// Renders events of one sink; keeps small caches (the local UTC offset).
pub struct Renderer {
    opts: SchemaOptions,
    tz: LocalOffset,
}

impl Renderer {
    pub fn new(opts: SchemaOptions) -> Self {
        Renderer {
            opts,
            tz: LocalOffset::default(),
        }
    }

    /// Appends one record (no newline).
    pub fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        match ev {
            Event::Packet(p) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::packet(p, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::packet(p, &self.opts, out),
                SchemaKind::Text => text::packet(p, &self.opts, out),
            },
            Event::Flow(f) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::flow(f, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::flow(f, &self.opts, out),
                SchemaKind::Text => text::flow(f, out),
            },
            Event::Raw(r) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::raw(r, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::raw(r, &self.opts, out),
                SchemaKind::Text => out.extend_from_slice(r.line.as_bytes()),
            },
        }
    }
}

/// Local-time stamps `2026-11-23T15:04:05.123456+0100`: the zone offset is looked up once per
/// hour of event time and the date-time text once per second.
#[derive(Default)]
pub struct LocalOffset {
    hour: i64,
    offset: i64,
    second: i64,
    text: Vec<u8>,
}

impl LocalOffset {
    pub fn at(&mut self, t: Timestamp) -> i64 {
        let hour = t.secs.div_euclid(3600);
        if self.text.is_empty() || hour != self.hour {
            use chrono::{Offset, TimeZone};
            self.offset = chrono::Local
                .timestamp_opt(t.secs, 0)
                .single()
                .map(|d| d.offset().fix().local_minus_utc() as i64)
                .unwrap_or(0);
            self.hour = hour;
            self.text.clear();
        }
        self.offset
    }

    /// Writes the stamp of `t` in local time with its `±HHMM` offset.
    pub fn write(&mut self, t: Timestamp, out: &mut Vec<u8>) {
        let off = self.at(t);
        if self.text.is_empty() || self.second != t.secs {
            self.second = t.secs;
            self.text.clear();
            Timestamp {
                secs: t.secs,
                micros: 0,
            }
            .write_iso(off, &mut self.text);
            self.text.truncate(self.text.len() - 6);
        }
        out.extend_from_slice(&self.text);
        let mut b = [b'0'; 6];
        let mut u = t.micros.min(999_999);
        for d in b.iter_mut().rev() {
            *d = b'0' + (u % 10) as u8;
            u /= 10;
        }
        out.extend_from_slice(&b);
        let a = off.unsigned_abs();
        let (h, m) = (a / 3600, a % 3600 / 60);
        out.extend_from_slice(&[
            if off < 0 { b'-' } else { b'+' },
            b'0' + (h / 10) as u8,
            b'0' + (h % 10) as u8,
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
        ]);
    }
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// MAC (or any bytes) as `aa:bb:cc:dd:ee:ff`.
pub fn mac_colon(b: &[u8], out: &mut Vec<u8>) {
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX_LOWER[(x >> 4) as usize]);
        out.push(HEX_LOWER[(x & 15) as usize]);
    }
}

/// An IP address as JSON string, without allocating.
pub fn ip_string(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    out.push(b'"');
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*o).as_bytes());
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_stamp_matches_the_uncached_form() {
        let mut tz = LocalOffset::default();
        for (secs, micros) in [
            (1_795_446_327, 207_109),
            (1_795_446_327, 5),
            (1_795_446_328, 999_999),
        ] {
            let t = Timestamp { secs, micros };
            let mut cached = Vec::new();
            tz.write(t, &mut cached);
            let off = tz.at(t);
            let mut plain = Vec::new();
            t.write_iso(off, &mut plain);
            let s = String::from_utf8(cached).unwrap();
            assert!(s.starts_with(std::str::from_utf8(&plain).unwrap()), "{s}");
            assert_eq!(s.len(), 26 + 5);
        }
    }
}
