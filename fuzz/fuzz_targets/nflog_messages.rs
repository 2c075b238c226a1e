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
    let mut gather = nflogd::trace::Gatherer::new(std::time::Duration::ZERO);
    let mut rules = nflogd::trace::rules::RuleTexts::offline();
    let mut traced = Vec::new();
    for m in nfnetlink::Messages::new(data).flatten() {
        let _ = nfnetlink::ctnetlink::parse_event(&m);
        let _ = nfnetlink::nfacct::parse(&m);
        if let Some(Ok(t)) = nfnetlink::trace::parse(&m) {
            traced.extend(gather.add(t, &mut rules));
        }
    }
    traced.extend(gather.drain());
    for t in &traced {
        let p = nflogd::trace::to_event(t, &mut |i| event::Interface {
            index: Some(i),
            name: "".into(),
            hwtype: None,
        });
        let _ = nflogd::trace::tree(&p);
    }
});
