//! Kernel LOG lines → events, shared by every line source (`kmsg`, `file`, `syslog`, `stdin`) and
//! by `nflogd parse`: unwrap the envelope, parse the kernel text, derive the verdict.

use crate::metrics::ComponentCounters;
use crate::transforms::action::{ActionConfig, ActionResolver};
use event::{Event, RawLine, Timestamp};
use logline::envelope;
use std::collections::HashMap;
use std::sync::Arc;

pub struct LineDecoder {
    actions: ActionResolver,
    origin: Arc<str>,
    hosts: HashMap<String, Arc<str>, foldhash::fast::RandomState>,
    last_host: Option<Arc<str>>,
    last_program: Option<Arc<str>>,
    /// Wall-clock time of boot, to place /dev/kmsg's monotonic stamps.
    boot: Option<f64>,
    /// The entry being gathered when the input is `journalctl -o export`.
    journal: envelope::JournalExport,
    /// Whether `journalctl -o export` entries are read at all: only where the configuration
    /// (or the `parse` command) says so, never because a peer sent a line that looks like one
    /// (a datagram starting `__CURSOR=` would otherwise turn every later line from that sender
    /// into fields of an entry that never ends).
    journal_export: bool,
    /// Whether lines that are not netfilter records go on as `Event::Line` (a guard reads
    /// them) rather than being counted as ignored.
    keep_lines: bool,
    counters: Arc<ComponentCounters>,
}

/// Wall-clock seconds at boot: realtime minus boottime now.
pub fn boot_time() -> f64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec for the call.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC)
}

impl LineDecoder {
    pub fn new(origin: &str, actions: Arc<ActionConfig>, counters: Arc<ComponentCounters>) -> Self {
        LineDecoder {
            actions: ActionResolver::new(actions, None),
            origin: Arc::from(origin),
            hosts: HashMap::default(),
            last_host: None,
            last_program: None,
            boot: None,
            journal: envelope::JournalExport::default(),
            journal_export: false,
            keep_lines: false,
            counters,
        }
    }

    /// Hands lines that are not netfilter records on, for a guard.
    pub fn keeping_lines(mut self, keep: bool) -> Self {
        self.keep_lines = keep;
        self
    }

    /// Reads `journalctl -o export` entries too.
    pub fn reading_journal_export(mut self) -> Self {
        self.journal_export = true;
        self
    }

    fn intern(
        map: &mut HashMap<String, Arc<str>, foldhash::fast::RandomState>,
        s: &str,
    ) -> Arc<str> {
        if let Some(v) = map.get(s) {
            return v.clone();
        }
        if map.len() > 4096 {
            map.clear();
        }
        let v: Arc<str> = Arc::from(s);
        map.insert(s.to_string(), v.clone());
        v
    }

    /// Interns through a one-entry cache first: consecutive lines mostly share prefix and host.
    fn intern_last(
        last: &mut Option<Arc<str>>,
        map: &mut HashMap<String, Arc<str>, foldhash::fast::RandomState>,
        s: &str,
    ) -> Arc<str> {
        if let Some(l) = last {
            if &**l == s {
                return l.clone();
            }
        }
        let v = Self::intern(map, s);
        *last = Some(v.clone());
        v
    }

    /// Decodes one line; `position` is its line number or offset in the origin. `None` for a
    /// line that is not a netfilter line at all (counted as ignored); a netfilter line that does
    /// not parse becomes a raw record.
    pub fn decode(&mut self, line: &str, position: Option<u64>) -> Option<Event> {
        if !self.journal_export {
            return self.decode_envelope(envelope::open(line), line, position);
        }
        match self.journal.line(line) {
            envelope::ExportLine::Plain => {
                self.decode_envelope(envelope::open(line), line, position)
            }
            envelope::ExportLine::Field => None,
            envelope::ExportLine::Entry(env) => {
                let text = env.body.to_string();
                self.decode_envelope(env, &text, position)
            }
        }
    }

    /// Decodes a line whose envelope the caller opened already.
    pub fn decode_envelope(
        &mut self,
        env: envelope::Envelope,
        line: &str,
        position: Option<u64>,
    ) -> Option<Event> {
        let parsed = if env.ulogd {
            logline::parse_ulogd(&env.body)
        } else {
            logline::parse_any(&env.body)
        };
        let time = env.time.unwrap_or_else(|| match env.kmsg_usec {
            Some(us) => {
                let boot = *self.boot.get_or_insert_with(boot_time);
                let t = boot + us as f64 / 1e6;
                Timestamp {
                    secs: t.floor() as i64,
                    micros: ((t.fract()) * 1e6) as u32,
                }
            }
            None => Timestamp::now(),
        });
        // A host name is at most 255 bytes (RFC 1035, RFC 5424's HOSTNAME): a longer one from a
        // peer is cut there, and counted.
        let host = env.host.as_deref().map(|h| {
            let h = if h.len() > MAX_HOST {
                ComponentCounters::add(&self.counters.truncated, 1);
                &h[..h.floor_char_boundary(MAX_HOST)]
            } else {
                h
            };
            Self::intern_last(&mut self.last_host, &mut self.hosts, h)
        });
        if parsed.as_ref().is_err_and(|e| e.is_not_netfilter()) {
            if !self.keep_lines {
                ComponentCounters::add(&self.counters.ignored, 1);
                return None;
            }
            // A program's name is at most a syslog TAG's 48 bytes (envelope) or journald's.
            let program = env
                .program
                .as_deref()
                .map(|p| Self::intern_last(&mut self.last_program, &mut self.hosts, p));
            return Some(Event::Line(Box::new(event::LogLine {
                time,
                host,
                program,
                pid: env.pid,
                message: env.body.into_owned(),
                origin: self.origin.clone(),
            })));
        }
        // The kernel's interface names are at most 15 bytes (IFNAMSIZ): a line with a longer
        // one was not printed by a kernel.
        let parsed = parsed.and_then(|p| match long_interface_name(&p.event) {
            Some(name) => Err(logline::ParseError {
                offset: env.body.find(name).unwrap_or(0),
                reason: "interface name longer than the kernel's 15 bytes",
            }),
            None => Ok(p),
        });
        match parsed {
            Ok(p) => {
                // The parser gives prefixes as shared strings already.
                let mut ev = p.event;
                if ev.partial {
                    ev.original = Some(Arc::from(env.body.trim_end_matches(['\n', '\r'])));
                    ComponentCounters::add(&self.counters.malformed, 1);
                    crate::rate_limited_warn!(
                        "{}{}: a netfilter line in no known layout; kept what its fields say (tagged partial)",
                        self.origin,
                        position.map(|p| format!(":{p}")).unwrap_or_default()
                    );
                }
                ev.action = self.actions.resolve(&ev.prefix);
                ev.time = time;
                ev.host = host;
                ev.level = env.level;
                ev.log_flags = Some(p.flags.0);
                Some(Event::Packet(ev))
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.malformed, 1);
                crate::rate_limited_warn!(
                    "{}{}: not a valid netfilter LOG line ({e}); kept as a raw record",
                    self.origin,
                    position.map(|p| format!(":{p}")).unwrap_or_default()
                );
                Some(Event::Raw(Box::new(RawLine {
                    time,
                    host,
                    origin: self.origin.clone(),
                    position,
                    line: line.trim_end_matches(['\n', '\r']).to_string(),
                    reason: e.to_string(),
                })))
            }
        }
    }
}

/// Longest host name kept from a line's header.
const MAX_HOST: usize = 255;

/// An interface name longer than the kernel allows, if the record has one.
fn long_interface_name(ev: &event::PacketEvent) -> Option<&str> {
    [&ev.indev, &ev.outdev, &ev.physindev, &ev.physoutdev]
        .into_iter()
        .flatten()
        .map(|i| &*i.name)
        .find(|n| n.len() > 15)
}

/// Gathers the events of a line source into batches for the fan-out.
pub struct LineBatcher {
    pub decoder: LineDecoder,
    fanout: crate::pipeline::Fanout,
    counters: Arc<ComponentCounters>,
    batch: Vec<Event>,
}

impl LineBatcher {
    pub fn new(
        origin: &str,
        actions: Arc<ActionConfig>,
        fanout: crate::pipeline::Fanout,
        counters: Arc<ComponentCounters>,
    ) -> Self {
        LineBatcher {
            decoder: LineDecoder::new(origin, actions, counters.clone())
                .keeping_lines(fanout.wants_lines()),
            fanout,
            counters,
            batch: Vec::with_capacity(256),
        }
    }

    pub fn line(&mut self, line: &str, position: Option<u64>) {
        let ev = self.decoder.decode(line, position);
        self.push(ev);
    }

    /// A line whose envelope the source opened already (kmsg reads its sequence number there).
    pub fn opened(&mut self, env: envelope::Envelope, line: &str, position: Option<u64>) {
        let ev = self.decoder.decode_envelope(env, line, position);
        self.push(ev);
    }

    fn push(&mut self, ev: Option<Event>) {
        if let Some(ev) = ev {
            self.batch.push(ev);
            if self.batch.len() >= 1024 {
                self.flush();
            }
        }
    }

    /// Sends what is gathered; returns the batch sent, for `taken`.
    pub fn flush(&mut self) -> Option<crate::pipeline::Sent> {
        if self.batch.is_empty() {
            return None;
        }
        ComponentCounters::add(&self.counters.received, self.batch.len() as u64);
        self.fanout.send(&mut self.batch)
    }

    /// Whether every sink has taken `sent`.
    pub fn taken(&self, sent: &crate::pipeline::Sent) -> bool {
        self.fanout.all_taken(sent)
    }
}

/// Splits a byte stream into lines, keeping a partial last line until its newline arrives.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Calls `f` with every complete line in `data` (without the newline); returns how many.
    pub fn feed(&mut self, data: &[u8], mut f: impl FnMut(&str)) -> usize {
        let mut n = 0;
        let mut rest = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let line = if self.partial.is_empty() {
                String::from_utf8_lossy(&rest[..i])
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                String::from_utf8_lossy(&self.partial).into_owned().into()
            };
            f(line.trim_end_matches('\r'));
            self.partial.clear();
            n += 1;
            rest = &rest[i + 1..];
        }
        if self.partial.len() + rest.len() > MAX_LINE {
            // A runaway line without newline: keep its start, it is reported when it ends.
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&rest[..room.min(rest.len())]);
        } else {
            self.partial.extend_from_slice(rest);
        }
        n
    }

    /// The pending partial line, if any (at end of input).
    pub fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let s = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        Some(s)
    }

    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// Longest line kept; the kernel's own limit is 1024 bytes, syslog relays allow more.
pub const MAX_LINE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "DROP IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 SYN URGP=0 ";

    fn decoder() -> (LineDecoder, Arc<ComponentCounters>) {
        let c = Arc::new(ComponentCounters::default());
        (
            LineDecoder::new("t", Arc::new(ActionConfig::default()), c.clone()),
            c,
        )
    }

    /// What a peer writes in a header or a field cannot grow without bound: a host name is cut
    /// at 255 bytes (counted), and an interface name longer than the kernel allows makes the
    /// line a raw record with its reason.
    #[test]
    fn host_and_interface_names_have_caps() {
        let (mut d, c) = decoder();
        let host = "h".repeat(1000);
        let line = format!("<4>1 2026-11-23T10:00:00Z {host} kernel - - - {BODY}");
        let Some(Event::Packet(p)) = d.decode(&line, None) else {
            panic!("not a packet")
        };
        assert_eq!(p.host.as_deref().map(str::len), Some(255));
        assert_eq!(c.truncated.load(std::sync::atomic::Ordering::Relaxed), 1);
        let long = BODY.replace("IN=eth0", &format!("IN={}", "e".repeat(40)));
        let Some(Event::Raw(r)) = d.decode(&long, None) else {
            panic!("a 40-byte interface name was taken")
        };
        assert!(r.reason.contains("15 bytes"), "{}", r.reason);
        let fine = BODY.replace("IN=eth0", "IN=enp0s31f6.1234");
        assert!(matches!(d.decode(&fine, None), Some(Event::Packet(_))));
    }

    /// A line in no known layout (an IPv4 ID past 16 bits) gives what its fields say, tagged
    /// partial, counted, with the line itself kept; one without readable addresses is raw.
    #[test]
    fn a_line_in_no_layout_is_partial_and_keeps_its_text() {
        let (mut d, c) = decoder();
        let odd = BODY.replace("ID=1 ", "ID=70000 ");
        let Some(Event::Packet(p)) = d.decode(&odd, Some(3)) else {
            panic!("not a packet")
        };
        assert!(p.partial);
        assert_eq!(p.original.as_deref(), Some(odd.as_str()));
        assert_eq!(p.headers.ports(), Some((1, 2)));
        assert_eq!(c.malformed.load(std::sync::atomic::Ordering::Relaxed), 1);
        let no_addr = odd.replace("SRC=10.0.0.1", "SRC=nowhere");
        assert!(matches!(d.decode(&no_addr, None), Some(Event::Raw(_))));
    }

    /// A datagram that looks like journald's export form is a line like any other unless the
    /// source reads that form: the next line from the same sender still gives its record.
    #[test]
    fn journal_export_only_when_asked() {
        let (mut d, _) = decoder();
        assert!(d.decode("__CURSOR=s=1", None).is_none());
        assert!(matches!(d.decode(BODY, None), Some(Event::Packet(_))));
        let (d, _) = decoder();
        let mut d = d.reading_journal_export();
        assert!(d.decode("__CURSOR=s=1", None).is_none());
        assert!(
            d.decode(&format!("MESSAGE={BODY}"), None).is_none(),
            "a field, kept"
        );
    }
}
