//! `geoip`: where the source and destination addresses are, from MaxMind-format databases
//! (GeoLite2 or DB-IP lite: City or Country, and ASN); ECS `source|destination.geo.*` and
//! `.as.*`. Each file's kind is read from its metadata. Private, loopback, link-local,
//! multicast and other special-purpose addresses are not looked up.
//!
//! A database replaced on disk (written aside and renamed over it) is picked up by a watcher
//! thread; a file that does not open as a database of the same kind is refused with an error
//! and the one in use stays. Each instance keeps a bounded cache of answers by the network they
//! hold for (the database's own leaves), so an address is decoded once per network.

use super::{Transform, TransformContext, TransformType};
use crate::metrics::ComponentCounters;
use crate::units::Duration;
use anyhow::{bail, Context, Result};
use event::{Enrichment, Event, Place};
use maxminddb::Reader;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    pub inputs: Vec<String>,
    /// MaxMind-format files: a City or Country database, an ASN database, or both.
    pub databases: Vec<PathBuf>,
    /// How often the files are checked for a replacement. Default "60s".
    #[serde(default = "default_reload")]
    pub reload_interval: Duration,
    /// The databases, opened once and shared by every instance (one per source thread).
    #[serde(skip)]
    shared: OnceLock<Arc<Databases>>,
}

fn default_reload() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    City,
    Country,
    Asn,
}

/// A database file and what is loaded from it.
struct Database {
    path: PathBuf,
    kind: Kind,
    reader: RwLock<Arc<Reader<Vec<u8>>>>,
    /// (device, inode, size, mtime) of the file last loaded or refused.
    seen: std::sync::Mutex<(u64, u64, u64, i64)>,
}

struct Databases {
    files: Vec<Database>,
    /// Bumped at each reload: instances drop their caches.
    generation: AtomicU64,
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.files.iter().map(|d| (&d.path, d.kind)).collect();
        f.debug_struct("Databases").field("files", &paths).finish()
    }
}

fn stamp(path: &Path) -> std::io::Result<(u64, u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime_nsec() + m.mtime() * 1_000_000_000,
    ))
}

/// Opens `path` as a database and tells its kind from its metadata.
fn open(path: &Path) -> Result<(Kind, Reader<Vec<u8>>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let reader = Reader::from_source(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a MaxMind database: {e}", path.display()))?;
    let t = reader.metadata.database_type.to_ascii_lowercase();
    let kind = if t.contains("asn") {
        Kind::Asn
    } else if t.contains("city") {
        Kind::City
    } else if t.contains("country") {
        Kind::Country
    } else {
        bail!(
            "{}: a `{}` database; geoip reads City, Country and ASN databases",
            path.display(),
            reader.metadata.database_type
        );
    };
    // A file cut short can pass the metadata check and fail in the search tree or the data:
    // one lookup of each family reads both.
    for probe in ["1.1.1.1", "2001:4860:4860::8888"] {
        let ip: IpAddr = probe.parse().unwrap();
        if reader.metadata.ip_version == 4 && ip.is_ipv6() {
            continue;
        }
        lookup(kind, &reader, ip)
            .map_err(|e| anyhow::anyhow!("{}: a damaged database: {e}", path.display()))?;
    }
    Ok((kind, reader))
}

impl GeoipConfig {
    fn databases(&self) -> Result<Arc<Databases>> {
        if let Some(d) = self.shared.get() {
            return Ok(d.clone());
        }
        let mut files = Vec::new();
        for path in &self.databases {
            let seen = stamp(path).with_context(|| format!("{}", path.display()))?;
            let (kind, reader) = open(path)?;
            files.push(Database {
                path: path.clone(),
                kind,
                reader: RwLock::new(Arc::new(reader)),
                seen: std::sync::Mutex::new(seen),
            });
        }
        let d = Arc::new(Databases {
            files,
            generation: AtomicU64::new(0),
        });
        let _ = self.shared.set(d.clone());
        Ok(d)
    }
}

/// Reloads what changed on disk, keeping the loaded database when the new file is refused.
fn watch(d: Arc<Databases>, interval: std::time::Duration, counters: Arc<ComponentCounters>) {
    while !crate::signals::shutdown_requested() {
        std::thread::sleep(interval.min(std::time::Duration::from_millis(500)));
        for db in &d.files {
            let Ok(now) = stamp(&db.path) else { continue };
            let mut seen = db.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                continue;
            }
            *seen = now;
            match open(&db.path) {
                Ok((kind, reader)) if kind == db.kind => {
                    *db.reader.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reader);
                    d.generation.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("geoip: reloaded {}", db.path.display());
                }
                Ok((kind, _)) => {
                    ComponentCounters::add(&counters.errors, 1);
                    tracing::warn!(
                        "geoip: {} is now a {kind:?} database, not {:?}: keeping the one loaded",
                        db.path.display(),
                        db.kind
                    );
                }
                Err(e) => {
                    ComponentCounters::add(&counters.errors, 1);
                    tracing::warn!("geoip: {e:#}; keeping the database loaded before");
                }
            }
        }
        // Sleep the rest of the interval in short steps, so a stop is not held up.
        let mut left = interval.saturating_sub(std::time::Duration::from_millis(500));
        while !left.is_zero() && !crate::signals::shutdown_requested() {
            let step = left.min(std::time::Duration::from_millis(500));
            std::thread::sleep(step);
            left -= step;
        }
    }
}

impl TransformType for GeoipConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn validate(&self) -> Result<()> {
        if self.databases.is_empty() {
            bail!("databases: empty; name a City or Country database, an ASN database, or both");
        }
        for path in &self.databases {
            open(path)?;
        }
        Ok(())
    }

    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>> {
        let first = self.shared.get().is_none();
        let d = self.databases()?;
        if first {
            let (d, counters, interval) = (d.clone(), ctx.counters.clone(), self.reload_interval.0);
            std::thread::Builder::new()
                .name(format!("geoip-{}", ctx.name))
                .spawn(move || watch(d, interval, counters))?;
        }
        Ok(Box::new(Geoip {
            dbs: d,
            nets: Vec::new(),
            generation: u64::MAX,
            counters: ctx.counters.clone(),
        }))
    }
}

/// Addresses a public database says nothing about: private, loopback, link-local, shared,
/// multicast, documentation and other special-purpose ranges.
pub fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_unspecified()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if let Some(v4) = a.to_ipv4_mapped() {
                return special(IpAddr::V4(v4));
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0xdb8)
                || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        }
    }
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
    #[serde(borrow)]
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Location<'a> {
    latitude: Option<f64>,
    longitude: Option<f64>,
    #[serde(borrow)]
    time_zone: Option<&'a str>,
}

#[derive(Deserialize)]
struct Postal<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

/// The fields of a City or Country record nflogd writes (the rest is skipped unread).
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow)]
    city: Option<Named<'a>>,
    #[serde(borrow)]
    continent: Option<Named<'a>>,
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    location: Option<Location<'a>>,
    #[serde(borrow)]
    postal: Option<Postal<'a>>,
    #[serde(borrow)]
    subdivisions: Option<Vec<Named<'a>>>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

fn boxed(s: Option<&str>) -> Option<Box<str>> {
    s.filter(|s| !s.is_empty()).map(Box::from)
}

fn name(n: &Option<Named>) -> Option<Box<str>> {
    boxed(n.as_ref().and_then(|n| n.names.as_ref()).and_then(|n| n.en))
}

/// Adds what database `kind` says of `ip` to `place`; returns the length of the network the
/// answer holds for (the search tree's leaf: every address in it has the same answer).
fn lookup_into(
    kind: Kind,
    r: &Reader<Vec<u8>>,
    ip: IpAddr,
    place: &mut Place,
) -> Result<usize, maxminddb::MaxMindDbError> {
    match kind {
        Kind::City | Kind::Country => {
            let (c, len) = r.lookup_prefix::<CityRecord>(ip)?;
            let Some(c) = c else {
                return Ok(len);
            };
            place.continent_code = boxed(c.continent.as_ref().and_then(|x| x.code));
            place.continent_name = name(&c.continent);
            let country = c.country.as_ref().and_then(|x| x.iso_code);
            place.country_iso_code = boxed(country);
            place.country_name = name(&c.country);
            place.city_name = name(&c.city);
            if let Some(sub) = c.subdivisions.as_ref().and_then(|s| s.first()) {
                place.region_name = boxed(sub.names.as_ref().and_then(|n| n.en));
                if let (Some(cc), Some(sc)) = (country, sub.iso_code) {
                    place.region_iso_code = Some(format!("{cc}-{sc}").into());
                }
            }
            place.postal_code = boxed(c.postal.as_ref().and_then(|p| p.code));
            if let Some(l) = &c.location {
                place.timezone = boxed(l.time_zone);
                if let (Some(lat), Some(lon)) = (l.latitude, l.longitude) {
                    place.location = Some(((lat * 1e6).round() as i32, (lon * 1e6).round() as i32));
                }
            }
            Ok(len)
        }
        Kind::Asn => {
            let (a, len) = r.lookup_prefix::<AsnRecord>(ip)?;
            if let Some(a) = a {
                place.as_number = a.autonomous_system_number;
                place.as_organization = boxed(a.autonomous_system_organization);
            }
            Ok(len)
        }
    }
}

fn lookup(kind: Kind, r: &Reader<Vec<u8>>, ip: IpAddr) -> Result<Place, maxminddb::MaxMindDbError> {
    let mut p = Place::default();
    lookup_into(kind, r, ip, &mut p)?;
    Ok(p)
}

/// An address as bits, and how many it has.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The answers of one database by network (the search tree's leaves, disjoint), and the
/// lengths seen, most used first: an address is found by masking it to each length in turn.
#[derive(Default)]
struct NetCache {
    nets: HashMap<(u8, u8, u128), Option<Arc<Place>>, foldhash::fast::RandomState>,
    lens: Vec<(u8, u8, u64)>,
}

impl NetCache {
    fn get(&mut self, ip: IpAddr) -> Option<Option<Arc<Place>>> {
        let (b, width) = bits(ip);
        for i in 0..self.lens.len() {
            let (w, len, _) = self.lens[i];
            if w != width {
                continue;
            }
            let key = (w, len, mask(b, width, len));
            if let Some(p) = self.nets.get(&key) {
                self.lens[i].2 += 1;
                if i > 0 && self.lens[i].2 > self.lens[i - 1].2 {
                    self.lens.swap(i, i - 1);
                }
                return Some(p.clone());
            }
        }
        None
    }

    fn put(&mut self, ip: IpAddr, len: usize, p: Option<Arc<Place>>) {
        let (b, width) = bits(ip);
        let len = (len as u8).min(width);
        if self.nets.len() >= CACHE_ENTRIES {
            self.nets.clear();
        }
        self.nets.insert((width, len, mask(b, width, len)), p);
        if !self.lens.iter().any(|&(w, l, _)| w == width && l == len) {
            self.lens.push((width, len, 0));
        }
    }
}

fn mask(b: u128, width: u8, len: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = !0u128 << (width - len);
    b & keep
        & if width == 128 {
            !0
        } else {
            (1u128 << width) - 1
        }
}

/// Addresses an instance remembers; past this it starts afresh.
const CACHE_ENTRIES: usize = 65_536;

struct Geoip {
    dbs: Arc<Databases>,
    /// Each database's answers by network, so that an address never seen costs a few hash
    /// lookups instead of a search and a decode when its network has been seen.
    nets: Vec<NetCache>,
    generation: u64,
    counters: Arc<ComponentCounters>,
}

/// What the databases say of an address: its place, its network (ASN).
type Answer = (Option<Arc<Place>>, Option<Arc<Place>>);

impl Geoip {
    fn answer(&mut self, ip: IpAddr) -> Answer {
        if special(ip) {
            return (None, None);
        }
        let mut answer: Answer = (None, None);
        for (i, db) in self.dbs.files.iter().enumerate() {
            let p = match self.nets[i].get(ip) {
                Some(p) => p,
                None => {
                    let r = db.reader.read().unwrap_or_else(|e| e.into_inner()).clone();
                    let mut place = Place::default();
                    match lookup_into(db.kind, &r, ip, &mut place) {
                        Ok(len) => {
                            let p = (!place.is_empty()).then(|| Arc::new(place));
                            self.nets[i].put(ip, len, p.clone());
                            p
                        }
                        Err(e) => {
                            ComponentCounters::add(&self.counters.errors, 1);
                            crate::rate_limited_warn!(
                                "geoip: {}: lookup of {ip} failed: {e}",
                                db.path.display()
                            );
                            None
                        }
                    }
                }
            };
            if p.is_some() {
                match db.kind {
                    Kind::Asn => answer.1 = p,
                    Kind::City | Kind::Country => answer.0 = p,
                }
            }
        }
        answer
    }
}

impl Transform for Geoip {
    fn apply(&mut self, batch: &mut Vec<Event>) {
        let generation = self.dbs.generation.load(Ordering::Relaxed);
        if generation != self.generation {
            self.nets = self.dbs.files.iter().map(|_| NetCache::default()).collect();
            self.generation = generation;
        }
        super::each_endpoints(batch, |key, enrich| {
            let (src, dst) = (self.answer(key.src), self.answer(key.dst));
            if src == (None, None) && dst == (None, None) {
                return;
            }
            let en = enrich.get_or_insert_with(|| Box::new(Enrichment::default()));
            (en.source.place, en.source.network) = src;
            (en.destination.place, en.destination.network) = dst;
        });
        ComponentCounters::add(&self.counters.received, batch.len() as u64);
        ComponentCounters::add(&self.counters.sent, batch.len() as u64);
    }

    fn another(&self) -> Box<dyn Transform> {
        Box::new(Geoip {
            dbs: self.dbs.clone(),
            nets: Vec::new(),
            generation: u64::MAX,
            counters: self.counters.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_not_looked_up() {
        for a in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "0.1.2.3",
            "240.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(special(a.parse().unwrap()), "{a}");
        }
        for a in [
            "81.2.69.160",
            "8.8.8.8",
            "2a02:ec80::1",
            "::ffff:81.2.69.160",
            "100.128.0.1",
        ] {
            assert!(!special(a.parse().unwrap()), "{a}");
        }
    }
}
