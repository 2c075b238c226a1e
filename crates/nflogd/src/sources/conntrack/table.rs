//! The open-flow table of a conntrack source, keyed by conntrack id.
//!
//! It lets a DESTROY record be complete when the kernel does not stamp flows (start from the NEW
//! nflogd saw), and it is what an overrun resync compares the kernel's table with: flows the
//! kernel has that the table lacks lost their NEW; flows the table has that the kernel no longer
//! has lost their DESTROY. Bounded: when full, new flows are not tracked (counted by the caller)
//! and their records still go out, only without the table's help.

use super::kept::KeptFlow;
use event::Conntrack;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a flow missing from a resync dump waits for its DESTROY event (which may still be in
/// the socket queue) before the table reports it ended. Polling has no events: no wait.
pub const GONE_GRACE: Duration = Duration::from_secs(2);

type Map<V> = HashMap<u32, V, foldhash::fast::RandomState>;

struct Open {
    /// The flow's start, ns since the epoch: the kernel's stamp when a dump gave one, else when
    /// nflogd learned of the flow.
    start_ns: u64,
    family: u8,
    /// Recorded from a dump, so the NEW event may still arrive and is then a duplicate.
    from_dump: bool,
    kept: KeptFlow,
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
    /// Conntrack id → slot in `slots`. Its entries are 8 bytes and it grows with the flows
    /// (not sized for a busy host from the start), so it stays small and dense and its lookups
    /// mostly hit the cache; a flow's slot is written at its NEW and read only when needed (a
    /// DESTROY the kernel stamped does not read it). With the flows inline in a presized map,
    /// its cache misses were a tenth of the CPU per event; now a twentieth. foldhash, not
    /// SipHash: two lookups per flow on the event path, keyed by the kernel's id.
    index: Map<u32>,
    slots: Vec<Open>,
    /// Slots of ended flows, the last freed first.
    free: Vec<u32>,
    capacity: usize,
    /// Flows missing from the last resync dump, and since when: few, and only after an overrun.
    gone: Map<Instant>,
    grace: Duration,
}

/// The size below which `shrink` leaves the table alone.
const FLOOR: usize = 1 << 12;

impl FlowTable {
    pub fn new(capacity: usize, grace: Duration) -> Self {
        FlowTable {
            grace,
            index: Map::default(),
            slots: Vec::new(),
            free: Vec::new(),
            capacity,
            gone: Map::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    fn open_mut(&mut self, id: u32) -> Option<&mut Open> {
        let slot = *self.index.get(&id)?;
        self.slots.get_mut(slot as usize)
    }

    fn insert(&mut self, family: u8, ct: &Conntrack, start_ns: u64, from_dump: bool) -> bool {
        let Some(id) = ct.id else { return false };
        let full = self.index.len() >= self.capacity;
        let open = Open {
            start_ns,
            family,
            from_dump,
            kept: KeptFlow::new(ct),
        };
        match self.index.entry(id) {
            Entry::Occupied(e) => {
                self.slots[*e.get() as usize] = open;
                self.gone.remove(&id);
            }
            Entry::Vacant(_) if full => return false,
            Entry::Vacant(e) => {
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = open;
                        slot
                    }
                    None => {
                        self.slots.push(open);
                        (self.slots.len() - 1) as u32
                    }
                };
                e.insert(slot);
            }
        }
        true
    }

    /// Forgets a flow; its slot is read only by `read`. A freed slot keeps what it held (a boxed
    /// flow's memory too) until a new flow takes it or `shrink` compacts the slots.
    fn remove<T>(&mut self, id: u32, read: impl FnOnce(&Open) -> T) -> Option<T> {
        let slot = self.index.remove(&id)?;
        if !self.gone.is_empty() {
            self.gone.remove(&id);
        }
        self.free.push(slot);
        self.slots.get(slot as usize).map(read)
    }

    /// `ct.start_ns` is the flow's start (the NEW's time when the kernel gives none).
    pub fn on_new(&mut self, family: u8, ct: &Conntrack, now_ns: u64) -> NewFlow {
        if let Some(open) = ct.id.and_then(|id| self.open_mut(id)) {
            if open.from_dump && open.kept.orig() == ct.orig {
                open.from_dump = false;
                return NewFlow::AlreadyRecorded;
            }
        }
        if self.insert(family, ct, ct.start_ns.unwrap_or(now_ns), false) {
            NewFlow::Tracked
        } else {
            NewFlow::Untracked
        }
    }

    /// Keeps the latest counters and state of a flow, for the record of a lost DESTROY.
    pub fn on_update(&mut self, ct: &Conntrack) {
        if let Some(open) = ct.id.and_then(|id| self.open_mut(id)) {
            open.kept = KeptFlow::new(ct);
        }
    }

    /// Forgets the flow; fills start and end when the kernel did not stamp them.
    pub fn on_destroy(&mut self, ct: &mut Conntrack, now_ns: u64) {
        let Some(id) = ct.id else { return };
        if ct.start_ns.is_some() {
            self.remove(id, |_| ());
        } else if let Some(start) = self.remove(id, |open| open.start_ns) {
            ct.start_ns = Some(start);
            ct.stop_ns = ct.stop_ns.or(Some(now_ns));
        }
    }

    /// Fills the table from a dump at start, without records: these flows are not new.
    /// Returns how many did not fit.
    pub fn seed(&mut self, entries: Vec<(u8, Conntrack)>, now_ns: u64) -> u64 {
        let mut untracked = 0;
        for (family, ct) in entries {
            if !self.insert(family, &ct, ct.start_ns.unwrap_or(now_ns), false) {
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
            match self.open_mut(id) {
                Some(open) if open.kept.orig() == ct.orig => {
                    open.kept = KeptFlow::new(&ct);
                    self.gone.remove(&id);
                }
                _ => {
                    if !self.insert(family, &ct, ct.start_ns.unwrap_or(now_ns), true) {
                        untracked += 1;
                    }
                    missed.push((family, ct));
                }
            }
        }
        for id in self.index.keys() {
            if !in_dump.contains(id) {
                self.gone.entry(*id).or_insert(now);
            }
        }
        (missed, untracked)
    }

    /// Gives memory back after a peak (a flush, a scan): the index and the slots keep their
    /// size otherwise. The open flows move to the front slots.
    pub fn shrink(&mut self) {
        let floor = self.capacity.min(FLOOR);
        let len = self.index.len();
        if self.slots.len() > 4 * len.max(floor) {
            let mut slots = Vec::with_capacity(2 * len);
            for slot in self.index.values_mut() {
                let open = std::mem::replace(&mut self.slots[*slot as usize], Open::vacant());
                slots.push(open);
                *slot = (slots.len() - 1) as u32;
            }
            self.slots = slots;
            self.free = Vec::new();
        }
        if self.index.capacity() > 4 * len.max(floor) {
            self.index.shrink_to((2 * len).max(floor));
        }
    }

    /// Flows gone from the kernel for the grace time whose DESTROY never came: removed and
    /// returned with their last known state, ending at the time they were found gone.
    pub fn expire_gone(&mut self, now: Instant, now_ns: u64) -> Vec<(u8, Conntrack)> {
        let due: Vec<(u32, Instant)> = self
            .gone
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.grace)
            .map(|(id, since)| (*id, *since))
            .collect();
        let mut ended = Vec::with_capacity(due.len());
        for (id, since) in due {
            self.gone.remove(&id);
            let gone_ns = now_ns.saturating_sub(now.duration_since(since).as_nanos() as u64);
            let flow = self.remove(id, |open| {
                let mut ct = open.kept.conntrack();
                ct.id = Some(id);
                ct.start_ns = Some(open.start_ns);
                ct.stop_ns = ct.stop_ns.or(Some(gone_ns));
                (open.family, ct)
            });
            ended.extend(flow);
        }
        ended
    }
}

impl Open {
    /// What a slot holds after `shrink` moved its flow away (never read: no index points to it).
    fn vacant() -> Open {
        Open {
            start_ns: 0,
            family: 0,
            from_dump: false,
            kept: KeptFlow::new(&Conntrack::default()),
        }
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

    /// After a peak the slots are compacted, and every open flow is still found whole.
    #[test]
    fn shrinking_after_a_peak_keeps_the_open_flows() {
        let mut t = FlowTable::new(1 << 20, GONE_GRACE);
        let peak = 300_000;
        for id in 1..=peak {
            t.on_new(2, &ct(id, id as u16), u64::from(id));
        }
        for id in (1..=peak).filter(|id| id % 1000 != 0) {
            t.on_destroy(&mut ct(id, id as u16), 0);
        }
        t.shrink();
        assert_eq!((t.len(), t.slots.len()), (300, 300));
        assert!(t.free.is_empty());
        assert_eq!(t.on_new(2, &ct(7, 7), 77), NewFlow::Tracked);
        for id in (1000..=peak).step_by(1000).chain([7]) {
            let mut end = ct(id, id as u16);
            t.on_destroy(&mut end, 0);
            let start = if id == 7 { 77 } else { u64::from(id) };
            assert_eq!(end.start_ns, Some(start), "flow {id}");
        }
        assert_eq!(t.len(), 0);
    }
}
