//! Arbitrary bytes as one netlink datagram from a netfilter socket (NFLOG, conntrack, nfacct,
//! nf_tables traces): the message walk, the NFLOG attribute parser, the conntrack event, nfacct
//! and trace parsers never panic; nor does turning a trace into a path.
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
        if let Some(Ok(t)) = nfnetlink::trace::parse(&m) {
            let _ = nflogd::trace::headers(&t);
        }
    }
});
