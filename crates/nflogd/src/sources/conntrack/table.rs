//! The open-flow table of a conntrack source, keyed by conntrack id.
//!
//! It lets a DESTROY record be complete when the kernel does not stamp flows (start from the NEW
//! nflogd saw), and it is what an overrun resync compares the kernel's table with: flows the
//! kernel has that the table lacks lost their NEW; flows the table has that the kernel no longer
//! has lost their DESTROY. Bounded: when full, new flows are not tracked (counted by the caller)
//! and their records still go out, only without the table's help.

use event::Conntrack;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a flow missing from a resync dump waits for its DESTROY event (which may still be in
/// the socket queue) before the table reports it ended. Polling has no events: no wait.
pub const GONE_GRACE: Duration = Duration::from_secs(2);

struct Open {
    family: u8,
    ct: Conntrack,
    /// When nflogd learned of the flow, ns since the epoch: the start when the kernel gives none.
    seen_ns: u64,
    /// Recorded from a dump, so the NEW event may still arrive and is then a duplicate.
    from_dump: bool,
    /// Missing from the last resync dump since then.
    gone_since: Option<Instant>,
}

/// What to do with a NEW event.
#[derive(Debug, PartialEq, Eq)]
pub enum NewFlow {
    /// First news of this flow: emit it.
    Tracked,
    /// A resync already recorded it: do not emit it twice.
    AlreadyRecorded,
    /// The table is full: emit it, untracked.
    Untracked,
}

pub struct FlowTable {
    // foldhash, not SipHash: two lookups per flow on the event path, keyed by the kernel's id.
    open: HashMap<u32, Open, foldhash::fast::RandomState>,
    capacity: usize,
    /// Entries marked gone by a resync, and the earliest time one of them is due: `expire_gone`
    /// walks the table only then.
    gone: usize,
    next_expiry: Option<Instant>,
    grace: Duration,
}

impl FlowTable {
    pub fn new(capacity: usize, grace: Duration) -> Self {
        FlowTable {
            grace,
            // Room for a busy host's flows from the start: growing the table by rehashing
            // showed in the CPU per event of a rising flow rate.
            open: HashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default()),
            capacity,
            gone: 0,
            next_expiry: None,
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    fn insert(&mut self, family: u8, ct: &Conntrack, seen_ns: u64, from_dump: bool) -> bool {
        let Some(id) = ct.id else { return false };
        if self.open.len() >= self.capacity && !self.open.contains_key(&id) {
            return false;
        }
        let old = self.open.insert(
            id,
            Open {
                family,
                ct: ct.clone(),
                seen_ns,
                from_dump,
                gone_since: None,
            },
        );
        if old.is_some_and(|o| o.gone_since.is_some()) {
            self.gone -= 1;
        }
        true
    }

    pub fn on_new(&mut self, family: u8, ct: &Conntrack, now_ns: u64) -> NewFlow {
        if let Some(open) = ct.id.and_then(|id| self.open.get_mut(&id)) {
            if open.from_dump && open.ct.orig == ct.orig {
                open.from_dump = false;
                return NewFlow::AlreadyRecorded;
            }
        }
        if self.insert(family, ct, now_ns, false) {
            NewFlow::Tracked
        } else {
            NewFlow::Untracked
        }
    }

    /// Keeps the latest counters and state of a flow, for the record of a lost DESTROY.
    pub fn on_update(&mut self, ct: &Conntrack) {
        if let Some(open) = ct.id.and_then(|id| self.open.get_mut(&id)) {
            open.ct = ct.clone();
        }
    }

    /// Forgets the flow; fills start and end when the kernel did not stamp them.
    pub fn on_destroy(&mut self, ct: &mut Conntrack, now_ns: u64) {
        let Some(open) = ct.id.and_then(|id| self.open.remove(&id)) else {
            return;
        };
        if ct.start_ns.is_none() {
            ct.start_ns = Some(open.ct.start_ns.unwrap_or(open.seen_ns));
            ct.stop_ns = ct.stop_ns.or(Some(now_ns));
        }
    }

    /// Fills the table from a dump at start, without records: these flows are not new.
    /// Returns how many did not fit.
    pub fn seed(&mut self, entries: Vec<(u8, Conntrack)>, now_ns: u64) -> u64 {
        let mut untracked = 0;
        for (family, ct) in entries {
            let seen = ct.start_ns.unwrap_or(now_ns);
            if !self.insert(family, &ct, seen, false) {
                untracked += 1;
            }
        }
        untracked
    }

    /// After an overrun: the flows of `dump` the table did not know (their NEW was lost; they
    /// are returned to be recorded), and the flows the table has that `dump` lacks are marked
    /// gone (their DESTROY may have been lost; see `expire_gone`).
    pub fn resync(
        &mut self,
        dump: Vec<(u8, Conntrack)>,
        now: Instant,
        now_ns: u64,
    ) -> (Vec<(u8, Conntrack)>, u64) {
        let mut in_dump = std::collections::HashSet::with_capacity(dump.len());
        let (mut missed, mut untracked) = (Vec::new(), 0);
        for (family, ct) in dump {
            let Some(id) = ct.id else { continue };
            in_dump.insert(id);
            match self.open.get_mut(&id) {
                Some(open) if open.ct.orig == ct.orig => {
                    if open.gone_since.take().is_some() {
                        self.gone -= 1;
                    }
                    open.ct = ct;
                }
                _ => {
                    let seen = ct.start_ns.unwrap_or(now_ns);
                    if !self.insert(family, &ct, seen, true) {
                        untracked += 1;
                    }
                    missed.push((family, ct));
                }
            }
        }
        for (id, open) in self.open.iter_mut() {
            if !in_dump.contains(id) && open.gone_since.is_none() {
                open.gone_since = Some(now);
                self.gone += 1;
            }
        }
        if self.gone > 0 && self.next_expiry.is_none() {
            self.next_expiry = Some(now + self.grace);
        }
        (missed, untracked)
    }

    /// Gives memory back after a peak (a flush, a scan): the map keeps its capacity otherwise.
    pub fn shrink(&mut self) {
        let floor = self.capacity.min(1 << 16);
        if self.open.capacity() > 4 * self.open.len().max(floor) {
            self.open.shrink_to((2 * self.open.len()).max(floor));
        }
    }

    /// Flows gone from the kernel for the grace time whose DESTROY never came: removed and
    /// returned with their last known state, ending at the time they were found gone.
    pub fn expire_gone(&mut self, now: Instant, now_ns: u64) -> Vec<(u8, Conntrack)> {
        let mut ended = Vec::new();
        if self.gone == 0 || self.next_expiry.is_none_or(|t| now < t) {
            return ended;
        }
        let mut next: Option<Instant> = None;
        self.open.retain(|_, open| match open.gone_since {
            Some(t) if now.duration_since(t) < self.grace => {
                next = Some(next.map_or(t + self.grace, |n| n.min(t + self.grace)));
                true
            }
            Some(t) => {
                let mut ct = open.ct.clone();
                let gone_ns = now_ns.saturating_sub(now.duration_since(t).as_nanos() as u64);
                ct.start_ns = ct.start_ns.or(Some(open.seen_ns));
                ct.stop_ns = ct.stop_ns.or(Some(gone_ns));
                ended.push((open.family, ct));
                self.gone -= 1;
                false
            }
            None => true,
        });
        self.next_expiry = next;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfnetlink::ctnetlink::Tuple;

    fn ct(id: u32, sport: u16) -> Conntrack {
        Conntrack {
            id: Some(id),
            orig: Tuple {
                src: Some("10.0.0.2".parse().unwrap()),
                dst: Some("10.0.0.3".parse().unwrap()),
                protocol: 6,
                sport: Some(sport),
                dport: Some(80),
                ..Tuple::default()
            },
            ..Conntrack::default()
        }
    }

    #[test]
    fn destroy_without_kernel_timestamps_gets_the_new_time() {
        let mut t = FlowTable::new(10, GONE_GRACE);
        assert_eq!(t.on_new(2, &ct(1, 1000), 5_000), NewFlow::Tracked);
        let mut end = ct(1, 1000);
        t.on_destroy(&mut end, 9_000);
        assert_eq!((end.start_ns, end.stop_ns), (Some(5_000), Some(9_000)));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn kernel_timestamps_are_kept() {
        let mut t = FlowTable::new(10, GONE_GRACE);
        t.on_new(2, &ct(1, 1000), 5_000);
        let mut end = Conntrack {
            start_ns: Some(4_000),
            stop_ns: Some(8_000),
            ..ct(1, 1000)
        };
        t.on_destroy(&mut end, 9_000);
        assert_eq!((end.start_ns, end.stop_ns), (Some(4_000), Some(8_000)));
    }

    #[test]
    fn full_table_leaves_new_flows_untracked() {
        let mut t = FlowTable::new(1, GONE_GRACE);
        assert_eq!(t.on_new(2, &ct(1, 1000), 0), NewFlow::Tracked);
        assert_eq!(t.on_new(2, &ct(2, 1001), 0), NewFlow::Untracked);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn resync_finds_lost_news_and_lost_destroys() {
        let mut t = FlowTable::new(10, GONE_GRACE);
        let t0 = Instant::now();
        t.on_new(2, &ct(1, 1000), 0); // still open
        t.on_new(2, &ct(2, 1001), 0); // its DESTROY is lost
        let dump = vec![(2, ct(1, 1000)), (2, ct(3, 1002))]; // 3's NEW is lost
        let (missed, untracked) = t.resync(dump, t0, 1_000);
        assert_eq!(
            missed.iter().map(|(_, c)| c.id).collect::<Vec<_>>(),
            [Some(3)]
        );
        assert_eq!(untracked, 0);
        // The NEW of 3 may still be queued: it is not recorded twice.
        assert_eq!(t.on_new(2, &ct(3, 1002), 1_100), NewFlow::AlreadyRecorded);
        // 2 is reported ended only after the grace time, unless its DESTROY shows up.
        assert!(t
            .expire_gone(t0 + Duration::from_millis(100), 1_100)
            .is_empty());
        let ended = t.expire_gone(t0 + GONE_GRACE, 2_000_001_000);
        assert_eq!(
            ended.iter().map(|(_, c)| c.id).collect::<Vec<_>>(),
            [Some(2)]
        );
        assert_eq!(ended[0].1.stop_ns, Some(1_000));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_destroy_arriving_after_the_dump_cancels_the_gone_mark() {
        let mut t = FlowTable::new(10, GONE_GRACE);
        let t0 = Instant::now();
        t.on_new(2, &ct(2, 1001), 0);
        t.resync(Vec::new(), t0, 1_000);
        t.on_destroy(&mut ct(2, 1001), 1_500);
        assert!(t.expire_gone(t0 + GONE_GRACE, 0).is_empty());
    }
}
