//! Output schemas: one event, three renderings. `ulogd` (the keys of ulogd2's JSON output),
//! `ecs` (Elastic Common Schema 8.x) and `text` (the kernel's own LOG line).

pub mod community_id;
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
    /// ulogd2's PRINTPKT line, with LOGEMU's header in files.
    Logemu,
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
    /// `ecs`: the seed of `network.community_id`; None leaves it out.
    pub community_id: Option<u16>,
    /// `logemu`: start each record with LOGEMU's `Mon DD HH:MM:SS host ` (files; a syslog
    /// message has its own header).
    pub line_header: bool,
}

/// Renders events of one sink; keeps small caches (the local UTC offset).
pub struct Renderer {
    opts: SchemaOptions,
    tz: LocalOffset,
    /// `logemu`: the last header written and the second it is for (a log has many records a
    /// second, and formatting the local time is the expensive part).
    line_header: (i64, Vec<u8>),
}

impl Renderer {
    pub fn new(opts: SchemaOptions) -> Self {
        Renderer {
            opts,
            tz: LocalOffset::default(),
            line_header: (i64::MIN, Vec::new()),
        }
    }

    /// Appends one record (no newline).
    pub fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        if self.opts.kind == SchemaKind::Logemu {
            return self.logemu(ev, out);
        }
        match ev {
            Event::Packet(p) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::packet(p, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::packet(p, &self.opts, out),
                SchemaKind::Text => text::packet(p, &self.opts, out),
                SchemaKind::Logemu => unreachable!("rendered by Renderer::logemu"),
            },
            Event::Flow(f) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::flow(f, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::flow(f, &self.opts, out),
                SchemaKind::Text | SchemaKind::Logemu => text::flow(f, out),
            },
            Event::Counter(c) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::counter(c, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::counter(c, &self.opts, out),
                SchemaKind::Text | SchemaKind::Logemu => text::counter(c, out),
            },
            Event::Raw(r) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::raw(r, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::raw(r, &self.opts, out),
                SchemaKind::Text | SchemaKind::Logemu => out.extend_from_slice(r.line.as_bytes()),
            },
            Event::Decision(d) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::decision(d, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::decision(d, &self.opts, out),
                SchemaKind::Text | SchemaKind::Logemu => text::decision(d, out),
            },
            Event::Line(l) => match self.opts.kind {
                SchemaKind::Ulogd => ulogd::line(l, &self.opts, &mut self.tz, out),
                SchemaKind::Ecs => ecs::line(l, &self.opts, out),
                SchemaKind::Text | SchemaKind::Logemu => text::line(l, out),
            },
        }
    }
}

impl Renderer {
    /// ulogd2's LOGEMU: its header (in files), then PRINTPKT's line for a packet and the
    /// `text` line for anything else, as LOGEMU prints PRINTFLOW's.
    fn logemu(&mut self, ev: &Event, out: &mut Vec<u8>) {
        if self.opts.line_header {
            let t = match ev {
                Event::Packet(p) => p.time,
                Event::Flow(f) => f.time,
                Event::Counter(c) => c.time,
                Event::Raw(r) => r.time,
                Event::Decision(d) => d.time,
                Event::Line(l) => l.time,
            };
            if self.line_header.0 != t.secs {
                let offset = self.tz.at(t);
                let local = chrono::FixedOffset::east_opt(offset as i32).and_then(|z| {
                    chrono::DateTime::from_timestamp(t.secs, 0).map(|d| d.with_timezone(&z))
                });
                self.line_header.1.clear();
                if let Some(local) = local {
                    logline::logemu::header(&local, &self.opts.hostname, &mut self.line_header.1);
                }
                self.line_header.0 = t.secs;
            }
            out.extend_from_slice(&self.line_header.1);
        }
        match ev {
            Event::Packet(p) if p.partial && p.original.is_some() => {
                out.extend_from_slice(p.original.as_deref().unwrap_or_default().as_bytes())
            }
            Event::Packet(p) => logline::logemu::render(p, out),
            Event::Flow(f) => text::flow(f, out),
            Event::Counter(c) => text::counter(c, out),
            Event::Raw(r) => out.extend_from_slice(r.line.as_bytes()),
            Event::Decision(d) => text::decision(d, out),
            Event::Line(l) => text::line(l, out),
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

/// An IP address as text, without allocating.
pub fn ip_text(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    match ip {
        std::net::IpAddr::V4(v4) => ipv4_text(v4, out),
        std::net::IpAddr::V6(v6) => ipv6_text(v6, out),
    }
}

/// An IP address as JSON string, without allocating.
pub fn ip_string(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    out.push(b'"');
    match ip {
        std::net::IpAddr::V4(v4) => ipv4_text(v4, out),
        std::net::IpAddr::V6(v6) => ipv6_text(v6, out),
    }
    out.push(b'"');
}

/// Composed on the stack from a table of the 256 octets and copied once: a push per digit was
/// a sixth of the instructions of a conntrack flow's ulogd record, which has four addresses.
fn ipv4_text(v4: std::net::Ipv4Addr, out: &mut Vec<u8>) {
    let mut text = [0u8; 16];
    let mut len = 0;
    for o in v4.octets() {
        let (digits, n) = OCTET_TEXT[o as usize];
        text[len..len + 3].copy_from_slice(&digits);
        len += n as usize;
        text[len] = b'.';
        len += 1;
    }
    out.extend_from_slice(&text[..len - 1]);
}

/// Each octet's decimal digits, left-aligned, and how many there are.
static OCTET_TEXT: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let n = i as u8;
        table[i] = if n >= 100 {
            ([b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10], 3)
        } else if n >= 10 {
            ([b'0' + n / 10, b'0' + n % 10, 0], 2)
        } else {
            ([b'0' + n, 0, 0], 1)
        };
        i += 1;
    }
    table
};

/// The text `Display` gives (RFC 5952: lower case, the longest run of two or more zero groups
/// as `::`, the first of equal runs; `::ffff:a.b.c.d` for IPv4-mapped), written directly: the
/// formatting machinery showed in the ECS encoder's profile. A test holds the two equal.
fn ipv6_text(v6: std::net::Ipv6Addr, out: &mut Vec<u8>) {
    if let Some(v4) = v6.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        return ipv4_text(v4, out);
    }
    let g = v6.segments();
    let (mut best, mut best_len, mut run) = (0, 0, 0);
    for (i, &x) in g.iter().enumerate() {
        run = if x == 0 { run + 1 } else { 0 };
        if run > best_len {
            (best, best_len) = (i + 1 - run, run);
        }
    }
    let group = |out: &mut Vec<u8>, x: u16| {
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = (x >> shift) & 15;
            if d != 0 || started || shift == 0 {
                out.push(HEX_LOWER[d as usize]);
                started = true;
            }
        }
    };
    let groups = |out: &mut Vec<u8>, gs: &[u16]| {
        for (i, &x) in gs.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            group(out, x);
        }
    };
    if best_len > 1 {
        groups(out, &g[..best]);
        out.extend_from_slice(b"::");
        groups(out, &g[best + best_len..]);
    } else {
        groups(out, &g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_is_display() {
        for n in (0..=u32::MAX)
            .step_by(65_521)
            .chain([0, 10, 99, 100, 255, 256, u32::MAX])
        {
            let a = std::net::Ipv4Addr::from(n.rotate_left(n % 32));
            let mut out = Vec::new();
            ipv4_text(a, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), a.to_string());
        }
    }

    #[test]
    fn ipv6_text_is_display() {
        let mut x = 7u64;
        for n in 0..300_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mostly zero groups, so that every placement of runs shows up; some mapped and
            // compatible IPv4 forms.
            let mut g: [u16; 8] = std::array::from_fn(|i| {
                if (x >> (i * 3)) & 3 == 0 {
                    (x >> (i * 7 + 5)) as u16 >> (x >> 60)
                } else {
                    0
                }
            });
            match n % 16 {
                0 => g[..5].fill(0),
                1 => {
                    g[..5].fill(0);
                    g[5] = 0xffff;
                }
                _ => {}
            }
            let a = std::net::Ipv6Addr::from(g);
            let mut out = Vec::new();
            ipv6_text(a, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), a.to_string(), "{g:x?}");
        }
    }

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

#[cfg(test)]
mod flow_tests {
    use super::*;
    use event::{family, FlowEvent, FlowKind};
    use nfnetlink::ctnetlink::{Conntrack, Counters, Tuple};

    fn render(kind: SchemaKind, f: &FlowEvent) -> String {
        let mut r = Renderer::new(SchemaOptions {
            kind,
            device: "Netfilter".into(),
            boolean_label: false,
            log_flags: LogFlags::default(),
            hostname: "fw".into(),
            community_id: Some(0),
            line_header: true,
        });
        let mut out = Vec::new();
        r.render(&Event::Flow(f.clone()), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// An IPv6 port forward (DNAT 2001:db8::1:443 → fd00::5:8443) that ended after 2.5 s.
    fn port_forward() -> FlowEvent {
        let t = |s: &str, sp, d: &str, dp| Tuple {
            src: Some(s.parse().unwrap()),
            dst: Some(d.parse().unwrap()),
            protocol: 6,
            sport: Some(sp),
            dport: Some(dp),
            ..Tuple::default()
        };
        FlowEvent {
            time: event::Timestamp {
                secs: 1_700_000_000,
                micros: 0,
            },
            kind: FlowKind::Destroy,
            family: family::IPV6,
            ct: Conntrack {
                orig: t("2001:db8::9", 50000, "2001:db8::1", 443),
                reply: t("fd00::5", 8443, "2001:db8::9", 50000),
                id: Some(77),
                labels: Some(1 << 1 | 1 << 70),
                counters_orig: Some(Counters {
                    packets: 5,
                    bytes: 400,
                }),
                counters_reply: Some(Counters {
                    packets: 4,
                    bytes: 3000,
                }),
                start_ns: Some(1_700_000_000_000_000_000),
                stop_ns: Some(1_700_000_002_500_000_000),
                ..Conntrack::default()
            },
            recovered: false,
            enrich: None,
        }
    }

    /// A line that did not parse keeps where it came from: a file's path in ECS's
    /// `log.file.path`, the origin and line number under `netfilter` (ECS has no field for them).
    #[test]
    fn ecs_raw_records_use_ecs_log_fields() {
        let mut r = Renderer::new(SchemaOptions {
            kind: SchemaKind::Ecs,
            device: "Netfilter".into(),
            boolean_label: false,
            log_flags: LogFlags::default(),
            hostname: "fw".into(),
            community_id: Some(0),
            line_header: true,
        });
        let mut raw = |origin: &str| {
            let mut out = Vec::new();
            r.render(
                &Event::Raw(Box::new(event::RawLine {
                    time: event::Timestamp::default(),
                    host: None,
                    origin: origin.into(),
                    position: Some(12),
                    line: "IN=x SRC=nonsense".into(),
                    reason: "bad".into(),
                })),
                &mut out,
            );
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = raw("/var/log/kern.log");
        assert_eq!(v["log"]["file"]["path"], "/var/log/kern.log");
        assert_eq!(v["netfilter"]["position"], 12);
        assert!(v["log"].get("origin").is_none() && v["log"].get("offset").is_none());
        let v = raw("tcp:192.0.2.1:5140");
        assert!(v.get("log").is_none());
        assert_eq!(v["netfilter"]["origin"], "tcp:192.0.2.1:5140");
    }

    #[test]
    fn ecs_flow_has_nat_counters_duration_and_labels() {
        let v: serde_json::Value =
            serde_json::from_str(&render(SchemaKind::Ecs, &port_forward())).unwrap();
        assert_eq!(v["destination"]["nat"]["ip"], "fd00::5");
        assert_eq!(v["destination"]["nat"]["port"], 8443);
        assert!(v["source"].get("nat").is_none(), "{v}");
        assert_eq!(v["network"]["bytes"], 3400);
        assert_eq!(v["network"]["packets"], 9);
        assert_eq!(v["network"]["type"], "ipv6");
        assert_eq!(v["event"]["duration"], 2_500_000_000u64);
        assert_eq!(v["event"]["start"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["netfilter"]["ct"]["labels"], serde_json::json!([1, 70]));
        assert_eq!(v["netfilter"]["ct"]["reply_sport"], 8443);
    }

    #[test]
    fn ulogd_flow_has_nfct_keys() {
        let v: serde_json::Value =
            serde_json::from_str(&render(SchemaKind::Ulogd, &port_forward())).unwrap();
        assert_eq!(v["src_ip"], "2001:db8::9"); // ulogd names orig.ip.saddr.str by its CIM name
        assert_eq!(v["reply.ip.saddr.str"], "fd00::5");
        assert_eq!(v["reply.l4.sport"], 8443);
        assert_eq!(v["orig.raw.pktlen"], 400);
        assert_eq!(v["ct.id"], 77);
        assert_eq!(v["flow.end.sec"], 1_700_000_002u64);
        assert_eq!(v["flow.end.usec"], 500_000);
    }

    /// A message with no attributes at all still gives a well-formed record in every schema.
    #[test]
    fn empty_entry_renders_in_every_schema() {
        let f = FlowEvent {
            ct: Conntrack::default(),
            ..port_forward()
        };
        for kind in [SchemaKind::Ecs, SchemaKind::Ulogd] {
            let s = render(kind, &f);
            serde_json::from_str::<serde_json::Value>(&s)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}: {s}"));
        }
        assert!(render(SchemaKind::Text, &f).starts_with("[DESTROY] ORIG: "));
    }
}
