//! `ecs`: Elastic Common Schema 8.x, nested objects. Fields without an ECS home go where
//! Elastic's own iptables integration puts them (`iptables.*`); netfilter specifics go under
//! `netfilter.*`.

use super::json::Obj;
use super::SchemaOptions;
use event::{Action, PacketEvent, RawLine, ARPHRD_ETHER};
use packet::{proto, Network, Transport};
use std::io::Write;
use std::net::IpAddr;

/// ECS writes MACs as `AA-BB-CC-DD-EE-FF` (a JSON string, quotes included).
fn ecs_mac(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
    out.push(b'"');
}

struct Endpoints {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    ports: Option<(u16, u16)>,
}

fn endpoints(p: &PacketEvent) -> Endpoints {
    match &p.headers.network {
        Network::Ipv4(ip) => Endpoints {
            src: Some(ip.src.into()),
            dst: Some(ip.dst.into()),
            ports: ip.transport.ports(),
        },
        Network::Ipv6(ip) => Endpoints {
            src: Some(ip.src.into()),
            dst: Some(ip.dst.into()),
            ports: ip.transport.ports(),
        },
        Network::Arp(a) => Endpoints {
            src: a.addrs.map(|x| x.sender_ip.into()),
            dst: a.addrs.map(|x| x.target_ip.into()),
            ports: None,
        },
        _ => Endpoints {
            src: None,
            dst: None,
            ports: None,
        },
    }
}

pub fn packet(p: &PacketEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let ep = endpoints(p);
    let eth = p
        .link
        .as_ref()
        .filter(|l| l.hwtype == Some(ARPHRD_ETHER))
        .and_then(|l| packet::ethernet::parse(&l.header));
    let hook = p.hook.map(|h| event::hook_name(p.family, h));
    let mut o = Obj::open(out, false);
    o.raw("@timestamp", |out| {
        out.push(b'"');
        p.time.write_rfc3339_utc(out);
        out.push(b'"');
    });
    o.obj("event", |e| {
        e.str("kind", "event").strs("category", ["network"]);
        let verdict = match p.action {
            Some(Action::Accept) => Some("allowed"),
            Some(Action::Drop | Action::Reject) => Some("denied"),
            None => None,
        };
        match verdict {
            Some(v) => e.strs("type", ["connection", v]),
            None => e.strs("type", ["connection"]),
        };
        if let Some(a) = p.action {
            e.str("action", a.as_str());
        }
        e.str(
            "outcome",
            match p.action {
                Some(Action::Accept) => "success",
                Some(_) => "failure",
                None => "unknown",
            },
        );
        e.str("module", "netfilter")
            .str("dataset", "netfilter.packet");
    });
    o.obj("observer", |ob| {
        firewall_observer(ob, p.host.as_deref().unwrap_or(&opts.hostname));
        for (key, dev) in [("ingress", &p.indev), ("egress", &p.outdev)] {
            if let Some(d) = dev.as_ref().filter(|d| !d.name.is_empty()) {
                ob.obj(key, |x| {
                    x.obj("interface", |i| {
                        i.str("name", &d.name);
                        if let Some(ix) = d.index {
                            i.num_str("id", ix);
                        }
                    });
                });
            }
        }
    });
    let rule = p.prefix.trim();
    if !rule.is_empty() {
        o.obj("rule", |r| {
            r.str("name", rule);
        });
    }
    o.obj("network", |n| {
        match &p.headers.network {
            Network::Ipv4(_) => {
                n.str("type", "ipv4");
            }
            Network::Ipv6(_) => {
                n.str("type", "ipv6");
            }
            Network::Arp(_) => {
                n.str("type", "arp");
            }
            _ => {}
        }
        if let Some(pr) = p.headers.protocol() {
            if let Some(name) = proto::name(pr) {
                n.str("transport", name);
            }
            n.num_str("iana_number", pr);
        }
        let bytes = match &p.headers.network {
            Network::Ipv4(ip) if ip.total_len != 0 => ip.total_len as u32,
            Network::Ipv6(ip) => ip.payload_len as u32 + 40,
            _ => p.payload_len,
        };
        n.num("bytes", bytes).num("packets", 1u8);
        match hook {
            Some("input" | "prerouting" | "ingress") => {
                n.str("direction", "ingress");
            }
            Some("output" | "postrouting" | "egress") => {
                n.str("direction", "egress");
            }
            _ => {}
        }
    });
    for (key, ip, port, mac) in [
        ("source", ep.src, ep.ports.map(|p| p.0), eth.map(|e| e.src)),
        (
            "destination",
            ep.dst,
            ep.ports.map(|p| p.1),
            eth.map(|e| e.dst),
        ),
    ] {
        if ip.is_none() && mac.is_none() {
            continue;
        }
        o.obj(key, |s| {
            if let Some(ip) = ip {
                s.raw("ip", |out| super::ip_string(ip, out));
            }
            if let Some(port) = port {
                s.num("port", port);
            }
            if let Some(m) = mac {
                s.raw("mac", |out| ecs_mac(&m, out));
            }
        });
    }
    if let (Some(s), Some(d)) = (ep.src, ep.dst) {
        o.obj("related", |r| {
            r.raw("ip", |out| {
                out.push(b'[');
                super::ip_string(s, out);
                if s != d {
                    out.push(b',');
                    super::ip_string(d, out);
                }
                out.push(b']');
            });
        });
    }
    if let Some(u) = p.uid {
        o.obj("user", |x| {
            x.num_str("id", u);
        });
    }
    if let Some(g) = p.gid {
        o.obj("group", |x| {
            x.num_str("id", g);
        });
    }
    if let Some(l) = p.level {
        o.obj("log", |x| {
            x.obj("syslog", |s| {
                s.obj("severity", |v| {
                    v.num("code", l);
                });
            });
        });
    }
    o.obj("iptables", |t| iptables(p, t));
    o.obj("netfilter", |nf| {
        nf.str("prefix", &p.prefix);
        prefix_kind(&p.prefix, nf);
        if let Some(h) = hook {
            nf.str("hook", h);
        }
        nf.str(
            "family",
            match p.family {
                event::family::IPV4 => "ipv4",
                event::family::IPV6 => "ipv6",
                event::family::ARP => "arp",
                event::family::BRIDGE => "bridge",
                event::family::NETDEV => "netdev",
                _ => "other",
            },
        );
        if let Some(g) = p.group {
            nf.num("group", g);
        }
        if p.mark != 0 {
            nf.num("mark", p.mark);
        }
        if let Some(s) = p.seq {
            nf.num("seq", s);
        }
        for (key, dev) in [("physin", &p.physindev), ("physout", &p.physoutdev)] {
            if let Some(d) = dev.as_ref().filter(|d| !d.name.is_empty()) {
                nf.str(key, &d.name);
            }
        }
        if p.headers.truncated {
            nf.bool("truncated", true);
        }
        if let Some(ct) = &p.ct {
            nf.obj("ct", |c| {
                if let Some(id) = ct.id {
                    c.num("id", id);
                }
                if let Some(s) = ct.status {
                    c.num("status", s);
                }
                if let Some(m) = ct.mark {
                    c.num("mark", m);
                }
                if let Some(i) = p.ct_info {
                    c.str("info", nfnetlink::ctnetlink::ctinfo_name(i));
                }
                for (k, t) in [("orig", &ct.orig), ("reply", &ct.reply)] {
                    c.obj(k, |x| {
                        if let Some(a) = t.src {
                            x.str("src", &a.to_string());
                        }
                        if let Some(a) = t.dst {
                            x.str("dst", &a.to_string());
                        }
                        if let Some(pt) = t.sport {
                            x.num("sport", pt);
                        }
                        if let Some(pt) = t.dport {
                            x.num("dport", pt);
                        }
                    });
                }
            });
        }
    });
    o.close();
}

fn iptables(p: &PacketEvent, t: &mut Obj) {
    t.num("ether_type", p.hw_protocol);
    if let Some(d) = &p.indev {
        t.str("input_device", &d.name);
    }
    if let Some(d) = &p.outdev {
        t.str("output_device", &d.name);
    }
    let tr = match &p.headers.network {
        Network::Ipv4(ip) => {
            t.num("length", ip.total_len)
                .num("tos", ip.tos & 0x1e)
                .num("precedence_bits", ip.tos & 0xe0);
            t.num("ttl", ip.ttl).num("id", ip.id);
            let mut flags = Vec::new();
            if ip.reserved_flag() {
                flags.push("CE");
            }
            if ip.dont_fragment() {
                flags.push("DF");
            }
            if ip.more_fragments() {
                flags.push("MF");
            }
            if !flags.is_empty() {
                t.strs("fragment_flags", flags);
            }
            t.num("fragment_offset", ip.frag_offset());
            if !ip.options.is_empty() {
                t.raw("ip_options", |out| hex_str(&ip.options, out));
            }
            &ip.transport
        }
        Network::Ipv6(ip) => {
            t.num("length", ip.payload_len as u32 + 40)
                .num("tos", ip.traffic_class)
                .num("ttl", ip.hop_limit);
            t.num("flow_label", ip.flow_label);
            for e in &ip.ext {
                if let packet::ipv6::ExtHeader::Ah { spi: Some(spi), .. } = e {
                    t.num("ah_spi", *spi);
                }
            }
            if let Some((off, more, id)) = ip.fragment() {
                t.num("fragment_offset", off).num("fragment_id", id);
                if more {
                    t.strs("fragment_flags", ["MF"]);
                }
            }
            &ip.transport
        }
        _ => return,
    };
    match tr {
        Transport::Tcp(c) => {
            t.obj("tcp", |x| {
                use packet::tcp::flag::*;
                let names = [
                    (AE, "AE"),
                    (CWR, "CWR"),
                    (ECE, "ECE"),
                    (URG, "URG"),
                    (ACK, "ACK"),
                    (PSH, "PSH"),
                    (RST, "RST"),
                    (SYN, "SYN"),
                    (FIN, "FIN"),
                ];
                x.strs(
                    "flags",
                    names.iter().filter(|(b, _)| c.has(*b)).map(|(_, n)| *n),
                );
                // A LOG line without SEQ=/ACK= does not say them.
                if p.log_flags
                    .is_none_or(|f| f & logline::LogFlags::TCPSEQ != 0)
                {
                    x.num("seq", c.seq).num("ack", c.ack);
                }
                x.num("window", c.window)
                    .num("reserved_bits", (c.flags & 0x0e00) >> 6);
                if c.has(URG) {
                    x.num("urgent_pointer", c.urgent);
                }
                if !c.options.is_empty() {
                    x.raw("options", |out| hex_str(&c.options, out));
                    for opt in c.decoded_options() {
                        use packet::tcp::TcpOption;
                        match opt {
                            TcpOption::Mss(m) => {
                                x.num("mss", m);
                            }
                            TcpOption::WindowScale(w) => {
                                x.num("window_scale", w);
                            }
                            TcpOption::SackPermitted => {
                                x.bool("sack_permitted", true);
                            }
                            TcpOption::Timestamp { value, echo } => {
                                x.num("timestamp", value).num("timestamp_echo", echo);
                            }
                            _ => {}
                        }
                    }
                }
            });
        }
        Transport::Udp(u) => {
            t.obj("udp", |x| {
                x.num("length", u.length);
            });
        }
        Transport::Icmp(m) => {
            t.obj("icmp", |x| {
                x.num("type", m.icmp_type).num("code", m.code);
                if m.is_echo() {
                    x.num("id", m.echo_id()).num("seq", m.echo_seq());
                }
                match m.icmp_type {
                    packet::icmp::PARAMETER_PROBLEM => {
                        x.num("parameter", m.pointer());
                    }
                    packet::icmp::REDIRECT => {
                        x.str("redirect", &m.gateway().to_string());
                    }
                    packet::icmp::DEST_UNREACH if m.code == packet::icmp::FRAG_NEEDED => {
                        x.num("mtu", m.mtu());
                    }
                    _ => {}
                }
            });
        }
        Transport::Icmpv6(m) => {
            t.obj("icmp", |x| {
                x.num("type", m.icmp_type).num("code", m.code);
                if m.is_echo() {
                    x.num("id", m.echo_id()).num("seq", m.echo_seq());
                }
                if m.icmp_type == packet::icmpv6::PACKET_TOO_BIG {
                    x.num("mtu", m.word());
                }
                if m.icmp_type == packet::icmpv6::PARAMETER_PROBLEM {
                    x.num("parameter", m.word());
                }
            });
        }
        Transport::Esp(e) => {
            t.num("spi", e.spi);
        }
        Transport::Ah(a) => {
            t.num("spi", a.spi);
        }
        Transport::Sctp(s) => {
            t.obj("sctp", |x| {
                x.num("verification_tag", s.verification_tag);
            });
        }
        Transport::Gre(g) => {
            t.obj("gre", |x| {
                x.num("version", g.version()).num("protocol", g.protocol);
                if let Some(k) = g.key {
                    x.num("key", k);
                }
            });
        }
        Transport::Incomplete { available } => {
            t.num("incomplete_bytes", *available);
        }
        _ => {}
    }
}

fn hex_str(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for x in b {
        let _ = write!(out, "{x:02X}");
    }
    out.push(b'"');
}

/// A line that did not parse: the original text, the reason, and where it was.
pub fn raw(r: &RawLine, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out, false);
    o.raw("@timestamp", |out| {
        out.push(b'"');
        r.time.write_rfc3339_utc(out);
        out.push(b'"');
    });
    o.obj("event", |e| {
        e.str("kind", "pipeline_error")
            .str("original", &r.line)
            .str("module", "netfilter")
            .str("dataset", "netfilter.unparsed");
    });
    o.obj("error", |e| {
        e.str("message", &r.reason).str("type", "parse");
    });
    o.obj("observer", |ob| {
        ob.str("hostname", r.host.as_deref().unwrap_or(&opts.hostname));
    });
    o.obj("log", |l| {
        l.str("origin", &r.origin);
        if let Some(p) = r.position {
            l.num("offset", p);
        }
    });
    o.close();
}

/// Prefixes the kernel writes itself: legacy iptables TRACE (`TRACE: table:chain:type:rulenum `)
/// and conntrack's invalid-packet logging (`nf_ct_proto_N: reason `).
fn prefix_kind(prefix: &str, nf: &mut Obj) {
    if let Some(rest) = prefix.strip_prefix("TRACE: ") {
        let mut f = rest.trim_end().split(':');
        if let (Some(table), Some(chain), Some(kind), Some(rule)) =
            (f.next(), f.next(), f.next(), f.next())
        {
            nf.obj("trace", |t| {
                t.str("table", table).str("chain", chain).str("type", kind);
                if let Ok(n) = rule.parse::<u32>() {
                    t.num("rule", n);
                }
            });
        }
    } else if let Some(rest) = prefix.strip_prefix("nf_ct_proto_") {
        if let Some((num, reason)) = rest.split_once(": ") {
            nf.obj("conntrack_invalid", |c| {
                if let Ok(n) = num.parse::<u8>() {
                    c.num("protocol", n);
                }
                c.str("reason", reason.trim_end());
            });
        }
    }
}

/// A flow in ECS: the connection from its original direction, NAT as `source.nat` /
/// `destination.nat`, per-direction counters, and start/end/duration when the kernel stamps them.
pub fn flow(f: &event::FlowEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let (orig, reply) = (&f.ct.orig, &f.ct.reply);
    let mut o = Obj::open(out, false);
    o.raw("@timestamp", |out| {
        out.push(b'"');
        f.time.write_rfc3339_utc(out);
        out.push(b'"');
    });
    let ns_stamp = |ns: u64, out: &mut Vec<u8>| {
        out.push(b'"');
        event::Timestamp {
            secs: (ns / 1_000_000_000) as i64,
            micros: (ns % 1_000_000_000 / 1000) as u32,
        }
        .write_rfc3339_utc(out);
        out.push(b'"');
    };
    o.obj("event", |e| {
        e.str("kind", "event").strs("category", ["network"]);
        e.strs(
            "type",
            match f.kind {
                event::FlowKind::New => ["connection", "start"],
                event::FlowKind::Update => ["connection", "change"],
                event::FlowKind::Destroy => ["connection", "end"],
            },
        );
        e.str(
            "action",
            match f.kind {
                event::FlowKind::New => "flow-new",
                event::FlowKind::Update => "flow-update",
                event::FlowKind::Destroy => "flow-destroy",
            },
        );
        e.str("module", "netfilter")
            .str("dataset", "netfilter.flow");
        if let Some(s) = f.ct.start_ns.filter(|&n| n != 0) {
            e.raw("start", |out| ns_stamp(s, out));
            if let Some(t) = f.ct.stop_ns.filter(|&n| n != 0) {
                e.raw("end", |out| ns_stamp(t, out));
                e.num("duration", t.saturating_sub(s));
            }
        }
    });
    o.obj("observer", |ob| firewall_observer(ob, &opts.hostname));
    o.obj("network", |n| {
        n.str(
            "type",
            if f.family == event::family::IPV6 {
                "ipv6"
            } else {
                "ipv4"
            },
        );
        if let Some(name) = proto::name(orig.protocol) {
            n.str("transport", name);
        }
        n.num_str("iana_number", orig.protocol);
        if let (Some(a), Some(b)) = (f.ct.counters_orig, f.ct.counters_reply) {
            n.num("packets", a.packets + b.packets)
                .num("bytes", a.bytes + b.bytes);
        }
    });
    let snat = f.snat();
    let dnat = f.dnat();
    for (key, ip, port, counters, nat) in [
        ("source", orig.src, orig.sport, f.ct.counters_orig, snat),
        (
            "destination",
            orig.dst,
            orig.dport,
            f.ct.counters_reply,
            dnat,
        ),
    ] {
        o.obj(key, |s| {
            if let Some(ip) = ip {
                s.raw("ip", |out| super::ip_string(ip, out));
            }
            if let Some(p) = port {
                s.num("port", p);
            }
            if let Some(c) = counters {
                s.num("packets", c.packets).num("bytes", c.bytes);
            }
            if let Some((nip, nport)) = nat {
                s.obj("nat", |n| {
                    n.raw("ip", |out| super::ip_string(nip, out));
                    if let Some(p) = nport {
                        n.num("port", p);
                    }
                });
            }
        });
    }
    o.obj("netfilter", |nf| {
        nf.obj("ct", |c| {
            c.str("event", f.kind.as_str());
            if f.recovered {
                c.bool("recovered", true);
            }
            if let Some(id) = f.ct.id {
                c.num("id", id);
            }
            if let Some(m) = f.ct.mark {
                c.num("mark", m);
            }
            if let Some(z) = f.ct.zone {
                c.num("zone", z);
            }
            if let Some(s) = f.ct.status {
                c.num("status", s);
            }
            if let Some(t) = f.ct.tcp_state {
                c.str("tcp_state", nfnetlink::ctnetlink::tcp_state_name(t));
            }
            if let Some(t) = f.ct.timeout {
                c.num("timeout", t);
            }
            // Connlabels as the numbers of the bits set (names live in connlabel.conf).
            if let Some(l) = f.ct.labels.filter(|&l| l != 0) {
                c.raw("labels", |out| {
                    out.push(b'[');
                    let mut first = true;
                    for bit in (0..128).filter(|b| l >> b & 1 == 1) {
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        out.extend_from_slice(itoa::Buffer::new().format(bit).as_bytes());
                    }
                    out.push(b']');
                });
            }
            if let (Some(t), Some(co)) = (orig.icmp_type, orig.icmp_code) {
                c.num("icmp_type", t).num("icmp_code", co);
            }
            if let Some((src, dst)) = orig.gre_keys {
                c.raw("gre_keys", |out| {
                    out.push(b'[');
                    out.extend_from_slice(itoa::Buffer::new().format(src).as_bytes());
                    out.push(b',');
                    out.extend_from_slice(itoa::Buffer::new().format(dst).as_bytes());
                    out.push(b']');
                });
            }
            if let Some(r) = reply.src {
                c.raw("reply_src", |out| super::ip_string(r, out));
            }
            if let Some(r) = reply.dst {
                c.raw("reply_dst", |out| super::ip_string(r, out));
            }
            if let Some(p) = reply.sport {
                c.num("reply_sport", p);
            }
            if let Some(p) = reply.dport {
                c.num("reply_dport", p);
            }
        });
    });
    o.close();
}

/// An accounting object in ECS: a metric event with the counts since the previous poll (or the
/// totals, without zeroing) under `netfilter.nfacct` and `network`.
pub fn counter(c: &event::CounterEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out, false);
    o.raw("@timestamp", |out| {
        out.push(b'"');
        c.time.write_rfc3339_utc(out);
        out.push(b'"');
    });
    o.obj("event", |e| {
        e.str("kind", "metric")
            .strs("category", ["network"])
            .strs("type", ["info"])
            .str("module", "netfilter")
            .str("dataset", "netfilter.nfacct");
    });
    o.obj("observer", |ob| firewall_observer(ob, &opts.hostname));
    o.obj("network", |n| {
        n.num("packets", c.packets).num("bytes", c.bytes);
    });
    o.obj("netfilter", |nf| {
        nf.obj("nfacct", |a| {
            a.str("name", &c.name)
                .num("packets", c.packets)
                .num("bytes", c.bytes);
        });
    });
    o.close();
}

/// `observer.*`: this host, a Netfilter firewall, as nflogd reports it.
fn firewall_observer(ob: &mut Obj, hostname: &str) {
    ob.str("hostname", hostname)
        .str("type", "firewall")
        .str("vendor", "Netfilter")
        .str("product", "nflogd");
}
