//! `text`: the kernel's LOG line, as `logline` renders it.

use super::SchemaOptions;
use event::PacketEvent;

/// Packets parsed from a LOG line render with the flags that line showed, so the text comes back
/// as it was; NFLOG packets with the sink's `log_flags`.
pub fn packet(p: &PacketEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    // A line in no known layout is written back as it came: rendering would invent the
    // fields it lacks.
    if let Some(o) = p.original.as_deref().filter(|_| p.partial) {
        out.extend_from_slice(o.as_bytes());
        return;
    }
    let flags = p.log_flags.map(logline::LogFlags).unwrap_or(opts.log_flags);
    logline::render(p, flags, out);
}

/// A flow as one line, in the spirit of ulogd's PRINTFLOW (with ICMP type and code the right
/// way round, and the NAT mapping spelled out).
pub fn flow(f: &event::FlowEvent, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "[{}] ", f.kind.as_str().to_uppercase());
    for (name, t, c) in [
        ("ORIG", &f.ct.orig, &f.ct.counters_orig),
        ("REPLY", &f.ct.reply, &f.ct.counters_reply),
    ] {
        let _ = write!(out, "{name}: ");
        if let (Some(s), Some(d)) = (t.src, t.dst) {
            let _ = write!(out, "SRC={s} DST={d} ");
        }
        match packet::proto::name(t.protocol) {
            Some(n) => {
                let _ = write!(out, "PROTO={} ", n.to_uppercase());
            }
            None => {
                let _ = write!(out, "PROTO={} ", t.protocol);
            }
        }
        if let (Some(sp), Some(dp)) = (t.sport, t.dport) {
            let _ = write!(out, "SPT={sp} DPT={dp} ");
        }
        if let (Some(ty), Some(co)) = (t.icmp_type, t.icmp_code) {
            let _ = write!(out, "TYPE={ty} CODE={co} ");
        }
        if let Some(c) = c {
            let _ = write!(out, "PKTS={} BYTES={} ", c.packets, c.bytes);
        }
        if name == "ORIG" {
            out.extend_from_slice(b", ");
        }
    }
    if let Some((ip, port)) = f.snat() {
        let _ = write!(out, "SNAT={ip}");
        if let Some(p) = port {
            let _ = write!(out, ":{p}");
        }
        out.push(b' ');
    }
    if let Some((ip, port)) = f.dnat() {
        let _ = write!(out, "DNAT={ip}");
        if let Some(p) = port {
            let _ = write!(out, ":{p}");
        }
        out.push(b' ');
    }
    if let Some(id) = f.ct.id {
        let _ = write!(out, "ID={id} ");
    }
    if let (Some(a), Some(b)) = (f.ct.start_ns, f.ct.stop_ns) {
        let _ = write!(out, "DURATION={:.3}s ", b.saturating_sub(a) as f64 / 1e9);
    }
    if f.recovered {
        out.extend_from_slice(b"RECOVERED ");
    }
}

/// An accounting object as one line: `[NFACCT] NAME=ssh PKTS=12 BYTES=1560`.
pub fn counter(c: &event::CounterEvent, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(
        out,
        "[NFACCT] NAME={} PKTS={} BYTES={}",
        c.name, c.packets, c.bytes
    );
}

/// `[GUARD] NAME=ssh ACTION=ban PREFIX=203.0.113.5/32 …`, in the kernel line's KEY=value style.
pub fn decision(d: &event::Decision, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(
        out,
        "[GUARD] NAME={} ACTION={} SRC={} PREFIX={} DETECTOR={} EVIDENCE={} OFFENSE={} DURATION={}{}",
        d.guard,
        d.verdict.as_str(),
        d.address,
        d.prefix,
        d.detector,
        d.evidence,
        d.offense,
        d.duration_secs,
        if d.dry_run { " DRYRUN" } else { "" }
    );
}

/// A program's line as syslog shows it: `program[pid]: message`.
pub fn line(l: &event::LogLine, out: &mut Vec<u8>) {
    use std::io::Write;
    match (&l.program, l.pid) {
        (Some(p), Some(pid)) => {
            let _ = write!(out, "{p}[{pid}]: ");
        }
        (Some(p), None) => {
            let _ = write!(out, "{p}: ");
        }
        _ => {}
    }
    out.extend_from_slice(l.message.as_bytes());
}
