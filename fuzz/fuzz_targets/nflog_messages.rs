//! Arbitrary bytes as one netlink datagram from the NFLOG or conntrack event socket: the message
//! walk, the NFLOG attribute parser and the conntrack event parser must never panic.
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
    }
});
