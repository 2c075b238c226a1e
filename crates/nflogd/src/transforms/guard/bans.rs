//! The bans a guard holds: which prefixes, until when, and how often each address offended
//! before (repeat offenders are banned longer). Kept on disk so a restart restores them with
//! their remaining time.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

/// One ban. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ban {
    pub prefix: IpNet,
    pub address: IpAddr,
    pub since: f64,
    pub until: f64,
    pub offense: u32,
    pub detector: String,
    pub evidence: u32,
}

/// Past offenses of a prefix: how many bans, and when the last began.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub bans: u32,
    pub last: f64,
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    bans: Vec<Ban>,
    offenses: Vec<(IpNet, Record)>,
}

/// What adding a ban changed.
#[derive(Debug, PartialEq)]
pub enum Added {
    /// New in the table; the narrower bans it replaces are listed (the kernel drops them).
    New { replaced: Vec<Ban> },
    /// A ban that covers it is in place already.
    Covered(IpNet),
}

/// Active bans by (first address, prefix length), so the bans inside a prefix are one range
/// and those around it a lookup per prefix length in use.
#[derive(Default)]
pub struct Bans {
    active: BTreeMap<(IpAddr, u8), Ban>,
    lengths: BTreeSet<(bool, u8)>,
    offenses: HashMap<IpNet, Record>,
    pub dirty: bool,
}

fn key(p: &IpNet) -> (IpAddr, u8) {
    (p.network(), p.prefix_len())
}

fn v6(p: &IpNet) -> bool {
    matches!(p, IpNet::V6(_))
}

impl Bans {
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.active.values()
    }

    /// The ban covering `prefix` (itself or a wider one), if any.
    pub fn covering(&self, prefix: &IpNet) -> Option<&Ban> {
        self.lengths
            .iter()
            .filter(|(six, len)| *six == v6(prefix) && *len <= prefix.prefix_len())
            .find_map(|(_, len)| {
                let wider = IpNet::new(prefix.network(), *len).ok()?.trunc();
                self.active.get(&key(&wider))
            })
    }

    /// The bans strictly inside `prefix`.
    fn inside(&self, prefix: &IpNet) -> Vec<(IpAddr, u8)> {
        // A single address has nothing inside it (and the range below would be empty).
        if prefix.prefix_len() == prefix.max_prefix_len() {
            return Vec::new();
        }
        self.active
            .range((prefix.network(), prefix.prefix_len() + 1)..=(prefix.broadcast(), 128))
            .map(|(k, _)| *k)
            .collect()
    }

    pub fn add(&mut self, ban: Ban) -> Added {
        if let Some(c) = self.covering(&ban.prefix) {
            return Added::Covered(c.prefix);
        }
        let replaced = self
            .inside(&ban.prefix)
            .into_iter()
            .filter_map(|k| self.active.remove(&k))
            .collect();
        self.lengths
            .insert((v6(&ban.prefix), ban.prefix.prefix_len()));
        self.active.insert(key(&ban.prefix), ban);
        self.dirty = true;
        Added::New { replaced }
    }

    /// Removes the ban on exactly `prefix`, or else every ban covering or inside it.
    pub fn remove(&mut self, prefix: &IpNet) -> Vec<Ban> {
        if let Some(b) = self.active.remove(&key(prefix)) {
            self.dirty = true;
            return vec![b];
        }
        let mut gone: Vec<Ban> = self
            .inside(prefix)
            .into_iter()
            .filter_map(|k| self.active.remove(&k))
            .collect();
        if let Some(c) = self.covering(prefix).map(|b| b.prefix) {
            gone.extend(self.active.remove(&key(&c)));
        }
        self.dirty |= !gone.is_empty();
        gone
    }

    /// Takes out the bans whose time is up.
    pub fn expire(&mut self, now: f64) -> Vec<Ban> {
        let due: Vec<(IpAddr, u8)> = self
            .active
            .iter()
            .filter(|(_, b)| b.until <= now)
            .map(|(k, _)| *k)
            .collect();
        self.dirty |= !due.is_empty();
        due.iter().filter_map(|k| self.active.remove(k)).collect()
    }

    /// Counts a new ban of `prefix` and returns its offense number: past bans within
    /// `memory` seconds count, older ones are forgotten.
    pub fn offend(&mut self, prefix: IpNet, now: f64, memory: f64) -> u32 {
        let r = self
            .offenses
            .entry(prefix)
            .or_insert(Record { bans: 0, last: now });
        if now - r.last > memory {
            r.bans = 0;
        }
        r.bans += 1;
        r.last = now;
        self.dirty = true;
        // Bounded: a flood of distinct sources forgets the oldest records first.
        if self.offenses.len() > 1_000_000 {
            let cutoff = now - memory;
            self.offenses.retain(|_, r| r.last >= cutoff);
        }
        self.offenses[&prefix].bans
    }

    /// Reads what `save` wrote; bans whose time is up and offenses past `memory` are left out.
    pub fn load(path: &Path, now: f64, memory: f64) -> anyhow::Result<Bans> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Bans::default()),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        let saved: Saved = serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a guard state file: {e}", path.display()))?;
        let mut bans = Bans::default();
        for b in saved.bans.into_iter().filter(|b| b.until > now) {
            bans.add(b);
        }
        bans.offenses = saved
            .offenses
            .into_iter()
            .filter(|(_, r)| now - r.last <= memory)
            .collect();
        bans.dirty = false;
        Ok(bans)
    }

    /// Writes the state to a new file that replaces the old one (a crash leaves one or the
    /// other, never half of each).
    pub fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        let saved = Saved {
            bans: self.active.values().cloned().collect(),
            offenses: self.offenses.iter().map(|(k, v)| (*k, *v)).collect(),
        };
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let f = crate::files::create_truncated(&tmp)?;
            let mut w = std::io::BufWriter::new(f);
            serde_json::to_writer(&mut w, &saved)?;
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        std::fs::rename(&tmp, path)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(p: &str, until: f64) -> Ban {
        let prefix: IpNet = p.parse().unwrap();
        Ban {
            prefix,
            address: prefix.network(),
            since: 0.0,
            until,
            offense: 1,
            detector: "t".into(),
            evidence: 1,
        }
    }

    #[test]
    fn prefixes_cover_and_replace() {
        let mut b = Bans::default();
        assert_eq!(
            b.add(ban("2001:db8:1:2::/64", 10.0)),
            Added::New { replaced: vec![] }
        );
        let inner: IpNet = "2001:db8:1:2::9/128".parse().unwrap();
        assert_eq!(
            b.add(ban(&inner.to_string(), 10.0)),
            Added::Covered("2001:db8:1:2::/64".parse().unwrap())
        );
        b.add(ban("192.0.2.7/32", 10.0));
        b.add(ban("192.0.2.9/32", 10.0));
        b.add(ban("192.0.3.1/32", 10.0));
        match b.add(ban("192.0.2.0/24", 20.0)) {
            Added::New { replaced } => assert_eq!(replaced.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 3);
        assert!(b.covering(&"192.0.2.200/32".parse().unwrap()).is_some());
        assert!(b.covering(&"192.0.4.1/32".parse().unwrap()).is_none());
        // Unbanning an address inside a prefix lifts the prefix's ban.
        assert_eq!(b.remove(&"192.0.2.9/32".parse().unwrap()).len(), 1);
        assert_eq!(b.len(), 2);
        assert_eq!(b.expire(15.0).len(), 2);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn offenses_count_and_are_forgotten() {
        let mut b = Bans::default();
        let p: IpNet = "192.0.2.7/32".parse().unwrap();
        assert_eq!(b.offend(p, 0.0, 100.0), 1);
        assert_eq!(b.offend(p, 50.0, 100.0), 2);
        assert_eq!(b.offend(p, 500.0, 100.0), 1);
    }

    #[test]
    fn state_survives_a_restart_without_what_expired() {
        let dir = std::env::temp_dir().join(format!("nflogd-bans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.json");
        let mut b = Bans::default();
        b.add(ban("192.0.2.7/32", 100.0));
        b.add(ban("192.0.2.8/32", 5.0));
        b.offend("192.0.2.7/32".parse().unwrap(), 1.0, 1000.0);
        b.save(&path).unwrap();
        let back = Bans::load(&path, 10.0, 1000.0).unwrap();
        assert_eq!(
            back.iter()
                .map(|b| b.prefix.to_string())
                .collect::<Vec<_>>(),
            ["192.0.2.7/32"]
        );
        assert_eq!(back.offenses.len(), 1);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(Bans::load(&path, 0.0, 1.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
