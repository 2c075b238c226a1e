//! Arbitrary bytes as one netlink datagram from a netfilter socket (NFLOG, conntrack, nfacct): the
//! message walk, the NFLOG attribute parser, the conntrack event and nfacct parsers never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for p in nfnetlink::nflog::packets(data).flatten() {
        if let Some(ct) = p.ct {
            let _ = nfnetlink::ctnetlink::parse(nfnetlink::Attrs::new(ct));
        }
        if let Some(pl) = p.payload {
            let _ = packet::decode_ethertype(p.hw_protocol, pl);
        }
    }
    for m in nfnetlink::Messages::new(data).flatten() {
        let _ = nfnetlink::ctnetlink::parse_event(&m);
        let _ = nfnetlink::nfacct::parse(&m);
    }
});
