//! Paths from text: iptables' TRACE lines (`TRACE: raw:PREROUTING:rule:2 IN=…`, one kernel LOG
//! line per rule a packet matched, from iptables-legacy) and `xtables-monitor --trace` output
//! (`PACKET: 2 1a2b3c4d …` and ` TRACE: 2 1a2b3c4d filter:INPUT:rule:0x5:DROP  -4 -t filter -A
//! INPUT …`, iptables-nft's view of nf_tables trace events), gathered per packet into the same
//! records the `nftrace` source makes.
//!
//! A TRACE line names the rule by its number in the chain, not its verdict: when the line was
//! logged here, the rule and the verdict are looked up in `iptables-legacy-save`; from another
//! host the step says what the line does (`rule`, `return`, `policy`).

use event::{Action, Event, LogLine, PacketEvent, Trace, TraceStep};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What identifies a packet across its lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// xtables-monitor: the kernel's trace id.
    Monitor(u32),
    /// A TRACE line: what no hook changes — the source (SNAT changes it last), the IPv4 id or
    /// IPv6 flow label, the protocol, the length and the source port. Not the destination,
    /// which DNAT changes mid-path.
    Legacy(u8, Option<IpAddr>, u32, u8, u32, u16),
}

struct Open {
    packet: PacketEvent,
    path: Vec<TraceStep>,
    id: Option<u32>,
    last: Instant,
}

/// Gathers the text traces of one input. Events that are not traces pass through.
pub struct TextTraces {
    open: HashMap<Key, Open>,
    idle: Duration,
    rules: LegacyRules,
    hostname: String,
}

/// Most packets gathered at once: beyond this the oldest is sent as it is.
const MAX_OPEN: usize = 4096;

impl TextTraces {
    pub fn new(idle: Duration) -> Self {
        TextTraces {
            open: HashMap::new(),
            idle,
            rules: LegacyRules::default(),
            hostname: crate::topology::hostname(),
        }
    }

    /// Takes the traces out of `batch` (their packets come out of `expired`, `drain`, or here
    /// when a packet is dropped); the rest stays in order.
    pub fn apply(&mut self, batch: &mut Vec<Event>) {
        let mut done = Vec::new();
        batch.retain_mut(|ev| match ev {
            Event::Packet(p) => match legacy_step(&p.prefix) {
                Some(step) => {
                    let p = std::mem::take(p);
                    self.legacy(p, step, &mut done);
                    false
                }
                None => true,
            },
            Event::Line(l) => !self.monitor_line(l, &mut done),
            _ => true,
        });
        batch.extend(done);
    }

    fn legacy(&mut self, mut p: PacketEvent, step: LegacyStep, done: &mut Vec<Event>) {
        let key = legacy_key(&p);
        let local = p.host.as_deref().is_none_or(|h| {
            // This host's name, or its first label (syslog headers carry the short name).
            self.hostname
                .strip_prefix(h)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        });
        let (rule, verdict) = if local {
            self.rules.lookup(p.family, &step)
        } else {
            (None, None)
        };
        let s = TraceStep {
            family: p.family,
            table: Arc::from(step.table.as_str()),
            chain: Arc::from(step.chain.as_str()),
            handle: Some(step.number),
            rule: rule.map(Arc::from),
            verdict: Arc::from(verdict.unwrap_or_else(|| step.kind.clone())),
        };
        p.prefix = Arc::from("");
        p.action = None;
        p.log_flags = None;
        self.push(key, None, p, Some(s), done);
    }

    /// Reads an xtables-monitor line; false if it is not one.
    fn monitor_line(&mut self, l: &LogLine, done: &mut Vec<Event>) -> bool {
        let m = l.message.trim_start();
        if let Some(rest) = m.strip_prefix("PACKET: ") {
            let mut it = rest.splitn(3, ' ');
            let (Some(proto), Some(id), fields) = (it.next(), it.next(), it.next()) else {
                return false;
            };
            let (Ok(proto), Ok(id)) = (proto.parse::<u8>(), u32::from_str_radix(id, 16)) else {
                return false;
            };
            let Ok(parsed) = logline::parse_xtables_packet(fields.unwrap_or("")) else {
                // A packet line without addresses (ARP, a header it could not print): the
                // path still gathers under its id.
                return true;
            };
            let mut p = parsed.event;
            p.family = proto;
            p.time = l.time;
            p.host = l.host.clone();
            let key = Key::Monitor(id);
            // The same id on another packet (ids are reused): the earlier one is done.
            if let Some(o) = self.open.get(&key) {
                if another_packet(&o.packet, &p) {
                    done.extend(self.finish(&key));
                }
            }
            self.push(key, Some(id), p, None, done);
            return true;
        }
        let Some(rest) = m.strip_prefix("TRACE: ") else {
            return false;
        };
        let mut it = rest.splitn(3, ' ');
        let (Some(family), Some(id), Some(what)) = (it.next(), it.next(), it.next()) else {
            return false;
        };
        let (Ok(family), Ok(id)) = (family.parse::<u8>(), u32::from_str_radix(id, 16)) else {
            return false;
        };
        let Some(step) = monitor_step(family, what) else {
            // A return (the end of a chain): not a step, as in `nft monitor trace`.
            return true;
        };
        let p = PacketEvent {
            time: l.time,
            host: l.host.clone(),
            ..PacketEvent::default()
        };
        self.push(Key::Monitor(id), Some(id), p, Some(step), done);
        true
    }

    fn push(
        &mut self,
        key: Key,
        id: Option<u32>,
        p: PacketEvent,
        step: Option<TraceStep>,
        done: &mut Vec<Event>,
    ) {
        let now = Instant::now();
        if !self.open.contains_key(&key) && self.open.len() >= MAX_OPEN {
            if let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, o)| o.last)
                .map(|(k, _)| k.clone())
            {
                done.extend(self.finish(&oldest));
            }
        }
        let o = self.open.entry(key.clone()).or_insert_with(|| Open {
            packet: PacketEvent::default(),
            path: Vec::new(),
            id,
            last: now,
        });
        o.last = now;
        // The first view of the packet with headers stays; later lines add the interfaces an
        // earlier hook did not have (a forwarded packet's output device).
        if matches!(o.packet.headers.network, packet::Network::None) {
            let (indev, outdev) = (o.packet.indev.take(), o.packet.outdev.take());
            let time = o.packet.time;
            o.packet = p;
            o.packet.indev = o.packet.indev.take().or(indev);
            o.packet.outdev = o.packet.outdev.take().or(outdev);
            if time.secs != 0 {
                o.packet.time = time;
            }
        } else {
            if o.packet.indev.is_none() {
                o.packet.indev = p.indev;
            }
            if o.packet.outdev.is_none() {
                o.packet.outdev = p.outdev;
            }
        }
        let dropped = step.as_ref().and_then(TraceStep::outcome) == Some("drop");
        if let Some(s) = step {
            o.path.push(s);
        }
        if dropped {
            done.extend(self.finish(&key));
        }
    }

    fn finish(&mut self, key: &Key) -> Option<Event> {
        let o = self.open.remove(key)?;
        if o.path.is_empty() {
            return None;
        }
        let mut p = o.packet;
        let trace = Trace {
            id: o.id,
            path: o.path,
        };
        p.action = match trace.deciding().and_then(TraceStep::outcome) {
            Some("accept") => Some(Action::Accept),
            Some("drop") => Some(Action::Drop),
            Some("reject") => Some(Action::Reject),
            _ => None,
        };
        p.trace = Some(Box::new(trace));
        Some(Event::Packet(p))
    }

    /// Packets no line came for during the idle time, oldest first.
    pub fn expired(&mut self, out: &mut Vec<Event>) {
        let mut keys: Vec<(Instant, Key)> = self
            .open
            .iter()
            .filter(|(_, o)| o.last.elapsed() >= self.idle)
            .map(|(k, o)| (o.last, k.clone()))
            .collect();
        keys.sort_by_key(|(t, _)| *t);
        for (_, k) in keys {
            out.extend(self.finish(&k));
        }
    }

    /// Everything still open (at the end of the input).
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        let mut keys: Vec<(Instant, Key)> =
            self.open.iter().map(|(k, o)| (o.last, k.clone())).collect();
        keys.sort_by_key(|(t, _)| *t);
        for (_, k) in keys {
            out.extend(self.finish(&k));
        }
    }
}

fn legacy_key(p: &PacketEvent) -> Key {
    let (src, id) = match &p.headers.network {
        packet::Network::Ipv4(ip) => (Some(IpAddr::V4(ip.src)), ip.id as u32),
        packet::Network::Ipv6(ip) => (Some(IpAddr::V6(ip.src)), ip.flow_label),
        _ => (None, 0),
    };
    Key::Legacy(
        p.family,
        src,
        id,
        p.headers.protocol().unwrap_or(0),
        p.payload_len,
        p.headers.ports().map_or(0, |(s, _)| s),
    )
}

/// Whether two views under one id are different packets (IPv4 id, IPv6 flow label, length).
fn another_packet(a: &PacketEvent, b: &PacketEvent) -> bool {
    let key = |p: &PacketEvent| match &p.headers.network {
        packet::Network::Ipv4(ip) => Some((ip.id as u32, ip.total_len as u32)),
        packet::Network::Ipv6(ip) => Some((ip.flow_label, ip.payload_len as u32)),
        _ => None,
    };
    matches!((key(a), key(b)), (Some(x), Some(y)) if x != y)
}

/// What a TRACE line's prefix says: `TRACE: TABLE:CHAIN:KIND:NUMBER `.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LegacyStep {
    table: String,
    chain: String,
    /// `rule`, `return` or `policy`.
    kind: String,
    number: u64,
}

fn legacy_step(prefix: &str) -> Option<LegacyStep> {
    let rest = prefix.trim_end().strip_prefix("TRACE: ")?;
    // Table names have no colon; a chain name might, so the last two fields are split off
    // from the right.
    let (table, rest) = rest.split_once(':')?;
    let (rest, number) = rest.rsplit_once(':')?;
    let (chain, kind) = rest.rsplit_once(':')?;
    if !matches!(kind, "rule" | "return" | "policy") || chain.is_empty() {
        return None;
    }
    Some(LegacyStep {
        table: table.to_string(),
        chain: chain.to_string(),
        kind: kind.to_string(),
        number: number.parse().ok()?,
    })
}

/// An xtables-monitor step: `TABLE:CHAIN:rule:0xHANDLE:VERDICT[:TARGET]  -4 -t TABLE -A …`,
/// `TABLE:CHAIN:policy:VERDICT`; None for `TABLE:CHAIN:return:…`.
fn monitor_step(family: u8, what: &str) -> Option<TraceStep> {
    let (place, kind, rest) = [":rule:", ":policy:", ":return:"]
        .iter()
        .filter_map(|m| what.find(m).map(|i| (i, *m)))
        .min_by_key(|(i, _)| *i)
        .map(|(i, m)| (&what[..i], m, &what[i + m.len()..]))?;
    let (table, chain) = place.split_once(':')?;
    let step = |handle, rule: Option<&str>, verdict: String| TraceStep {
        family,
        table: Arc::from(table),
        chain: Arc::from(chain),
        handle,
        rule: rule.map(Arc::from),
        verdict: Arc::from(verdict),
    };
    match kind {
        ":policy:" => Some(step(
            None,
            None,
            format!("policy {}", rest.trim().to_ascii_lowercase()),
        )),
        ":rule:" => {
            let (head, text) = rest.split_once("  ").unwrap_or((rest, ""));
            let (handle, verdict) = head.split_once(':')?;
            let handle = u64::from_str_radix(handle.trim_start_matches("0x"), 16).ok()?;
            let verdict = match verdict.trim().split_once(':') {
                Some((v, target)) => format!("{} {target}", v.to_ascii_lowercase()),
                None => verdict.trim().to_ascii_lowercase(),
            };
            // `-4 -t raw -A OUTPUT …`: the rule as iptables-save writes it, from `-A` on.
            let text = text.trim();
            let text = text.find("-A ").map_or(text, |i| &text[i..]);
            Some(step(
                Some(handle),
                (!text.is_empty()).then_some(text),
                verdict,
            ))
        }
        _ => None,
    }
}

/// iptables-legacy's rules, as `iptables-legacy-save` lists them, for the TRACE lines of this
/// host: (family, table, chain) → the chain's policy and its rules in order.
#[derive(Default)]
struct LegacyRules {
    chains: HashMap<(u8, String, String), Chain>,
    loaded: Option<Instant>,
}

#[derive(Default)]
struct Chain {
    policy: Option<String>,
    rules: Vec<String>,
}

impl LegacyRules {
    /// The rule's text and verdict; lists the rules again when they are older than a second
    /// and the rule is missing, or older than ten seconds.
    fn lookup(&mut self, family: u8, step: &LegacyStep) -> (Option<String>, Option<String>) {
        let age = self.loaded.map(|t| t.elapsed());
        let key = (family, step.table.clone(), step.chain.clone());
        let missing = !self.chains.contains_key(&key);
        if age
            .is_none_or(|a| a > Duration::from_secs(10) || (missing && a > Duration::from_secs(1)))
        {
            self.reload();
        }
        let Some(chain) = self.chains.get(&key) else {
            return (None, None);
        };
        match step.kind.as_str() {
            "policy" => (
                None,
                chain
                    .policy
                    .as_ref()
                    .map(|p| format!("policy {}", p.to_ascii_lowercase())),
            ),
            "return" => (None, Some("return".into())),
            _ => match chain.rules.get((step.number as usize).wrapping_sub(1)) {
                Some(text) => {
                    let user_chains = |c: &str| {
                        self.chains
                            .contains_key(&(family, step.table.clone(), c.to_string()))
                    };
                    (Some(text.clone()), Some(rule_verdict(text, user_chains)))
                }
                None => (None, None),
            },
        }
    }

    fn reload(&mut self) {
        self.loaded = Some(Instant::now());
        self.chains.clear();
        for (family, cmd) in [(2u8, "iptables-legacy-save"), (10, "ip6tables-legacy-save")] {
            let Ok(out) = std::process::Command::new(cmd)
                .stderr(std::process::Stdio::null())
                .output()
            else {
                continue;
            };
            parse_save(
                family,
                &String::from_utf8_lossy(&out.stdout),
                &mut self.chains,
            );
        }
    }
}

/// Reads `iptables-save` text: `*table`, `:CHAIN POLICY [p:b]`, `-A CHAIN …`.
fn parse_save(family: u8, text: &str, chains: &mut HashMap<(u8, String, String), Chain>) {
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if let Some(c) = line.strip_prefix(':') {
            let mut f = c.split_whitespace();
            if let (Some(name), Some(policy)) = (f.next(), f.next()) {
                chains
                    .entry((family, table.clone(), name.to_string()))
                    .or_default()
                    .policy = (policy != "-").then(|| policy.to_string());
            }
        } else if let Some(r) = line.strip_prefix("-A ") {
            let name = r.split_whitespace().next().unwrap_or_default();
            chains
                .entry((family, table.clone(), name.to_string()))
                .or_default()
                .rules
                .push(line.to_string());
        }
    }
}

/// What a rule does with a packet, from its `-j`/`-g` target.
fn rule_verdict(rule: &str, is_chain: impl Fn(&str) -> bool) -> String {
    let words = save_words(rule);
    let target = words
        .windows(2)
        .find(|w| matches!(w[0].as_str(), "-j" | "--jump" | "-g" | "--goto"))
        .map(|w| (w[0].starts_with("-g") || w[0] == "--goto", w[1].as_str()));
    match target {
        None => "continue".into(),
        Some((goto, t)) => match t {
            "ACCEPT" => "accept".into(),
            "DROP" => "drop".into(),
            "REJECT" => "reject".into(),
            "RETURN" => "return".into(),
            "QUEUE" | "NFQUEUE" => "queue".into(),
            // NAT targets end the chain with an accept.
            "SNAT" | "DNAT" | "MASQUERADE" | "REDIRECT" | "NETMAP" => "accept".into(),
            c if is_chain(c) => format!("{} {c}", if goto { "goto" } else { "jump" }),
            // LOG, MARK, CT, TRACE…: the packet goes on to the next rule.
            _ => "continue".into(),
        },
    }
}

/// Splits an iptables-save line into words, a double-quoted string (a comment) being one.
fn save_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => cur.extend(chars.next()),
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Event {
        Event::Line(Box::new(LogLine {
            time: event::Timestamp::default(),
            host: None,
            program: None,
            pid: None,
            message: text.to_string(),
            origin: Arc::from("test"),
        }))
    }

    #[test]
    fn legacy_prefixes_are_read_and_other_prefixes_are_not() {
        assert_eq!(
            legacy_step("TRACE: raw:PREROUTING:policy:4 "),
            Some(LegacyStep {
                table: "raw".into(),
                chain: "PREROUTING".into(),
                kind: "policy".into(),
                number: 4
            })
        );
        assert_eq!(
            legacy_step("TRACE: filter:a:b:rule:12 ").unwrap().chain,
            "a:b"
        );
        assert_eq!(legacy_step("TRACE: nothing here"), None);
        assert_eq!(legacy_step("DROP IN: "), None);
        assert_eq!(legacy_step("TRACE: filter:INPUT:other:1 "), None);
    }

    #[test]
    fn rule_verdicts_come_from_the_target() {
        let chain = |c: &str| c == "CHK";
        assert_eq!(rule_verdict("-A INPUT -p tcp -j ACCEPT", chain), "accept");
        assert_eq!(rule_verdict("-A INPUT -p tcp -j CHK", chain), "jump CHK");
        assert_eq!(rule_verdict("-A INPUT -p tcp -g CHK", chain), "goto CHK");
        assert_eq!(
            rule_verdict("-A INPUT -m comment --comment \"x -j DROP\" -j LOG", chain),
            "continue"
        );
        assert_eq!(rule_verdict("-A INPUT -p tcp", chain), "continue");
        assert_eq!(
            rule_verdict("-A OUTPUT -j REJECT --reject-with x", chain),
            "reject"
        );
    }

    #[test]
    fn xtables_monitor_output_becomes_one_path_per_packet() {
        let mut t = TextTraces::new(Duration::from_millis(10));
        let mut batch = vec![
            line("PACKET: 2 a1a15e27 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=31 TOS=0x0 TTL=64 ID=31079 DF SPORT=38379 DPORT=9999 "),
            line(" TRACE: 2 a1a15e27 raw:OUTPUT:rule:0x2:CONTINUE  -4 -t raw -A OUTPUT -p udp -m udp --dport 9999 -j TRACE"),
            line(" TRACE: 2 a1a15e27 raw:OUTPUT:policy:ACCEPT "),
            line(" TRACE: 2 a1a15e27 filter:OUTPUT:rule:0x3:JUMP:CHK  -4 -t filter -A OUTPUT -p udp -j CHK"),
            line(" TRACE: 2 a1a15e27 filter:CHK:return:"),
            line("sshd[1]: not a trace"),
            line(" TRACE: 2 e2bc416b filter:INPUT:rule:0x6:DROP  -4 -t filter -A INPUT -p udp -m udp --dport 9999 -j DROP"),
        ];
        t.apply(&mut batch);
        // The other line stays; the dropped packet is done at once.
        assert_eq!(batch.len(), 2, "{batch:?}");
        assert!(matches!(&batch[0], Event::Line(l) if l.message.starts_with("sshd")));
        let Event::Packet(p) = &batch[1] else {
            panic!()
        };
        let tr = p.trace.as_ref().unwrap();
        assert_eq!(tr.id, Some(0xe2bc416b));
        assert_eq!(&*tr.path[0].verdict, "drop");
        assert_eq!(p.action, Some(Action::Drop));

        std::thread::sleep(Duration::from_millis(20));
        let mut out = Vec::new();
        t.expired(&mut out);
        let Event::Packet(p) = &out[0] else { panic!() };
        let tr = p.trace.as_ref().unwrap();
        let steps: Vec<(&str, &str, Option<u64>, &str)> = tr
            .path
            .iter()
            .map(|s| (&*s.table, &*s.chain, s.handle, &*s.verdict))
            .collect();
        assert_eq!(
            steps,
            [
                ("raw", "OUTPUT", Some(2), "continue"),
                ("raw", "OUTPUT", None, "policy accept"),
                ("filter", "OUTPUT", Some(3), "jump CHK"),
            ]
        );
        assert_eq!(tr.path[2].rule.as_deref(), Some("-A OUTPUT -p udp -j CHK"));
        assert_eq!(p.headers.ports(), Some((38379, 9999)));
        assert_eq!(p.headers.protocol(), Some(packet::proto::UDP));
        assert_eq!(&*p.outdev.as_ref().unwrap().name, "lo");
        assert_eq!(p.action, Some(Action::Accept));
    }
}
