//! `rdns`: the names of the source and destination addresses (PTR), ECS
//! `source|destination.domain`. It never holds the pipeline up: a record takes the name only if
//! it is already known; an unknown address is queued for a resolver thread (a bounded queue, a
//! bounded number of queries in flight, each with a timeout) and later records get its name.
//! Answers are kept in a bounded cache for their TTL (at most `max_ttl`), failures for
//! `negative_ttl`.

use super::{Transform, TransformContext, TransformType};
use crate::metrics::ComponentCounters;
use crate::units::Duration;
use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use event::{Enrichment, Event};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdnsConfig {
    pub inputs: Vec<String>,
    /// Resolvers to ask ("IP:port" or "IP"); default: the nameservers of /etc/resolv.conf.
    #[serde(default)]
    pub servers: Vec<String>,
    /// How long an answer is waited for. Default "2s".
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Queries at most in flight at once. Default 256.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Addresses kept, named or not. Default 100000.
    #[serde(default = "default_cache")]
    pub cache_size: usize,
    /// How long a name is kept at most (less if its TTL says so). Default "1h".
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Duration,
    /// How long an address without a name (no PTR, an error, no answer) is not asked again.
    /// Default "5m".
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: Duration,
    #[serde(skip)]
    shared: OnceLock<Arc<Shared>>,
}

fn default_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(2))
}
fn default_in_flight() -> usize {
    256
}
fn default_cache() -> usize {
    100_000
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_negative_ttl() -> Duration {
    Duration::from_secs(300)
}

/// Addresses waiting for a query, at most.
const QUEUE: usize = 4096;

#[derive(Debug)]
struct Entry {
    name: Option<Arc<str>>,
    /// None: asked, no answer yet.
    until: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    cache: Mutex<HashMap<IpAddr, Entry>>,
    queue: Sender<IpAddr>,
    cache_size: usize,
}

fn parse_server(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .parse()
        .with_context(|| format!("servers: `{s}` is not an address (IP or IP:port)"))?;
    Ok(SocketAddr::new(ip, 53))
}

/// The nameservers of /etc/resolv.conf.
fn system_servers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl RdnsConfig {
    fn servers(&self) -> Result<Vec<SocketAddr>> {
        let s: Vec<SocketAddr> = if self.servers.is_empty() {
            system_servers()
        } else {
            self.servers
                .iter()
                .map(|s| parse_server(s))
                .collect::<Result<_>>()?
        };
        if s.is_empty() {
            bail!("servers: none given and none in /etc/resolv.conf");
        }
        Ok(s)
    }
}

impl TransformType for RdnsConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn validate(&self) -> Result<()> {
        if self.max_in_flight == 0 || self.cache_size == 0 {
            bail!("max_in_flight and cache_size must be at least 1");
        }
        self.servers().map(|_| ())
    }

    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>> {
        let shared = match self.shared.get() {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = crossbeam_channel::bounded(QUEUE);
                let shared = Arc::new(Shared {
                    cache: Mutex::new(HashMap::new()),
                    queue: tx,
                    cache_size: self.cache_size,
                });
                let resolver = Resolver {
                    servers: self.servers()?,
                    timeout: self.timeout.0,
                    max_in_flight: self.max_in_flight,
                    max_ttl: self.max_ttl.0,
                    negative_ttl: self.negative_ttl.0,
                    shared: shared.clone(),
                    counters: ctx.counters.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("rdns-{}", ctx.name))
                    .spawn(move || resolver.run(rx))?;
                let _ = self.shared.set(shared.clone());
                shared
            }
        };
        Ok(Box::new(Rdns {
            shared,
            counters: ctx.counters.clone(),
        }))
    }
}

#[derive(Clone)]
struct Rdns {
    shared: Arc<Shared>,
    counters: Arc<ComponentCounters>,
}

/// Addresses with no name worth asking for.
fn unnamed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    }
}

impl Transform for Rdns {
    fn apply(&mut self, batch: &mut Vec<Event>) {
        let now = Instant::now();
        let mut cache = self.shared.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut name = |ip: IpAddr| -> Option<Arc<str>> {
            if unnamed(ip) {
                return None;
            }
            match cache.get(&ip) {
                Some(e) if e.until.is_none_or(|t| t > now) => return e.name.clone(),
                _ => {}
            }
            // Unknown or expired: ask, unless the queue is full (then a later record asks).
            match self.shared.queue.try_send(ip) {
                Ok(()) => {
                    cache.insert(
                        ip,
                        Entry {
                            name: None,
                            until: None,
                        },
                    );
                }
                Err(TrySendError::Full(_)) => {
                    crate::rate_limited_warn!("rdns: lookup queue full; names left out for now");
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
            None
        };
        super::each_endpoints(batch, |key, enrich| {
            let (src, dst) = (name(key.src), name(key.dst));
            if src.is_none() && dst.is_none() {
                return;
            }
            let en = enrich.get_or_insert_with(|| Box::new(Enrichment::default()));
            en.source.domain = src;
            en.destination.domain = dst;
        });
        ComponentCounters::add(&self.counters.received, batch.len() as u64);
        ComponentCounters::add(&self.counters.sent, batch.len() as u64);
    }

    fn another(&self) -> Box<dyn Transform> {
        Box::new(self.clone())
    }
}

/// The thread that asks: queries from the queue while fewer than `max_in_flight` are out,
/// answers into the cache, timeouts as failures.
struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: std::time::Duration,
    max_in_flight: usize,
    max_ttl: std::time::Duration,
    negative_ttl: std::time::Duration,
    shared: Arc<Shared>,
    counters: Arc<ComponentCounters>,
}

impl Resolver {
    fn run(self, rx: Receiver<IpAddr>) {
        let sock = match UdpSocket::bind(if self.servers[0].is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("rdns: no socket for queries: {e}; no names will be looked up");
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(20)));
        let mut in_flight: HashMap<u16, (IpAddr, Instant)> = HashMap::new();
        let mut next_id: u16 = (std::process::id() as u16).wrapping_mul(7919);
        let mut turn = 0usize;
        let mut buf = vec![0u8; 4096];
        while !crate::signals::shutdown_requested() {
            while in_flight.len() < self.max_in_flight {
                let Ok(ip) = rx.try_recv() else { break };
                next_id = next_id.wrapping_add(1);
                let mut m = Message::new(next_id, MessageType::Query, OpCode::Query);
                m.metadata.recursion_desired = true;
                m.add_query(Query::query(Name::from(ip), RecordType::PTR));
                let server = self.servers[turn % self.servers.len()];
                turn += 1;
                match m.to_vec().map(|b| sock.send_to(&b, server)) {
                    Ok(Ok(_)) => {
                        in_flight.insert(next_id, (ip, Instant::now()));
                    }
                    _ => self.settle(ip, None, self.negative_ttl),
                }
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if self.servers.contains(&from) => {
                    self.answer(&buf[..n], &mut in_flight)
                }
                Ok(_) => {}
                Err(_) => {}
            }
            let now = Instant::now();
            let timeout = self.timeout;
            let expired: Vec<u16> = in_flight
                .iter()
                .filter(|(_, (_, at))| now.duration_since(*at) >= timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                if let Some((ip, _)) = in_flight.remove(&id) {
                    ComponentCounters::add(&self.counters.errors, 1);
                    self.settle(ip, None, self.negative_ttl);
                }
            }
        }
    }

    fn answer(&self, bytes: &[u8], in_flight: &mut HashMap<u16, (IpAddr, Instant)>) {
        let Ok(m) = Message::from_vec(bytes) else {
            ComponentCounters::add(&self.counters.malformed, 1);
            return;
        };
        let Some(&(ip, _)) = in_flight.get(&m.metadata.id) else {
            return;
        };
        // The answer must be to the question asked, not a stray one with a reused id.
        if m.queries
            .first()
            .is_none_or(|q| q.name() != &Name::from(ip))
        {
            return;
        }
        in_flight.remove(&m.metadata.id);
        let ptr = m.answers.iter().find_map(|r| match &r.data {
            RData::PTR(p) => Some((p.0.to_utf8(), r.ttl)),
            _ => None,
        });
        match (m.metadata.response_code, ptr) {
            (ResponseCode::NoError, Some((name, ttl))) => {
                let name = name.trim_end_matches('.').to_string();
                let ttl = std::time::Duration::from_secs(ttl as u64)
                    .clamp(std::time::Duration::from_secs(5), self.max_ttl);
                self.settle(ip, Some(Arc::from(name.as_str())), ttl);
            }
            _ => self.settle(ip, None, self.negative_ttl),
        }
    }

    fn settle(&self, ip: IpAddr, name: Option<Arc<str>>, ttl: std::time::Duration) {
        let mut cache = self.shared.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.shared.cache_size && !cache.contains_key(&ip) {
            let now = Instant::now();
            cache.retain(|_, e| e.until.is_none_or(|t| t > now));
            if cache.len() >= self.shared.cache_size {
                cache.clear();
            }
        }
        cache.insert(
            ip,
            Entry {
                name,
                until: Some(Instant::now() + ttl),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::Record;

    fn resolver() -> Resolver {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        Resolver {
            servers: vec!["127.0.0.1:53".parse().unwrap()],
            timeout: std::time::Duration::from_secs(1),
            max_in_flight: 8,
            max_ttl: std::time::Duration::from_secs(3600),
            negative_ttl: std::time::Duration::from_secs(300),
            shared: Arc::new(Shared {
                cache: Mutex::new(HashMap::new()),
                queue: tx,
                cache_size: 2,
            }),
            counters: Default::default(),
        }
    }

    fn reply(id: u16, asked: IpAddr, code: ResponseCode, ptr: Option<&str>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.metadata.response_code = code;
        m.add_query(Query::query(Name::from(asked), RecordType::PTR));
        if let Some(p) = ptr {
            m.add_answer(Record::from_rdata(
                Name::from(asked),
                600,
                RData::PTR(PTR(p.parse().unwrap())),
            ));
        }
        m.to_vec().unwrap()
    }

    fn cached(r: &Resolver, ip: IpAddr) -> Option<Option<Arc<str>>> {
        r.shared
            .cache
            .lock()
            .unwrap()
            .get(&ip)
            .map(|e| e.name.clone())
    }

    #[test]
    fn answers_are_matched_to_their_question() {
        let r = resolver();
        let (a, b): (IpAddr, IpAddr) = (
            "81.2.69.160".parse().unwrap(),
            "2a02:ec80::1".parse().unwrap(),
        );
        let mut in_flight = HashMap::from([(1, (a, Instant::now())), (2, (b, Instant::now()))]);
        // Garbage: counted, nothing settled.
        r.answer(b"\\x00\\x01garbage", &mut in_flight);
        assert_eq!(
            r.counters
                .malformed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // The right id with another question (a stray or forged answer): ignored.
        r.answer(
            &reply(1, b, ResponseCode::NoError, Some("evil.example.")),
            &mut in_flight,
        );
        assert_eq!(cached(&r, a), None);
        assert_eq!(in_flight.len(), 2);
        // The answer: the name without its final dot.
        r.answer(
            &reply(1, a, ResponseCode::NoError, Some("gw.example.net.")),
            &mut in_flight,
        );
        assert_eq!(cached(&r, a), Some(Some(Arc::from("gw.example.net"))));
        // NXDOMAIN: no name, kept as such.
        r.answer(&reply(2, b, ResponseCode::NXDomain, None), &mut in_flight);
        assert_eq!(cached(&r, b), Some(None));
        assert!(in_flight.is_empty());
        // The cache stays within its size.
        r.settle(
            "192.0.2.1".parse().unwrap(),
            None,
            std::time::Duration::from_secs(1),
        );
        assert!(r.shared.cache.lock().unwrap().len() <= 2);
    }
}
