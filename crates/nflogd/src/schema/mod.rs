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
        }
    }
}

/// The local zone's UTC offset, looked up once per hour of event time.
#[derive(Default)]
pub struct LocalOffset {
    hour: i64,
    offset: i64,
    valid: bool,
}

impl LocalOffset {
    pub fn at(&mut self, t: Timestamp) -> i64 {
        let hour = t.secs.div_euclid(3600);
        if !self.valid || hour != self.hour {
            use chrono::{Offset, TimeZone};
            self.offset = chrono::Local
                .timestamp_opt(t.secs, 0)
                .single()
                .map(|d| d.offset().fix().local_minus_utc() as i64)
                .unwrap_or(0);
            self.hour = hour;
            self.valid = true;
        }
        self.offset
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
