//! What the open-flow table keeps of each flow: the state its DESTROY record needs if that event
//! is lost. Packed, because the table's memory is touched on every NEW and DESTROY: an IPv4 flow
//! as its NEW event describes it (both tuples, status, mark, zone, TCP state) takes 44 bytes
//! where a `Conntrack` takes 288. Anything else (IPv6, GRE keys, counters or labels from a dump)
//! is kept whole, boxed. Not kept: the id (the table's key), the start (kept beside it), and the
//! timeout and use count, which a DESTROY record does not carry.

use event::Conntrack;
use nfnetlink::ctnetlink::Tuple;
use std::net::{IpAddr, Ipv4Addr};

pub enum KeptFlow {
    V4(V4Flow),
    Whole(Box<Conntrack>),
}

impl KeptFlow {
    pub fn new(ct: &Conntrack) -> KeptFlow {
        let only_new_fields = ct.counters_orig.is_none()
            && ct.counters_reply.is_none()
            && ct.labels.is_none()
            && ct.stop_ns.is_none();
        if only_new_fields {
            if let Some(v4) = V4Flow::pack(ct) {
                return KeptFlow::V4(v4);
            }
        }
        KeptFlow::Whole(Box::new(Conntrack {
            id: None,
            timeout: None,
            use_count: None,
            start_ns: None,
            ..ct.clone()
        }))
    }

    /// The flow as kept: without id, start, timeout and use count.
    pub fn conntrack(&self) -> Conntrack {
        match self {
            KeptFlow::V4(v4) => v4.unpack(),
            KeptFlow::Whole(ct) => (**ct).clone(),
        }
    }

    pub fn orig(&self) -> Tuple {
        match self {
            KeptFlow::V4(v4) => v4.orig.unpack(v4.has),
            KeptFlow::Whole(ct) => ct.orig,
        }
    }
}

/// Which optional fields a `V4Flow` has: a tuple's bits (the reply's shifted by `REPLY`), then
/// the entry's.
mod has {
    pub const SRC: u32 = 1 << 0;
    pub const DST: u32 = 1 << 1;
    pub const SPORT: u32 = 1 << 2;
    pub const DPORT: u32 = 1 << 3;
    pub const ICMP_ID: u32 = 1 << 4;
    pub const ICMP_TYPE: u32 = 1 << 5;
    pub const ICMP_CODE: u32 = 1 << 6;
    pub const REPLY: u32 = 8;
    pub const STATUS: u32 = 1 << 16;
    pub const MARK: u32 = 1 << 17;
    pub const ZONE: u32 = 1 << 18;
    pub const TCP_STATE: u32 = 1 << 19;
}

pub struct V4Flow {
    orig: V4Tuple,
    reply: V4Tuple,
    status: u32,
    mark: u32,
    has: u32,
    zone: u16,
    tcp_state: u8,
}

/// A tuple of IPv4 addresses. `a` and `b` are the ports, or the ICMP id and type·code: a tuple
/// has one or the other.
#[derive(Clone, Copy)]
struct V4Tuple {
    src: [u8; 4],
    dst: [u8; 4],
    a: u16,
    b: u16,
    protocol: u8,
}

impl V4Flow {
    fn pack(ct: &Conntrack) -> Option<V4Flow> {
        let mut has = 0;
        let orig = V4Tuple::pack(&ct.orig, &mut has, 0)?;
        let reply = V4Tuple::pack(&ct.reply, &mut has, has::REPLY)?;
        let mut field = |v: Option<u32>, bit| {
            has |= if v.is_some() { bit } else { 0 };
            v.unwrap_or(0)
        };
        let status = field(ct.status, has::STATUS);
        let mark = field(ct.mark, has::MARK);
        let zone = field(ct.zone.map(u32::from), has::ZONE) as u16;
        let tcp_state = field(ct.tcp_state.map(u32::from), has::TCP_STATE) as u8;
        Some(V4Flow {
            orig,
            reply,
            status,
            mark,
            has,
            zone,
            tcp_state,
        })
    }

    fn unpack(&self) -> Conntrack {
        let is = |bit| self.has & bit != 0;
        Conntrack {
            orig: self.orig.unpack(self.has),
            reply: self.reply.unpack(self.has >> has::REPLY),
            status: is(has::STATUS).then_some(self.status),
            mark: is(has::MARK).then_some(self.mark),
            zone: is(has::ZONE).then_some(self.zone),
            tcp_state: is(has::TCP_STATE).then_some(self.tcp_state),
            ..Conntrack::default()
        }
    }
}

impl V4Tuple {
    /// `None` when the tuple does not fit: an IPv6 address, GRE keys, or ports and ICMP fields
    /// together.
    fn pack(t: &Tuple, has: &mut u32, shift: u32) -> Option<V4Tuple> {
        let icmp = t.icmp_id.is_some() || t.icmp_type.is_some() || t.icmp_code.is_some();
        if t.gre_keys.is_some() || (icmp && (t.sport.is_some() || t.dport.is_some())) {
            return None;
        }
        let mut bits = 0;
        let mut addr = |a: Option<IpAddr>, bit| match a {
            None => Some([0; 4]),
            Some(IpAddr::V4(a)) => {
                bits |= bit;
                Some(a.octets())
            }
            Some(IpAddr::V6(_)) => None,
        };
        let (src, dst) = (addr(t.src, has::SRC)?, addr(t.dst, has::DST)?);
        let mut field = |v: Option<u16>, bit| {
            bits |= if v.is_some() { bit } else { 0 };
            v.unwrap_or(0)
        };
        let (a, b) = if icmp {
            let id = field(t.icmp_id, has::ICMP_ID);
            let kind = field(t.icmp_type.map(u16::from), has::ICMP_TYPE);
            let code = field(t.icmp_code.map(u16::from), has::ICMP_CODE);
            (id, kind << 8 | code)
        } else {
            (field(t.sport, has::SPORT), field(t.dport, has::DPORT))
        };
        *has |= bits << shift;
        Some(V4Tuple {
            src,
            dst,
            a,
            b,
            protocol: t.protocol,
        })
    }

    fn unpack(&self, has: u32) -> Tuple {
        let is = |bit| has & bit != 0;
        Tuple {
            src: is(has::SRC).then(|| IpAddr::V4(Ipv4Addr::from(self.src))),
            dst: is(has::DST).then(|| IpAddr::V4(Ipv4Addr::from(self.dst))),
            protocol: self.protocol,
            sport: is(has::SPORT).then_some(self.a),
            dport: is(has::DPORT).then_some(self.b),
            icmp_id: is(has::ICMP_ID).then_some(self.a),
            icmp_type: is(has::ICMP_TYPE).then_some((self.b >> 8) as u8),
            icmp_code: is(has::ICMP_CODE).then_some(self.b as u8),
            gre_keys: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event::Conntrack;
    use nfnetlink::ctnetlink::Counters;

    /// Deterministic pseudo-random numbers (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Two times in three, a value.
        fn maybe<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
            (!self.next().is_multiple_of(3)).then(|| value(self))
        }
    }

    fn tuple(r: &mut Rng) -> Tuple {
        let addr = |r: &mut Rng| match r.next() % 5 {
            0 => IpAddr::V6((r.next() as u128 * 7).into()),
            _ => IpAddr::V4((r.next() as u32).into()),
        };
        let (src, dst) = (addr(r), addr(r));
        let mut t = Tuple {
            src: r.maybe(|_| src),
            dst: r.maybe(|_| dst),
            protocol: [1, 6, 17, 47, 58, 132, 136][r.next() as usize % 7],
            ..Tuple::default()
        };
        match r.next() % 4 {
            0 => {
                t.icmp_id = r.maybe(|r| r.next() as u16);
                t.icmp_type = r.maybe(|r| r.next() as u8);
                t.icmp_code = r.maybe(|r| r.next() as u8);
            }
            1 => t.gre_keys = Some((r.next() as u16, r.next() as u16)),
            2 => {
                t.sport = r.maybe(|r| r.next() as u16);
                t.icmp_code = r.maybe(|r| r.next() as u8);
            }
            _ => {
                t.sport = r.maybe(|r| r.next() as u16);
                t.dport = r.maybe(|r| r.next() as u16);
            }
        }
        t
    }

    fn conntrack(r: &mut Rng) -> Conntrack {
        let counters = |r: &mut Rng| Counters {
            packets: r.next(),
            bytes: r.next(),
        };
        let rare = r.next().is_multiple_of(4);
        Conntrack {
            orig: tuple(r),
            reply: tuple(r),
            status: r.maybe(|r| r.next() as u32),
            mark: r.maybe(|r| r.next() as u32),
            id: r.maybe(|r| r.next() as u32),
            zone: r.maybe(|r| r.next() as u16),
            timeout: r.maybe(|r| r.next() as u32),
            use_count: r.maybe(|r| r.next() as u32),
            tcp_state: r.maybe(|r| r.next() as u8),
            counters_orig: rare.then(|| counters(r)),
            counters_reply: (rare && r.next().is_multiple_of(2)).then(|| counters(r)),
            start_ns: r.maybe(|r| r.next()),
            stop_ns: (rare && r.next().is_multiple_of(2)).then(|| r.next()),
            labels: (rare && r.next().is_multiple_of(2)).then(|| r.next() as u128),
        }
    }

    #[test]
    fn every_flow_comes_back_as_it_went_in_but_for_what_is_not_kept() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut packed = 0;
        for _ in 0..100_000 {
            let ct = conntrack(&mut r);
            let kept = KeptFlow::new(&ct);
            packed += matches!(kept, KeptFlow::V4(_)) as u32;
            let expected = Conntrack {
                id: None,
                timeout: None,
                use_count: None,
                start_ns: None,
                ..ct
            };
            assert_eq!(kept.conntrack(), expected);
            assert_eq!(kept.orig(), ct.orig);
        }
        // Both forms were exercised.
        assert!((5_000..95_000).contains(&packed), "{packed} packed");
    }

    #[test]
    fn an_ipv4_flow_from_a_new_event_is_packed_small() {
        let ct = Conntrack {
            orig: Tuple {
                src: Some("10.0.0.2".parse().unwrap()),
                dst: Some("192.0.2.1".parse().unwrap()),
                protocol: 6,
                sport: Some(40000),
                dport: Some(443),
                ..Tuple::default()
            },
            status: Some(8),
            tcp_state: Some(1),
            ..Conntrack::default()
        };
        assert!(matches!(KeptFlow::new(&ct), KeptFlow::V4(_)));
        assert!(std::mem::size_of::<KeptFlow>() <= 48);
    }
}
