//! Kernel LOG lines → events, shared by every line source (`kmsg`, `file`, `syslog`, `stdin`) and
//! by `nflogd parse`: unwrap the envelope, parse the kernel text, derive the verdict.

use crate::metrics::ComponentCounters;
use crate::transforms::action::{ActionConfig, ActionResolver};
use event::{Event, RawLine, Timestamp};
use logline::envelope;
use std::collections::HashMap;
use std::sync::Arc;

/// What became of one line.
pub enum Outcome {
    /// A netfilter record, or a raw record for a netfilter line that did not parse.
    Event(Event),
    /// Not a netfilter line (other kernel or daemon messages): counted, not kept.
    NotNetfilter,
}

pub struct LineDecoder {
    actions: ActionResolver,
    origin: Arc<str>,
    hosts: HashMap<String, Arc<str>>,
    prefixes: HashMap<String, Arc<str>>,
    /// Wall-clock time of boot, to place /dev/kmsg's monotonic stamps.
    boot: Option<f64>,
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

/// Whether a line carries the kernel's `IN=… OUT=` fields at all.
pub fn looks_like_netfilter(body: &str) -> bool {
    body.contains("IN=") && body.contains(" OUT=")
}

impl LineDecoder {
    pub fn new(origin: &str, actions: Arc<ActionConfig>, counters: Arc<ComponentCounters>) -> Self {
        LineDecoder {
            actions: ActionResolver::new(actions, None),
            origin: Arc::from(origin),
            hosts: HashMap::new(),
            prefixes: HashMap::new(),
            boot: None,
            counters,
        }
    }

    fn intern(map: &mut HashMap<String, Arc<str>>, s: &str) -> Arc<str> {
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

    /// Decodes one line; `position` is its line number or offset in the origin.
    pub fn decode(&mut self, line: &str, position: Option<u64>) -> Outcome {
        let env = envelope::open(line);
        if !looks_like_netfilter(env.body) {
            ComponentCounters::add(&self.counters.ignored, 1);
            return Outcome::NotNetfilter;
        }
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
        let host = env.host.map(|h| Self::intern(&mut self.hosts, h));
        match logline::parse(env.body) {
            Ok(p) => {
                let mut ev = p.event;
                ev.prefix = Self::intern(&mut self.prefixes, &ev.prefix);
                ev.action = self.actions.resolve(&ev.prefix);
                ev.time = time;
                ev.host = host;
                ev.level = env.level;
                ev.log_flags = Some(p.flags.0);
                Outcome::Event(Event::Packet(ev))
            }
            Err(e) => {
                ComponentCounters::add(&self.counters.malformed, 1);
                crate::rate_limited_warn!(
                    "{}{}: not a valid netfilter LOG line ({e}); kept as a raw record",
                    self.origin,
                    position.map(|p| format!(":{p}")).unwrap_or_default()
                );
                Outcome::Event(Event::Raw(RawLine {
                    time,
                    host,
                    origin: self.origin.clone(),
                    position,
                    line: line.trim_end_matches(['\n', '\r']).to_string(),
                    reason: e.to_string(),
                }))
            }
        }
    }
}
