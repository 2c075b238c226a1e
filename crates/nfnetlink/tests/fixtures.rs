//! Datagrams captured from a real kernel (tests/fixtures/capture.py, Linux 6.18, x86_64),
//! decoded: conntrack events and dumps, an nfacct dump, an rtnetlink link dump. What each
//! must say is what capture.py set up.
#![cfg(target_endian = "little")]

use nfnetlink::ctnetlink::{self, EventKind};
use nfnetlink::{nfacct, rtnl, Message, Messages};

fn datagrams(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn messages(d: &[u8]) -> Vec<Message<'_>> {
    Messages::new(d).map(|m| m.unwrap()).collect()
}

fn ct(d: &[u8]) -> Vec<(EventKind, u8, ctnetlink::Conntrack)> {
    messages(d)
        .iter()
        .filter_map(|m| ctnetlink::parse_event(m).unwrap())
        .collect()
}

#[test]
fn conntrack_events_from_the_kernel() {
    let ev: Vec<_> = datagrams("ct-events.hex")
        .iter()
        .flat_map(|d| ct(d))
        .collect();
    let kinds: Vec<(EventKind, u8, u8)> = ev
        .iter()
        .map(|(k, f, c)| (*k, *f, c.orig.protocol))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::New, 2, 1),
            (EventKind::New, 2, 6),
            (EventKind::New, 10, 17),
            (EventKind::Destroy, 2, 6),
            (EventKind::Destroy, 2, 1)
        ]
    );
    // The ping over lo: echo request and reply tuples, two packets of 84 bytes each way,
    // start and stop times from nf_conntrack_timestamp.
    let (_, _, ping) = &ev[4];
    assert_eq!(
        (ping.orig.icmp_type, ping.reply.icmp_type),
        (Some(8), Some(0))
    );
    assert_eq!(ping.orig.icmp_id, ev[0].2.orig.icmp_id);
    assert_eq!(
        ping.id, ev[0].2.id,
        "NEW and DESTROY of one flow share its id"
    );
    for c in [ping.counters_orig, ping.counters_reply] {
        assert_eq!(c.map(|c| (c.packets, c.bytes)), Some((2, 168)));
    }
    let (start, stop) = (ping.start_ns.unwrap(), ping.stop_ns.unwrap());
    assert!(
        stop > start && stop - start < 5_000_000_000,
        "{start}..{stop}"
    );
    // The TCP flow inserted with source NAT to 10.0.1.1:61000 and mark 42: the reply tuple
    // says where the server answers to.
    let (_, _, tcp) = &ev[3];
    assert_eq!(tcp.orig.src, Some("10.0.0.2".parse().unwrap()));
    assert_eq!((tcp.orig.sport, tcp.orig.dport), (Some(40000), Some(80)));
    assert_eq!(tcp.reply.dst, Some("10.0.1.1".parse().unwrap()));
    assert_eq!((tcp.reply.sport, tcp.reply.dport), (Some(80), Some(61000)));
    assert_eq!(
        (tcp.mark, tcp.tcp_state),
        (Some(42), Some(3)),
        "ESTABLISHED is 3"
    );
    // IPS_SRC_NAT (0x10) is in its status.
    assert_ne!(tcp.status.unwrap() & 0x10, 0);
    // UDP over IPv6.
    let (_, _, udp) = &ev[2];
    assert_eq!(udp.orig.dst, Some("fd00:1::2".parse().unwrap()));
    assert_eq!((udp.orig.sport, udp.orig.dport), (Some(5353), Some(53)));
}

#[test]
fn a_conntrack_dump_from_the_kernel_ends_with_done() {
    let dump = datagrams("ct-dump.hex");
    let entries: Vec<_> = dump.iter().flat_map(|d| ct(d)).collect();
    assert_eq!(entries.len(), 1, "the UDP flow is the one left");
    assert_eq!(entries[0].2.orig.dport, Some(53));
    assert_eq!(entries[0].2.use_count, Some(1));
    let last = dump.last().unwrap();
    assert_eq!(messages(last).last().unwrap().kind, 3, "NLMSG_DONE");
}

#[test]
fn an_nfacct_dump_from_the_kernel() {
    let objs: Vec<nfacct::Accounting> = datagrams("nfacct-dump.hex")
        .iter()
        .flat_map(|d| {
            messages(d)
                .iter()
                .filter_map(|m| nfacct::parse(m).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let got: Vec<(&str, u64, u64)> = objs
        .iter()
        .map(|a| (a.name.as_str(), a.packets, a.bytes))
        .collect();
    // Three pings over lo, request and reply through INPUT: six packets of 84 bytes.
    assert_eq!(got, [("pings", 6, 504), ("idle", 0, 0)]);
}

#[test]
fn an_rtnetlink_link_dump_from_the_kernel() {
    let links: Vec<rtnl::Link> = datagrams("rtnl-links.hex")
        .iter()
        .flat_map(|d| {
            messages(d)
                .iter()
                .filter(|m| m.kind == 16)
                .filter_map(|m| rtnl::parse_link(m.payload))
                .collect::<Vec<_>>()
        })
        .collect();
    let got: Vec<(u32, &str, u16)> = links
        .iter()
        .map(|l| (l.index, l.name.as_str(), l.hwtype))
        .collect();
    assert_eq!(got, [(1, "lo", 772), (2, "v1", 1), (3, "v0", 1)]);
}

/// Every real datagram cut at every length, and with each attribute length in turn made too
/// small: decoding returns errors, never panics, never reads past the end.
#[test]
fn real_datagrams_cut_or_corrupted_never_panic() {
    for f in [
        "ct-events.hex",
        "ct-dump.hex",
        "nfacct-dump.hex",
        "rtnl-links.hex",
    ] {
        for d in datagrams(f) {
            let decode = |b: &[u8]| {
                for m in Messages::new(b).flatten() {
                    let _ = ctnetlink::parse_event(&m);
                    let _ = nfacct::parse(&m);
                    let _ = rtnl::parse_link(m.payload);
                }
            };
            for cut in 0..d.len() {
                decode(&d[..cut]);
            }
            // nlattr lengths sit at 4-byte boundaries after the 20-byte headers.
            for at in (20..d.len().saturating_sub(2)).step_by(4) {
                for bad in [0u16, 1, 3, 0xffff] {
                    let mut c = d.clone();
                    c[at..at + 2].copy_from_slice(&bad.to_le_bytes());
                    decode(&c);
                }
            }
        }
    }
    // A message of the dump with an attribute length below 4 is an error, not a skip.
    let d = datagrams("nfacct-dump.hex").remove(0);
    let mut c = d.clone();
    c[20..22].copy_from_slice(&2u16.to_le_bytes());
    let m = messages(&c)[0];
    assert!(nfacct::parse(&m).is_err());
}
