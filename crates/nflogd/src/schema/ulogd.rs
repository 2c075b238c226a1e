//! `ulogd`: the keys, order and value formats of ulogd2's JSON output for the stack
//! NFLOG → BASE → IFINDEX → IP2STR → HWHDR → JSON, so existing Logstash/Kibana setups keep
//! working. Where ulogd2 is wrong (docs/ulogd-schema.md) the correct value is written.

use super::json::Obj;
use super::{ip_string, mac_colon, LocalOffset, SchemaOptions};
use event::{PacketEvent, ARPHRD_ETHER};
use packet::{proto, Network, Transport};
use std::io::Write;

fn timestamp(p: &PacketEvent, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let off = tz.at(p.time);
    out.push(b'"');
    p.time.write_iso(off, out);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    let _ = write!(out, "{sign}{:02}{:02}\"", a / 3600, a % 3600 / 60);
}

pub fn packet(p: &PacketEvent, opts: &SchemaOptions, tz: &mut LocalOffset, out: &mut Vec<u8>) {
    let mut o = Obj::open(out, true);
    o.raw("timestamp", |out| timestamp(p, tz, out));
    o.str("dvc", &opts.device);
    // NFLOG input keys.
    o.num("raw.pktlen", p.payload_len).num("raw.pktcount", 1u32);
    o.str("oob.prefix", &p.prefix);
    o.num("oob.time.sec", p.time.secs)
        .num("oob.time.usec", p.time.micros);
    o.num("oob.mark", p.mark);
    if let Some(i) = p.indev.as_ref().and_then(|d| d.index).filter(|&i| i > 0) {
        o.num("oob.ifindex_in", i);
    }
    if let Some(i) = p.outdev.as_ref().and_then(|d| d.index).filter(|&i| i > 0) {
        o.num("oob.ifindex_out", i);
    }
    if let Some(h) = p.hook {
        o.num("oob.hook", h);
    }
    let link = p.link.as_ref().filter(|l| !l.header.is_empty());
    if let Some(l) = link {
        o.num("raw.mac_len", l.header.len());
    }
    if let Some(s) = p.seq {
        o.num("oob.seq.local", s);
    }
    if let Some(s) = p.seq_global {
        o.num("oob.seq.global", s);
    }
    o.num("oob.family", p.family)
        .num("oob.protocol", p.hw_protocol);
    if let (Some(u), Some(g)) = (p.uid, p.gid) {
        o.num("oob.uid", u).num("oob.gid", g);
    }
    if opts.boolean_label {
        let allowed = match p.action {
            Some(a) => a == event::Action::Accept,
            None => p.label != 0,
        };
        o.str("action", if allowed { "allowed" } else { "blocked" });
    } else {
        o.num("raw.label", p.label);
    }
    if let Some(l) = link {
        if let Some(t) = l.hwtype {
            o.num("raw.type", t);
        }
    }
    if let Some(a) = p.link.as_ref().and_then(|l| l.hwaddr.as_ref()) {
        o.num("raw.mac.addrlen", a.len());
    }
    // BASE.
    base(p, &mut o);
    // IFINDEX: always both, "" when unknown.
    o.str("oob.in", p.indev.as_ref().map(|d| &*d.name).unwrap_or(""));
    o.str("oob.out", p.outdev.as_ref().map(|d| &*d.name).unwrap_or(""));
    // IP2STR.
    match &p.headers.network {
        Network::Ipv4(ip) => {
            o.raw("src_ip", |out| ip_string(ip.src.into(), out))
                .raw("dest_ip", |out| ip_string(ip.dst.into(), out));
        }
        Network::Ipv6(ip) => {
            o.raw("src_ip", |out| ip_string(ip.src.into(), out))
                .raw("dest_ip", |out| ip_string(ip.dst.into(), out));
        }
        Network::Arp(a) => {
            if let Some(x) = &a.addrs {
                o.str("arp.saddr.str", &x.sender_ip.to_string())
                    .str("arp.daddr.str", &x.target_ip.to_string());
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
                o.raw("mac.saddr.str", |out| json_mac(&e.src, out));
                o.raw("mac.daddr.str", |out| json_mac(&e.dst, out));
            }
            (None, Some(a)) => {
                o.raw("mac.saddr.str", |out| json_mac(a, out));
            }
            _ => {}
        }
        if !l.header.is_empty() {
            o.raw("mac.str", |out| json_mac(&l.header, out));
        }
    }
    o.close();
}

fn json_mac(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    mac_colon(b, out);
    out.push(b'"');
}

fn transport(t: &Transport, protocol: u8, o: &mut Obj) {
    match t {
        Transport::Tcp(t) => {
            use packet::tcp::flag::*;
            o.num("src_port", t.sport).num("dest_port", t.dport);
            o.num("tcp.seq", t.seq)
                .num("tcp.ackseq", t.ack)
                .num("tcp.window", t.window);
            o.num("tcp.offset", t.data_offset)
                .num("tcp.reserved", ((t.flags >> 8) & 0xf) as u8);
            o.num("tcp.urg", t.has(URG) as u8);
            if t.has(URG) {
                o.num("tcp.urgp", t.urgent);
            }
            o.num("tcp.ack", t.has(ACK) as u8)
                .num("tcp.psh", t.has(PSH) as u8)
                .num("tcp.rst", t.has(RST) as u8);
            o.num("tcp.syn", t.has(SYN) as u8)
                .num("tcp.fin", t.has(FIN) as u8);
            // The raw bit fields, as ulogd2 prints them: res1 = reserved+AE (4 bits), res2 = CWR|ECE.
            o.num("tcp.res1", ((t.flags >> 8) & 0xf) as u8)
                .num("tcp.res2", ((t.flags >> 6) & 3) as u8);
            o.num("tcp.csum", t.checksum);
        }
        Transport::Udp(u) => {
            o.num("src_port", u.sport)
                .num("dest_port", u.dport)
                .num("udp.len", u.length)
                .num("udp.csum", u.checksum);
        }
        Transport::Icmp(m) => {
            o.num("icmp.type", m.icmp_type).num("icmp.code", m.code);
            if m.is_echo() {
                o.num("icmp.echoid", m.echo_id())
                    .num("icmp.echoseq", m.echo_seq());
            }
            if m.icmp_type == packet::icmp::DEST_UNREACH && m.code == packet::icmp::FRAG_NEEDED {
                o.num("icmp.fragmtu", m.mtu());
            }
            o.num("icmp.csum", m.checksum);
        }
        Transport::Icmpv6(m) => {
            o.num("icmpv6.type", m.icmp_type).num("icmpv6.code", m.code);
            if m.is_echo() {
                o.num("icmpv6.echoid", m.echo_id())
                    .num("icmpv6.echoseq", m.echo_seq());
            }
            o.num("icmpv6.csum", m.checksum);
        }
        Transport::Esp(e) => {
            o.num("ahesp.spi", e.spi);
        }
        Transport::Ah(a) => {
            o.num("ahesp.spi", a.spi);
        }
        Transport::Sctp(s) if protocol == proto::SCTP => {
            o.num("src_port", s.sport)
                .num("dest_port", s.dport)
                .num("sctp.csum", s.checksum);
        }
        _ => {}
    }
}

fn base(p: &PacketEvent, o: &mut Obj) {
    match &p.headers.network {
        Network::Ipv4(ip) => {
            o.num("ip.protocol", ip.protocol)
                .num("ip.tos", ip.tos)
                .num("ip.ttl", ip.ttl);
            o.num("ip.totlen", ip.total_len)
                .num("ip.ihl", ip.ihl)
                .num("ip.csum", ip.checksum);
            o.num("ip.id", ip.id).num("ip.fragoff", ip.frag_field);
            transport(&ip.transport, ip.protocol, o);
        }
        Network::Ipv6(ip) => {
            let frag = ip.fragment();
            let later = ip.is_later_fragment();
            if !later && !ip.walk_ended() {
                o.num("ip.protocol", ip.protocol);
            }
            o.num("ip6.payloadlen", ip.payload_len)
                .num("ip6.priority", ip.traffic_class);
            o.num("ip6.flowlabel", ip.flow_label)
                .num("ip6.hoplimit", ip.hop_limit)
                .num("ip6.nexthdr", ip.protocol);
            if let Some((off, _, id)) = frag {
                o.num("ip6.fragoff", off).num("ip6.fragid", id);
            }
            transport(&ip.transport, ip.protocol, o);
        }
        Network::Arp(a) if a.addrs.is_some() => {
            o.num("arp.hwtype", a.htype)
                .num("arp.protocoltype", a.ptype)
                .num("arp.operation", a.opcode);
        }
        _ => {}
    }
}
