//! `ulogd`: the keys, order and value formats of ulogd2's JSON output for the stack
//! NFLOG → BASE → IFINDEX → IP2STR → HWHDR → JSON, so existing Logstash/Kibana setups keep
//! working. Where ulogd2 is wrong (docs/ulogd-schema.md) the correct value is written.

use super::json::Flat;
use super::{ip_string, mac_colon, LocalOffset, SchemaOptions};
use crate::flat_key as k;
use event::{PacketEvent, RawLine, ARPHRD_ETHER};
use packet::{proto, Network, Transport};

fn timestamp(p: &PacketEvent, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    out_time(p.time, tz, out);
}

pub fn packet(p: &PacketEvent, opts: &SchemaOptions, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let mut o = Flat::open(out, "timestamp");
    timestamp(p, tz, o.out());
    o.str(k!("dvc"), &opts.device);
    // NFLOG input keys.
    o.num(k!("raw.pktlen"), p.payload_len)
        .num(k!("raw.pktcount"), 1u32);
    o.str(k!("oob.prefix"), &p.prefix);
    o.num(k!("oob.time.sec"), p.time.secs)
        .num(k!("oob.time.usec"), p.time.micros);
    o.num(k!("oob.mark"), p.mark);
    if let Some(i) = p.indev.as_ref().and_then(|d| d.index).filter(|&i| i > 0) {
        o.num(k!("oob.ifindex_in"), i);
    }
    if let Some(i) = p.outdev.as_ref().and_then(|d| d.index).filter(|&i| i > 0) {
        o.num(k!("oob.ifindex_out"), i);
    }
    if let Some(h) = p.hook {
        o.num(k!("oob.hook"), h);
    }
    let link = p.link.as_ref().filter(|l| !l.header.is_empty());
    if let Some(l) = link {
        o.num(k!("raw.mac_len"), l.header.len());
    }
    if let Some(s) = p.seq {
        o.num(k!("oob.seq.local"), s);
    }
    if let Some(s) = p.seq_global {
        o.num(k!("oob.seq.global"), s);
    }
    o.num(k!("oob.family"), p.family)
        .num(k!("oob.protocol"), p.hw_protocol);
    if let (Some(u), Some(g)) = (p.uid, p.gid) {
        o.num(k!("oob.uid"), u).num(k!("oob.gid"), g);
    }
    if opts.boolean_label {
        let allowed = match p.action {
            Some(a) => a == event::Action::Accept,
            None => p.label != 0,
        };
        o.str(k!("action"), if allowed { "allowed" } else { "blocked" });
    } else {
        o.num(k!("raw.label"), p.label);
    }
    if let Some(l) = link {
        if let Some(t) = l.hwtype {
            o.num(k!("raw.type"), t);
        }
    }
    if let Some(a) = p.link.as_ref().and_then(|l| l.hwaddr.as_ref()) {
        o.num(k!("raw.mac.addrlen"), a.len());
    }
    // BASE.
    base(p, &mut o);
    // IFINDEX: always both, "" when unknown.
    o.str(
        k!("oob.in"),
        p.indev.as_ref().map(|d| &*d.name).unwrap_or(""),
    );
    o.str(
        k!("oob.out"),
        p.outdev.as_ref().map(|d| &*d.name).unwrap_or(""),
    );
    // IP2STR.
    match &p.headers.network {
        Network::Ipv4(ip) => {
            o.raw(k!("src_ip"), |out| ip_string(ip.src.into(), out))
                .raw(k!("dest_ip"), |out| ip_string(ip.dst.into(), out));
        }
        Network::Ipv6(ip) => {
            o.raw(k!("src_ip"), |out| ip_string(ip.src.into(), out))
                .raw(k!("dest_ip"), |out| ip_string(ip.dst.into(), out));
        }
        Network::Arp(a) => {
            if let Some(x) = &a.addrs {
                o.str(k!("arp.saddr.str"), &x.sender_ip.to_string())
                    .str(k!("arp.daddr.str"), &x.target_ip.to_string());
            }
        }
        _ => {}
    }
    // HWHDR.
    if let Some(l) = p.link.as_ref() {
        let eth = if l.hwtype == Some(ARPHRD_ETHER) {
            packet::ethernet::parse(&l.header)
        } else {
            None
        };
        match (&eth, &l.hwaddr) {
            (Some(e), _) => {
                o.raw(k!("mac.saddr.str"), |out| json_mac(&e.src, out));
                o.raw(k!("mac.daddr.str"), |out| json_mac(&e.dst, out));
            }
            (None, Some(a)) => {
                o.raw(k!("mac.saddr.str"), |out| json_mac(a, out));
            }
            _ => {}
        }
        if !l.header.is_empty() {
            o.raw(k!("mac.str"), |out| json_mac(&l.header, out));
        }
    }
    // Not a ulogd2 key: read from a line in no known layout, some fields are missing.
    if p.partial {
        o.raw(k!("partial"), |out| out.extend_from_slice(b"true"));
    }
    o.close();
}

fn json_mac(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    mac_colon(b, out);
    out.push(b'"');
}

fn transport(t: &Transport, protocol: u8, line_flags: Option<u8>, o: &mut Flat) {
    let from_line = line_flags.is_some();
    let seq_known = line_flags.is_none_or(|f| f & logline::LogFlags::TCPSEQ != 0);
    match t {
        Transport::Tcp(t) => {
            use packet::tcp::flag::*;
            o.num(k!("src_port"), t.sport).num(k!("dest_port"), t.dport);
            o.opt_num(k!("tcp.seq"), seq_known.then_some(t.seq))
                .opt_num(k!("tcp.ackseq"), seq_known.then_some(t.ack))
                .num(k!("tcp.window"), t.window);
            o.num(k!("tcp.offset"), t.data_offset)
                .num(k!("tcp.reserved"), ((t.flags >> 8) & 0xf) as u8);
            o.num(k!("tcp.urg"), t.has(URG) as u8);
            if t.has(URG) {
                o.num(k!("tcp.urgp"), t.urgent);
            }
            o.num(k!("tcp.ack"), t.has(ACK) as u8)
                .num(k!("tcp.psh"), t.has(PSH) as u8)
                .num(k!("tcp.rst"), t.has(RST) as u8);
            o.num(k!("tcp.syn"), t.has(SYN) as u8)
                .num(k!("tcp.fin"), t.has(FIN) as u8);
            // The raw bit fields, as ulogd2 prints them: res1 = reserved+AE (4 bits), res2 = CWR|ECE.
            o.num(k!("tcp.res1"), ((t.flags >> 8) & 0xf) as u8)
                .num(k!("tcp.res2"), ((t.flags >> 6) & 3) as u8);
            o.opt_num(k!("tcp.csum"), (!from_line).then_some(t.checksum));
        }
        Transport::Udp(u) => {
            o.num(k!("src_port"), u.sport)
                .num(k!("dest_port"), u.dport)
                .num(k!("udp.len"), u.length)
                .opt_num(k!("udp.csum"), (!from_line).then_some(u.checksum));
        }
        Transport::Icmp(m) => {
            o.num(k!("icmp.type"), m.icmp_type)
                .num(k!("icmp.code"), m.code);
            if m.is_echo() {
                o.num(k!("icmp.echoid"), m.echo_id())
                    .num(k!("icmp.echoseq"), m.echo_seq());
            }
            if m.icmp_type == packet::icmp::DEST_UNREACH && m.code == packet::icmp::FRAG_NEEDED {
                o.num(k!("icmp.fragmtu"), m.mtu());
            }
            o.opt_num(k!("icmp.csum"), (!from_line).then_some(m.checksum));
        }
        Transport::Icmpv6(m) => {
            o.num(k!("icmpv6.type"), m.icmp_type)
                .num(k!("icmpv6.code"), m.code);
            if m.is_echo() {
                o.num(k!("icmpv6.echoid"), m.echo_id())
                    .num(k!("icmpv6.echoseq"), m.echo_seq());
            }
            o.opt_num(k!("icmpv6.csum"), (!from_line).then_some(m.checksum));
        }
        Transport::Esp(e) => {
            o.num(k!("ahesp.spi"), e.spi);
        }
        Transport::Ah(a) => {
            o.num(k!("ahesp.spi"), a.spi);
        }
        Transport::Sctp(s) if protocol == proto::SCTP => {
            o.num(k!("src_port"), s.sport)
                .num(k!("dest_port"), s.dport)
                .opt_num(k!("sctp.csum"), (!from_line).then_some(s.checksum));
        }
        _ => {}
    }
}

fn base(p: &PacketEvent, o: &mut Flat) {
    // A record parsed from a LOG line has no checksums: they are left out, not written as 0.
    let from_line = p.log_flags.is_some();
    match &p.headers.network {
        Network::Ipv4(ip) => {
            o.num(k!("ip.protocol"), ip.protocol)
                .num(k!("ip.tos"), ip.tos)
                .num(k!("ip.ttl"), ip.ttl);
            o.num(k!("ip.totlen"), ip.total_len)
                .num(k!("ip.ihl"), ip.ihl)
                .opt_num(k!("ip.csum"), (!from_line).then_some(ip.checksum));
            o.num(k!("ip.id"), ip.id)
                .num(k!("ip.fragoff"), ip.frag_field);
            transport(&ip.transport, ip.protocol, p.log_flags, o);
        }
        Network::Ipv6(ip) => {
            let frag = ip.fragment();
            let later = ip.is_later_fragment();
            if !later && !ip.walk_ended() {
                o.num(k!("ip.protocol"), ip.protocol);
            }
            o.num(k!("ip6.payloadlen"), ip.payload_len)
                .num(k!("ip6.priority"), ip.traffic_class);
            o.num(k!("ip6.flowlabel"), ip.flow_label)
                .num(k!("ip6.hoplimit"), ip.hop_limit)
                .num(k!("ip6.nexthdr"), ip.protocol);
            if let Some((off, _, id)) = frag {
                o.num(k!("ip6.fragoff"), off).num(k!("ip6.fragid"), id);
            }
            transport(&ip.transport, ip.protocol, p.log_flags, o);
        }
        Network::Arp(a) if a.addrs.is_some() => {
            o.num(k!("arp.hwtype"), a.htype)
                .num(k!("arp.protocoltype"), a.ptype)
                .num(k!("arp.operation"), a.opcode);
        }
        _ => {}
    }
}

/// A line that did not parse: ulogd has no such record; the line and the reason are kept.
pub fn raw(r: &RawLine, opts: &SchemaOptions, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let mut o = Flat::open(out, "timestamp");
    out_time(r.time, tz, o.out());
    o.str(k!("dvc"), &opts.device);
    o.str(k!("raw.line"), &r.line);
    o.str(k!("error"), &r.reason);
    o.str(k!("origin"), &r.origin);
    if let Some(p) = r.position {
        o.num(k!("position"), p);
    }
    o.close();
}

fn out_time(t: event::Timestamp, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    out.push(b'"');
    tz.write(t, out);
    out.push(b'"');
}

/// A flow with ulogd2's NFCT keys (NFCT → IP2STR → JSON).
pub fn flow(f: &event::FlowEvent, opts: &SchemaOptions, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let mut o = Flat::open(out, "timestamp");
    out_time(f.time, tz, o.out());
    o.str(k!("dvc"), &opts.device);
    let (orig, reply) = (&f.ct.orig, &f.ct.reply);
    o.num(k!("orig.ip.protocol"), orig.protocol);
    if let (Some(s), Some(d)) = (orig.sport, orig.dport) {
        o.num(k!("orig.l4.sport"), s).num(k!("orig.l4.dport"), d);
    }
    // ulogd2 writes the counters (0 without accounting) and the mark (0) on every flow.
    let c = f.ct.counters_orig.unwrap_or_default();
    o.num(k!("orig.raw.pktlen"), c.bytes)
        .num(k!("orig.raw.pktcount"), c.packets);
    o.num(k!("reply.ip.protocol"), reply.protocol);
    if let (Some(s), Some(d)) = (reply.sport, reply.dport) {
        o.num(k!("reply.l4.sport"), s).num(k!("reply.l4.dport"), d);
    }
    let c = f.ct.counters_reply.unwrap_or_default();
    o.num(k!("reply.raw.pktlen"), c.bytes)
        .num(k!("reply.raw.pktcount"), c.packets);
    if let (Some(t), Some(c)) = (orig.icmp_type, orig.icmp_code) {
        o.num(k!("icmp.code"), c).num(k!("icmp.type"), t);
    }
    o.num(k!("ct.mark"), f.ct.mark.unwrap_or(0));
    if let Some(id) = f.ct.id {
        o.num(k!("ct.id"), id);
    }
    o.num(
        k!("ct.event"),
        match f.kind {
            event::FlowKind::New => 1u8,
            event::FlowKind::Update => 2,
            event::FlowKind::Destroy => 4,
        },
    );
    for (sec, usec, ns) in [
        (k!("flow.start.sec"), k!("flow.start.usec"), f.ct.start_ns),
        (k!("flow.end.sec"), k!("flow.end.usec"), f.ct.stop_ns),
    ] {
        if let Some(ns) = ns.filter(|&n| n != 0) {
            o.num(sec, ns / 1_000_000_000)
                .num(usec, ns % 1_000_000_000 / 1000);
        }
    }
    o.num(k!("oob.family"), f.family);
    // Always 0 in ulogd2's NFCT (never filled in); kept for the same shape.
    o.num(k!("oob.protocol"), 0u8);
    let ip = |o: &mut Flat, tok: &'static str, a: Option<std::net::IpAddr>| {
        if let Some(a) = a {
            o.raw(tok, |out| super::ip_string(a, out));
        }
    };
    ip(&mut o, k!("src_ip"), orig.src);
    ip(&mut o, k!("dest_ip"), orig.dst);
    ip(&mut o, k!("reply.ip.saddr.str"), reply.src);
    ip(&mut o, k!("reply.ip.daddr.str"), reply.dst);
    o.close();
}

/// An accounting object with ulogd2's NFACCT keys (NFACCT → JSON, `timestamp=1`).
pub fn counter(
    c: &event::CounterEvent,
    opts: &SchemaOptions,
    tz: &mut LocalOffset,
    out: &mut Vec<u8>,
) {
    let mut o = Flat::open(out, "timestamp");
    out_time(c.time, tz, o.out());
    o.str(k!("dvc"), &opts.device)
        .str(k!("sum.name"), &c.name)
        .num(k!("sum.pkts"), c.packets)
        .num(k!("sum.bytes"), c.bytes)
        .num(k!("oob.time.sec"), c.time.secs)
        .num(k!("oob.time.usec"), c.time.micros);
    o.close();
}

/// A guard's decision in ulogd's flat style (ulogd2 has none: the keys are nflogd's).
pub fn decision(
    d: &event::Decision,
    opts: &SchemaOptions,
    tz: &mut LocalOffset,
    out: &mut Vec<u8>,
) {
    let mut o = Flat::open(out, "timestamp");
    out_time(d.time, tz, o.out());
    o.str(k!("dvc"), &opts.device)
        .str(k!("guard.name"), &d.guard)
        .str(k!("guard.action"), d.verdict.as_str())
        .str(k!("src_ip"), &d.address.to_string())
        .str(k!("guard.prefix"), &d.prefix.to_string())
        .str(k!("guard.detector"), &d.detector)
        .num(k!("guard.evidence"), d.evidence)
        .num(k!("guard.offense"), d.offense)
        .num(k!("guard.duration"), d.duration_secs)
        .str(k!("guard.reason"), &d.reason);
    o.close();
}

/// A program's log line, should a sink be given one.
pub fn line(l: &event::LogLine, opts: &SchemaOptions, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let mut o = Flat::open(out, "timestamp");
    out_time(l.time, tz, o.out());
    o.str(k!("dvc"), &opts.device);
    if let Some(p) = &l.program {
        o.str(k!("program"), p);
    }
    o.str(k!("message"), &l.message);
    o.close();
}
