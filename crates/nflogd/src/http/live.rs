//! What the dashboard shows live, fed by the `dashboard` sink: the last events (each with a
//! sequence number, so a client asks for what is newer), packets per minute and action for the
//! last day, and where the logged addresses are when a geoip transform runs. One per process.

use event::{Event, Timestamp};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Events kept for the live views.
const RECENT: usize = 2000;
/// Minutes of per-action counts kept.
const MINUTES: usize = 24 * 60;
/// Places counted on the map; further ones are not added.
const PLACES: usize = 5000;

/// One event as the live views list it.
pub struct Recent {
    pub seq: u64,
    pub time: Timestamp,
    /// `packet`, `flow`, `counter`, `raw`, `decision`.
    pub kind: &'static str,
    /// accept/drop/reject for packets, new/update/destroy for flows, ban/unban for decisions.
    pub action: &'static str,
    pub prefix: Arc<str>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub protocol: Option<u8>,
    /// One line for people (and the text a filter looks in).
    pub line: String,
    pub event: Arc<Event>,
}

/// Packets counted in one minute, by action: none known, accept, drop, reject.
#[derive(Clone, Copy, Default)]
pub struct Minute {
    pub minute: i64,
    pub counts: [u64; 4],
}

#[derive(Clone)]
pub struct Place {
    pub country: Option<Box<str>>,
    pub city: Option<Box<str>>,
    /// Millionths of a degree.
    pub lat: i32,
    pub lon: i32,
    pub packets: u64,
    pub dropped: u64,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    /// The events themselves: described only when a view asks (`since`), so that a flood
    /// costs the sink a copy per event and no formatting.
    recent: VecDeque<(u64, Arc<Event>)>,
    minutes: VecDeque<Minute>,
    places: HashMap<(i32, i32), Place>,
}

#[derive(Default)]
pub struct Live {
    inner: Mutex<Inner>,
    /// Woken at every batch, for the live tails.
    grew: Condvar,
}

/// The process's live state.
pub fn live() -> &'static Live {
    static L: OnceLock<Live> = OnceLock::new();
    L.get_or_init(Live::default)
}

fn action_index(a: &str) -> usize {
    match a {
        "accept" => 1,
        "drop" => 2,
        "reject" => 3,
        _ => 0,
    }
}

impl Live {
    /// Takes a batch: counts every packet, keeps the last `RECENT` events.
    pub fn push(&self, batch: &[Event]) {
        let Ok(mut g) = self.inner.lock() else { return };
        for ev in batch {
            if let Event::Packet(p) = ev {
                let action = p.action.map(|a| a.as_str()).unwrap_or("");
                count_minute(&mut g.minutes, p.time.secs / 60, action_index(action));
                if let Some(e) = &p.enrich {
                    if let Some(place) = &e.source.place {
                        count_place(
                            &mut g.places,
                            place,
                            action != "accept" && !action.is_empty(),
                        );
                    }
                }
            }
        }
        let skip = batch.len().saturating_sub(RECENT);
        for ev in &batch[skip..] {
            if ev.is_line() {
                continue;
            }
            g.seq += 1;
            let kept = (g.seq, Arc::new(ev.clone()));
            if g.recent.len() == RECENT {
                g.recent.pop_front();
            }
            g.recent.push_back(kept);
        }
        drop(g);
        self.grew.notify_all();
    }

    /// The sequence number of the newest event.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().map(|g| g.seq).unwrap_or(0)
    }

    /// Events newer than `after` that `filter` takes, oldest first, at most `limit` (the newest
    /// ones when there are more).
    pub fn since(&self, after: u64, filter: &Filter, limit: usize) -> Vec<Arc<Recent>> {
        // Taken under the lock, described outside it.
        let newer: Vec<(u64, Arc<Event>)> = match self.inner.lock() {
            Ok(g) => g
                .recent
                .iter()
                .rev()
                .take_while(|(seq, _)| *seq > after)
                .cloned()
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut out: Vec<Arc<Recent>> = newer
            .into_iter()
            .map(|(seq, ev)| describe(seq, ev))
            .filter(|r| filter.takes(r))
            .take(limit)
            .map(Arc::new)
            .collect();
        out.reverse();
        out
    }

    /// Waits up to `timeout` for an event newer than `after`.
    pub fn wait_newer(&self, after: u64, timeout: Duration) {
        let Ok(g) = self.inner.lock() else { return };
        let _ = self.grew.wait_timeout_while(g, timeout, |g| g.seq <= after);
    }

    /// Per-minute counts, oldest first, from `since_minute` on.
    pub fn minutes(&self, since_minute: i64) -> Vec<Minute> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        g.minutes
            .iter()
            .filter(|m| m.minute >= since_minute)
            .copied()
            .collect()
    }

    pub fn places(&self) -> Vec<Place> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        let mut v: Vec<Place> = g.places.values().cloned().collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.packets));
        v
    }
}

fn count_minute(minutes: &mut VecDeque<Minute>, minute: i64, action: usize) {
    // Events come mostly in time order; an older minute still kept is found from the back.
    if let Some(m) = minutes
        .iter_mut()
        .rev()
        .take(5)
        .find(|m| m.minute == minute)
    {
        m.counts[action] += 1;
        return;
    }
    if minutes.back().is_some_and(|m| m.minute > minute) {
        return; // older than what is kept in order: not shown
    }
    let mut m = Minute {
        minute,
        counts: [0; 4],
    };
    m.counts[action] = 1;
    minutes.push_back(m);
    while minutes.len() > MINUTES {
        minutes.pop_front();
    }
}

fn count_place(places: &mut HashMap<(i32, i32), Place>, p: &event::Place, dropped: bool) {
    let Some((lat, lon)) = p.location else { return };
    let len = places.len();
    let entry = match places.entry((lat, lon)) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) if len < PLACES => v.insert(Place {
            country: p.country_iso_code.clone(),
            city: p.city_name.clone(),
            lat,
            lon,
            packets: 0,
            dropped: 0,
        }),
        _ => return,
    };
    entry.packets += 1;
    entry.dropped += dropped as u64;
}

fn describe(seq: u64, event: Arc<Event>) -> Recent {
    let shared = event.clone();
    let ev: &Event = &shared;
    let mut r = Recent {
        seq,
        time: Timestamp::default(),
        kind: "",
        action: "",
        prefix: Arc::from(""),
        src: None,
        dst: None,
        sport: None,
        dport: None,
        protocol: None,
        line: String::new(),
        event,
    };
    let key = match ev {
        Event::Packet(p) => {
            r.time = p.time;
            r.kind = "packet";
            r.action = p.action.map(|a| a.as_str()).unwrap_or("");
            r.prefix = p.prefix.clone();
            p.key()
        }
        Event::Flow(f) => {
            r.time = f.time;
            r.kind = "flow";
            r.action = f.kind.as_str();
            f.key()
        }
        Event::Counter(c) => {
            r.time = c.time;
            r.kind = "counter";
            r.prefix = Arc::from(c.name.as_str());
            let _ = write!(
                r.line,
                "counter {} packets={} bytes={}",
                c.name, c.packets, c.bytes
            );
            None
        }
        Event::Raw(l) => {
            r.time = l.time;
            r.kind = "raw";
            let _ = write!(r.line, "unparsed ({}) {}", l.reason, l.line);
            None
        }
        Event::Decision(d) => {
            r.time = d.time;
            r.kind = "decision";
            r.action = d.verdict.as_str();
            r.src = Some(d.address);
            let _ = write!(
                r.line,
                "{} {} {} ({})",
                d.verdict.as_str(),
                d.prefix,
                d.detector,
                d.reason
            );
            None
        }
        Event::Line(_) => None,
    };
    if !matches!(ev, Event::Packet(_) | Event::Flow(_)) {
        return r;
    }
    let _ = write!(
        r.line,
        "{}",
        if r.action.is_empty() { "-" } else { r.action }
    );
    if !r.prefix.is_empty() {
        let _ = write!(r.line, " [{}]", r.prefix.trim());
    }
    match key {
        Some(k) => {
            r.src = Some(k.src);
            r.dst = Some(k.dst);
            r.protocol = Some(k.protocol);
            if let Some((s, d)) = k.ports {
                r.sport = Some(s);
                r.dport = Some(d);
            }
            let proto = packet::proto::name(k.protocol)
                .map(str::to_string)
                .unwrap_or_else(|| k.protocol.to_string());
            let _ = write!(
                r.line,
                " {proto} {} -> {}",
                endpoint(k.src, r.sport),
                endpoint(k.dst, r.dport)
            );
        }
        None => r.line.push_str(" (no IP header)"),
    }
    if let Event::Packet(p) = ev {
        for (tag, i) in [("in", &p.indev), ("out", &p.outdev)] {
            if let Some(i) = i {
                let _ = write!(r.line, " {tag}={}", i.name);
            }
        }
    }
    r
}

fn endpoint(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    }
}

/// What a live view asks for: free text (any case) found in the event's line, and an action
/// (or several, with commas).
#[derive(Default, Debug, Clone)]
pub struct Filter {
    pub text: Option<String>,
    pub action: Option<String>,
}

impl Filter {
    pub fn takes(&self, r: &Recent) -> bool {
        if let Some(a) = &self.action {
            if !a
                .split(',')
                .any(|a| a.trim().eq_ignore_ascii_case(r.action))
            {
                return false;
            }
        }
        match &self.text {
            Some(t) if !t.is_empty() => contains_ignore_case(&r.line, t),
            _ => true,
        }
    }
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let n = needle.to_lowercase();
    hay.to_lowercase().contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_count_in_order_and_drop_the_oldest() {
        let mut m = VecDeque::new();
        count_minute(&mut m, 10, 2);
        count_minute(&mut m, 10, 2);
        count_minute(&mut m, 11, 1);
        count_minute(&mut m, 10, 3);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].counts, [0, 0, 2, 1]);
        assert_eq!(m[1].counts, [0, 1, 0, 0]);
        for i in 0..(MINUTES as i64 + 5) {
            count_minute(&mut m, 100 + i, 0);
        }
        assert_eq!(m.len(), MINUTES);
        assert_eq!(m.back().unwrap().minute, 100 + MINUTES as i64 + 4);
    }

    /// Located sources are counted by place, dropped apart; the newest events are kept, each
    /// with its number, and a filter finds them by the text of their line.
    #[test]
    fn places_and_recent_events() {
        let located = |lat: i32, action: event::Action| {
            let place = event::Place {
                country_iso_code: Some("SE".into()),
                location: Some((lat, 18_000_000)),
                ..Default::default()
            };
            let mut p = event::PacketEvent {
                action: Some(action),
                prefix: Arc::from("EDGE DROP "),
                ..Default::default()
            };
            p.enrich = Some(Box::new(event::Enrichment {
                source: event::Endpoint {
                    place: Some(Arc::new(place)),
                    ..Default::default()
                },
                ..Default::default()
            }));
            Event::Packet(p)
        };
        let live = Live::default();
        live.push(&[
            located(59_000_000, event::Action::Drop),
            located(59_000_000, event::Action::Drop),
            located(59_000_000, event::Action::Accept),
            located(57_000_000, event::Action::Reject),
        ]);
        let places = live.places();
        assert_eq!(places.len(), 2);
        assert_eq!(
            (places[0].lat, places[0].packets, places[0].dropped),
            (59_000_000, 3, 2)
        );
        assert_eq!((places[1].packets, places[1].dropped), (1, 1));
        assert_eq!(places[0].country.as_deref(), Some("SE"));
        assert_eq!(live.last_seq(), 4);
        let all = live.since(0, &Filter::default(), 10);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let dropped = Filter {
            action: Some("drop,reject".into()),
            ..Default::default()
        };
        assert_eq!(live.since(0, &dropped, 10).len(), 3);
        assert_eq!(live.since(2, &dropped, 10).len(), 1);
        let text = Filter {
            text: Some("edge drop".into()),
            ..Default::default()
        };
        assert_eq!(
            live.since(0, &text, 2)
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [3, 4]
        );
    }
}
