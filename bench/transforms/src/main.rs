//! The cost per event of each transform, on packet records parsed from a log file (no I/O in
//! the timed part): Community ID, GeoIP (with an empty cache, so every address is looked up,
//! and with a warm one), the filter. Each is run PASSES times over the whole file; the best and
//! the median pass are printed in nanoseconds per event (and per address looked up for GeoIP),
//! as this VM's neighbours make single passes vary.
//!
//! usage: transforms FILE CITY.mmdb ASN.mmdb [PASSES]

use event::Event;
use nflogd::transforms::{TransformConfig, TransformContext};
use std::time::Instant;

fn stats(mut ns: Vec<f64>) -> (f64, f64) {
    ns.sort_by(f64::total_cmp);
    (ns[0], ns[ns.len() / 2])
}

fn transform(toml_text: &str) -> Box<dyn nflogd::transforms::Transform> {
    let cfg: TransformConfig = toml::from_str(toml_text).expect("transform config");
    let ctx = TransformContext {
        name: "bench".into(),
        counters: Default::default(),
    };
    cfg.component().build(&ctx).expect("build")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: transforms FILE CITY.mmdb ASN.mmdb [PASSES]";
    let (path, city, asn) = (
        args.next().expect(usage),
        args.next().expect(usage),
        args.next().expect(usage),
    );
    let passes: usize = args.next().map_or(5, |p| p.parse().expect("PASSES"));
    let text = std::fs::read_to_string(&path).expect("read");
    let events: Vec<Event> = text
        .lines()
        .filter_map(|l| logline::parse(&logline::envelope::open(l).body).ok())
        .map(|p| Event::Packet(p.event))
        .collect();
    let n = events.len() as f64;
    let keys: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Packet(p) => p.key(),
            _ => None,
        })
        .collect();

    // Community ID: hashing each record's endpoints into its ECS text.
    let mut out = Vec::with_capacity(64);
    let mut sink = 0usize;
    let mut ns = Vec::new();
    for _ in 0..passes {
        let start = Instant::now();
        for k in &keys {
            out.clear();
            nflogd::schema::community_id::write(k, 0, &mut out);
            sink += out[5] as usize;
        }
        ns.push(start.elapsed().as_nanos() as f64 / keys.len() as f64);
    }
    let (best, median) = stats(ns);
    println!(
        "community_id {} records: best {best:.0} ns, median {median:.0} ns per record [{}]",
        keys.len(),
        sink & 1
    );

    // GeoIP: batches of 256 as sources send them; a new instance each pass (an empty cache)
    // for the lookups themselves, then the same instance again (its cache warm).
    let geo = format!("type = \"geoip\"\ninputs = [\"x\"]\ndatabases = [\"{city}\", \"{asn}\"]\n");
    let looked_up = keys
        .iter()
        .map(|k| {
            [k.src, k.dst]
                .iter()
                .filter(|ip| !nflogd::transforms::geoip::special(**ip))
                .count()
        })
        .sum::<usize>();
    for (label, fresh) in [("geoip cold", true), ("geoip warm", false)] {
        let mut t = transform(&geo);
        let mut ns = Vec::new();
        let mut found = 0usize;
        for _ in 0..passes {
            if fresh {
                t = t.another();
            }
            let mut batches: Vec<Vec<Event>> = events.chunks(256).map(|c| c.to_vec()).collect();
            let start = Instant::now();
            for b in &mut batches {
                t.apply(b);
            }
            ns.push(start.elapsed().as_nanos() as f64 / n);
            found = batches
                .iter()
                .flatten()
                .filter(|e| matches!(e, Event::Packet(p) if p.enrich.is_some()))
                .count();
        }
        let (best, median) = stats(ns);
        println!(
            "{label}: best {best:.0} ns, median {median:.0} ns per record ({} addresses a record, {:.0} ns per address at the median; {found} of {} records enriched)",
            looked_up as f64 / n,
            median * n / looked_up as f64,
            n
        );
    }

    // The filter: three conditions, about half the records kept.
    let mut t = transform("type = \"filter\"\ninputs = [\"x\"]\nprotocols = [\"tcp\", \"udp\"]\naddresses = [\"0.0.0.0/1\", \"2001:db8::/33\"]\n");
    let mut ns = Vec::new();
    let mut kept = 0;
    for _ in 0..passes {
        let mut batches: Vec<Vec<Event>> = events.chunks(256).map(|c| c.to_vec()).collect();
        let start = Instant::now();
        for b in &mut batches {
            t.apply(b);
        }
        ns.push(start.elapsed().as_nanos() as f64 / n);
        kept = batches.iter().map(Vec::len).sum::<usize>();
    }
    let (best, median) = stats(ns);
    println!("filter: best {best:.0} ns, median {median:.0} ns per record ({kept} of {n} kept)");
}
