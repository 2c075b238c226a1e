//! `ecs`: Elastic Common Schema 8.x, nested objects. Fields without an ECS home go where
//! Elastic's own iptables integration puts them (`iptables.*`); netfilter specifics go under
//! `netfilter.*`.

use super::json::Obj;
use super::SchemaOptions;
use crate::obj_key as k;
use event::{Action, PacketEvent, RawLine, ARPHRD_ETHER};
use packet::{proto, Network, Transport};
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
    let mut o = Obj::open(out);
    timestamp(&mut o, p.time);
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "event").strs(k!("category"), ["network"]);
        // A partial record keeps the line it was read from.
        if let Some(orig) = p.original.as_deref() {
            e.str(k!("original"), orig);
        }
        let verdict = match p.action {
            Some(Action::Accept) => Some("allowed"),
            Some(Action::Drop | Action::Reject) => Some("denied"),
            None => None,
        };
        match verdict {
            Some(v) => e.strs(k!("type"), ["connection", v]),
            None => e.strs(k!("type"), ["connection"]),
        };
        if let Some(a) = p.action {
            e.str(k!("action"), a.as_str());
        }
        e.str(
            k!("outcome"),
            match p.action {
                Some(Action::Accept) => "success",
                Some(_) => "failure",
                None => "unknown",
            },
        );
        e.lit(k!("module"), "netfilter").lit(
            k!("dataset"),
            if p.trace.is_some() {
                "netfilter.trace"
            } else {
                "netfilter.packet"
            },
        );
    });
    o.obj(k!("observer"), |ob| {
        firewall_observer(ob, p.host.as_deref().unwrap_or(&opts.hostname));
        for (key, dev) in [(k!("ingress"), &p.indev), (k!("egress"), &p.outdev)] {
            if let Some(d) = dev.as_ref().filter(|d| !d.name.is_empty()) {
                ob.obj(key, |x| {
                    x.obj(k!("interface"), |i| {
                        i.str(k!("name"), &d.name);
                        if let Some(ix) = d.index {
                            i.num_str(k!("id"), ix);
                        }
                    });
                });
            }
        }
    });
    let rule = p.prefix.trim();
    let deciding = p.trace.as_deref().and_then(event::Trace::deciding);
    if !rule.is_empty() {
        o.obj(k!("rule"), |r| {
            r.str(k!("name"), rule);
        });
    } else if let Some(step) = deciding {
        // A traced packet: the rule (or policy) that decided, as ECS names a rule's parts.
        o.obj(k!("rule"), |r| {
            r.str(k!("ruleset"), &step.table)
                .str(k!("name"), &step.chain);
            if let Some(h) = step.handle {
                r.num_str(k!("id"), h);
            }
            if let Some(text) = &step.rule {
                r.str(k!("description"), text);
            }
        });
    }
    o.obj(k!("network"), |n| {
        match &p.headers.network {
            Network::Ipv4(_) => {
                n.lit(k!("type"), "ipv4");
            }
            Network::Ipv6(_) => {
                n.lit(k!("type"), "ipv6");
            }
            Network::Arp(_) => {
                n.lit(k!("type"), "arp");
            }
            _ => {}
        }
        if let Some(pr) = p.headers.protocol() {
            if let Some(name) = proto::name(pr) {
                n.str(k!("transport"), name);
            }
            n.num_str(k!("iana_number"), pr);
        }
        community_id(n, p.key(), opts);
        let bytes = match &p.headers.network {
            Network::Ipv4(ip) if ip.total_len != 0 => ip.total_len as u32,
            Network::Ipv6(ip) => ip.payload_len as u32 + 40,
            _ => p.payload_len,
        };
        n.num(k!("bytes"), bytes).num(k!("packets"), 1u8);
        match hook {
            Some("input" | "prerouting" | "ingress") => {
                n.lit(k!("direction"), "ingress");
            }
            Some("output" | "postrouting" | "egress") => {
                n.lit(k!("direction"), "egress");
            }
            _ => {}
        }
        // ECS: the outer tag in `network.vlan`, the one inside it in `network.inner.vlan`.
        let tags = p.vlans();
        if let Some(v) = tags.first() {
            n.obj(k!("vlan"), |x| {
                x.num_str(k!("id"), v.id());
            });
        }
        if let Some(v) = tags.get(1) {
            n.obj(k!("inner"), |i| {
                i.obj(k!("vlan"), |x| {
                    x.num_str(k!("id"), v.id());
                });
            });
        }
    });
    let enrich = p.enrich.as_deref();
    for (key, ip, port, mac, extra) in [
        (
            k!("source"),
            ep.src,
            ep.ports.map(|p| p.0),
            eth.map(|e| e.src),
            enrich.map(|e| &e.source),
        ),
        (
            k!("destination"),
            ep.dst,
            ep.ports.map(|p| p.1),
            eth.map(|e| e.dst),
            enrich.map(|e| &e.destination),
        ),
    ] {
        if ip.is_none() && mac.is_none() {
            continue;
        }
        o.obj(key, |s| {
            if let Some(ip) = ip {
                s.raw(k!("ip"), |out| super::ip_string(ip, out));
            }
            if let Some(port) = port {
                s.num(k!("port"), port);
            }
            if let Some(m) = mac {
                s.raw(k!("mac"), |out| ecs_mac(&m, out));
            }
            endpoint(s, extra);
        });
    }
    if let (Some(s), Some(d)) = (ep.src, ep.dst) {
        o.obj(k!("related"), |r| {
            let ips = std::iter::once(s).chain((s != d).then_some(d));
            r.array(k!("ip"), ips, |out, ip| super::ip_string(ip, out));
        });
    }
    if let Some(u) = p.uid {
        o.obj(k!("user"), |x| {
            x.num_str(k!("id"), u);
        });
    }
    if let Some(g) = p.gid {
        o.obj(k!("group"), |x| {
            x.num_str(k!("id"), g);
        });
    }
    if let Some(l) = p.level {
        o.obj(k!("log"), |x| {
            x.obj(k!("syslog"), |s| {
                s.obj(k!("severity"), |v| {
                    v.num(k!("code"), l);
                });
            });
        });
    }
    o.obj(k!("iptables"), |t| iptables(p, t));
    o.obj(k!("netfilter"), |nf| {
        nf.str(k!("prefix"), &p.prefix);
        prefix_kind(&p.prefix, nf);
        if let Some(h) = hook {
            nf.str(k!("hook"), h);
        }
        nf.str(
            k!("family"),
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
            nf.num(k!("group"), g);
        }
        if p.mark != 0 {
            nf.num(k!("mark"), p.mark);
        }
        if let Some(s) = p.seq {
            nf.num(k!("seq"), s);
        }
        for (key, dev) in [(k!("physin"), &p.physindev), (k!("physout"), &p.physoutdev)] {
            if let Some(d) = dev.as_ref().filter(|d| !d.name.is_empty()) {
                nf.str(key, &d.name);
            }
        }
        if p.headers.truncated {
            nf.bool(k!("truncated"), true);
        }
        if let Some(t) = &p.trace {
            nf.obj(k!("trace"), |x| trace(t, x));
        }
        if let Some(ct) = &p.ct {
            nf.obj(k!("ct"), |c| {
                if let Some(id) = ct.id {
                    c.num(k!("id"), id);
                }
                if let Some(s) = ct.status {
                    c.num(k!("status"), s);
                }
                if let Some(m) = ct.mark {
                    c.num(k!("mark"), m);
                }
                if let Some(i) = p.ct_info {
                    c.str(k!("info"), nfnetlink::ctnetlink::ctinfo_name(i));
                }
                for (k, t) in [(k!("orig"), &ct.orig), (k!("reply"), &ct.reply)] {
                    c.obj(k, |x| {
                        if let Some(a) = t.src {
                            x.raw(k!("src"), |out| super::ip_string(a, out));
                        }
                        if let Some(a) = t.dst {
                            x.raw(k!("dst"), |out| super::ip_string(a, out));
                        }
                        if let Some(pt) = t.sport {
                            x.num(k!("sport"), pt);
                        }
                        if let Some(pt) = t.dport {
                            x.num(k!("dport"), pt);
                        }
                    });
                }
            });
        }
    });
    // Read from a line in no known layout: some fields are missing.
    if p.partial {
        o.strs(k!("tags"), ["partial"]);
    }
    o.close();
}

/// `netfilter.trace`: the kernel's trace id and the path, a step per object.
fn trace(t: &event::Trace, x: &mut Obj) {
    if let Some(n) = t.id {
        let mut id = [0u8; 8];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in id.iter_mut().enumerate() {
            *b = HEX[(n >> (28 - 4 * i) & 15) as usize];
        }
        x.str(k!("id"), std::str::from_utf8(&id).unwrap_or_default());
    }
    x.array(k!("path"), &t.path, |out, s| {
        let mut o = Obj::open(out);
        o.str(k!("family"), crate::trace::rules::family_name(s.family))
            .str(k!("table"), &s.table)
            .str(k!("chain"), &s.chain);
        if let Some(h) = s.handle {
            o.num(k!("handle"), h);
        }
        if let Some(r) = &s.rule {
            o.str(k!("rule"), r);
        }
        o.str(k!("verdict"), &s.verdict);
        o.close();
    });
}

fn iptables(p: &PacketEvent, t: &mut Obj) {
    t.num(k!("ether_type"), p.hw_protocol);
    if let Some(d) = &p.indev {
        t.str(k!("input_device"), &d.name);
    }
    if let Some(d) = &p.outdev {
        t.str(k!("output_device"), &d.name);
    }
    let tr = match &p.headers.network {
        Network::Ipv4(ip) => {
            t.num(k!("length"), ip.total_len)
                .num(k!("tos"), ip.tos & 0x1e)
                .num(k!("precedence_bits"), ip.tos & 0xe0);
            t.num(k!("ttl"), ip.ttl).num(k!("id"), ip.id);
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
                t.strs(k!("fragment_flags"), flags);
            }
            t.num(k!("fragment_offset"), ip.frag_offset());
            if !ip.options.is_empty() {
                t.raw(k!("ip_options"), |out| hex_str(&ip.options, out));
                ipv4_options(t, &ip.decoded_options());
            }
            &ip.transport
        }
        Network::Ipv6(ip) => {
            t.num(k!("length"), ip.payload_len as u32 + 40)
                .num(k!("tos"), ip.traffic_class)
                .num(k!("ttl"), ip.hop_limit);
            t.num(k!("flow_label"), ip.flow_label);
            for e in &ip.ext {
                if let packet::ipv6::ExtHeader::Ah { spi: Some(spi), .. } = e {
                    t.num(k!("ah_spi"), *spi);
                }
            }
            if let Some((off, more, id)) = ip.fragment() {
                t.num(k!("fragment_offset"), off).num(k!("fragment_id"), id);
                if more {
                    t.strs(k!("fragment_flags"), ["MF"]);
                }
            }
            &ip.transport
        }
        _ => return,
    };
    match tr {
        Transport::Tcp(c) => {
            t.obj(k!("tcp"), |x| {
                use packet::tcp::flag::URG;
                x.strs(k!("flags"), c.flag_names());
                // A LOG line without SEQ=/ACK= does not say them.
                if p.log_flags
                    .is_none_or(|f| f & logline::LogFlags::TCPSEQ != 0)
                {
                    x.num(k!("seq"), c.seq).num(k!("ack"), c.ack);
                }
                x.num(k!("window"), c.window)
                    .num(k!("reserved_bits"), (c.flags & 0x0e00) >> 6);
                if c.has(URG) {
                    x.num(k!("urgent_pointer"), c.urgent);
                }
                if !c.options.is_empty() {
                    x.raw(k!("options"), |out| hex_str(&c.options, out));
                    for opt in c.decoded_options() {
                        use packet::tcp::TcpOption;
                        match opt {
                            TcpOption::Mss(m) => {
                                x.num(k!("mss"), m);
                            }
                            TcpOption::WindowScale(w) => {
                                x.num(k!("window_scale"), w);
                            }
                            TcpOption::SackPermitted => {
                                x.bool(k!("sack_permitted"), true);
                            }
                            TcpOption::Timestamp { value, echo } => {
                                x.num(k!("timestamp"), value)
                                    .num(k!("timestamp_echo"), echo);
                            }
                            TcpOption::Sack(blocks) => {
                                x.array(k!("sack"), blocks, |out, (left, right)| {
                                    let mut b = Obj::open(out);
                                    b.num(k!("left"), left).num(k!("right"), right);
                                    b.close();
                                });
                            }
                            _ => {}
                        }
                    }
                }
            });
        }
        Transport::Udp(u) => {
            t.obj(k!("udp"), |x| {
                x.num(k!("length"), u.length);
            });
        }
        Transport::Icmp(m) => {
            t.obj(k!("icmp"), |x| {
                x.num(k!("type"), m.icmp_type).num(k!("code"), m.code);
                if m.is_echo() {
                    x.num(k!("id"), m.echo_id()).num(k!("seq"), m.echo_seq());
                }
                match m.icmp_type {
                    packet::icmp::PARAMETER_PROBLEM => {
                        x.num(k!("parameter"), m.pointer());
                    }
                    packet::icmp::REDIRECT => {
                        x.raw(k!("redirect"), |out| {
                            super::ip_string(m.gateway().into(), out)
                        });
                    }
                    packet::icmp::DEST_UNREACH if m.code == packet::icmp::FRAG_NEEDED => {
                        x.num(k!("mtu"), m.mtu());
                    }
                    _ => {}
                }
            });
        }
        Transport::Icmpv6(m) => {
            t.obj(k!("icmp"), |x| {
                x.num(k!("type"), m.icmp_type).num(k!("code"), m.code);
                if m.is_echo() {
                    x.num(k!("id"), m.echo_id()).num(k!("seq"), m.echo_seq());
                }
                if m.icmp_type == packet::icmpv6::PACKET_TOO_BIG {
                    x.num(k!("mtu"), m.word());
                }
                if m.icmp_type == packet::icmpv6::PARAMETER_PROBLEM {
                    x.num(k!("parameter"), m.word());
                }
            });
        }
        Transport::Esp(e) => {
            t.num(k!("spi"), e.spi);
        }
        Transport::Ah(a) => {
            t.num(k!("spi"), a.spi);
        }
        Transport::Sctp(s) => {
            t.obj(k!("sctp"), |x| {
                x.num(k!("verification_tag"), s.verification_tag);
            });
        }
        Transport::Gre(g) => {
            t.obj(k!("gre"), |x| {
                x.num(k!("version"), g.version())
                    .num(k!("protocol"), g.protocol);
                if let Some(k) = g.key {
                    x.num(k!("key"), k);
                }
            });
        }
        Transport::Incomplete { available } => {
            t.num(k!("incomplete_bytes"), *available);
        }
        _ => {}
    }
}

/// Decoded IPv4 options next to their hex: names, routes, timestamps, router alert.
fn ipv4_options(t: &mut Obj, opts: &[packet::ipv4_options::Ipv4Option]) {
    use packet::ipv4_options::Ipv4Option;
    let addrs = |t: &mut Obj, key, a: &[std::net::Ipv4Addr]| {
        t.array(key, a, |out, a| super::ip_string((*a).into(), out));
    };
    let names: Vec<_> = opts.iter().map(|o| o.name()).collect();
    t.strs(k!("ip_option_names"), names.iter().map(|n| &**n));
    for o in opts {
        match o {
            Ipv4Option::RecordRoute(r) => addrs(t, k!("ip_record_route"), r),
            Ipv4Option::SourceRoute {
                strict,
                route,
                passed,
            } => {
                let key = if *strict {
                    k!("ip_strict_source_route")
                } else {
                    k!("ip_loose_source_route")
                };
                addrs(t, key, route);
                t.num(k!("ip_source_route_passed"), *passed);
            }
            Ipv4Option::Timestamp { entries, overflow } => {
                t.nums(k!("ip_timestamps"), entries.iter().map(|e| e.1));
                let with_addr: Vec<_> = entries.iter().filter_map(|e| e.0).collect();
                if !with_addr.is_empty() {
                    addrs(t, k!("ip_timestamp_addresses"), &with_addr);
                }
                if *overflow > 0 {
                    t.num(k!("ip_timestamp_overflow"), *overflow);
                }
            }
            Ipv4Option::RouterAlert(v) => {
                t.num(k!("ip_router_alert"), *v);
            }
            Ipv4Option::StreamId(v) => {
                t.num(k!("ip_stream_id"), *v);
            }
            Ipv4Option::Other { .. } => {}
        }
    }
}

/// `@timestamp`, in UTC with microseconds.
fn timestamp(o: &mut Obj, t: event::Timestamp) {
    o.raw(k!("@timestamp"), |out| {
        out.push(b'"');
        t.write_rfc3339_utc(out);
        out.push(b'"');
    });
}

fn hex_str(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    for x in b {
        out.extend_from_slice(&[HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]);
    }
    out.push(b'"');
}

/// A line that did not parse: the original text, the reason, and where it was.
pub fn raw(r: &RawLine, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    timestamp(&mut o, r.time);
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "pipeline_error")
            .str(k!("original"), &r.line)
            .lit(k!("module"), "netfilter")
            .lit(k!("dataset"), "netfilter.unparsed");
    });
    o.obj(k!("error"), |e| {
        e.str(k!("message"), &r.reason).lit(k!("type"), "parse");
    });
    o.obj(k!("observer"), |ob| {
        ob.str(k!("hostname"), r.host.as_deref().unwrap_or(&opts.hostname));
    });
    // ECS has a field for a file's path (`log.file.path`); where the line came from otherwise
    // (stdin, kmsg, a syslog peer) and its line or sequence number are nflogd's own fields.
    if r.origin.starts_with('/') {
        o.obj(k!("log"), |l| {
            l.obj(k!("file"), |f| {
                f.str(k!("path"), &r.origin);
            });
        });
    }
    o.obj(k!("netfilter"), |n| {
        n.str(k!("origin"), &r.origin);
        if let Some(p) = r.position {
            n.num(k!("position"), p);
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
            nf.obj(k!("trace"), |t| {
                t.str(k!("table"), table)
                    .str(k!("chain"), chain)
                    .str(k!("type"), kind);
                if let Ok(n) = rule.parse::<u32>() {
                    t.num(k!("rule"), n);
                }
            });
        }
    } else if let Some(rest) = prefix.strip_prefix("nf_ct_proto_") {
        if let Some((num, reason)) = rest.split_once(": ") {
            nf.obj(k!("conntrack_invalid"), |c| {
                if let Ok(n) = num.parse::<u8>() {
                    c.num(k!("protocol"), n);
                }
                c.str(k!("reason"), reason.trim_end());
            });
        }
    }
}

/// A flow in ECS: the connection from its original direction, NAT as `source.nat` /
/// `destination.nat`, per-direction counters, and start/end/duration when the kernel stamps them.
pub fn flow(f: &event::FlowEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let (orig, reply) = (&f.ct.orig, &f.ct.reply);
    let mut o = Obj::open(out);
    timestamp(&mut o, f.time);
    let ns_stamp = |ns: u64, out: &mut Vec<u8>| {
        out.push(b'"');
        event::Timestamp {
            secs: (ns / 1_000_000_000) as i64,
            micros: (ns % 1_000_000_000 / 1000) as u32,
        }
        .write_rfc3339_utc(out);
        out.push(b'"');
    };
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "event").strs(k!("category"), ["network"]);
        e.strs(
            k!("type"),
            match f.kind {
                event::FlowKind::New => ["connection", "start"],
                event::FlowKind::Update => ["connection", "change"],
                event::FlowKind::Destroy => ["connection", "end"],
            },
        );
        e.str(
            k!("action"),
            match f.kind {
                event::FlowKind::New => "flow-new",
                event::FlowKind::Update => "flow-update",
                event::FlowKind::Destroy => "flow-destroy",
            },
        );
        e.lit(k!("module"), "netfilter")
            .lit(k!("dataset"), "netfilter.flow");
        if let Some(s) = f.ct.start_ns.filter(|&n| n != 0) {
            e.raw(k!("start"), |out| ns_stamp(s, out));
            if let Some(t) = f.ct.stop_ns.filter(|&n| n != 0) {
                e.raw(k!("end"), |out| ns_stamp(t, out));
                e.num(k!("duration"), t.saturating_sub(s));
            }
        }
    });
    o.obj(k!("observer"), |ob| firewall_observer(ob, &opts.hostname));
    o.obj(k!("network"), |n| {
        n.str(
            k!("type"),
            if f.family == event::family::IPV6 {
                "ipv6"
            } else {
                "ipv4"
            },
        );
        if let Some(name) = proto::name(orig.protocol) {
            n.str(k!("transport"), name);
        }
        n.num_str(k!("iana_number"), orig.protocol);
        community_id(n, f.key(), opts);
        if let (Some(a), Some(b)) = (f.ct.counters_orig, f.ct.counters_reply) {
            n.num(k!("packets"), a.packets + b.packets)
                .num(k!("bytes"), a.bytes + b.bytes);
        }
    });
    let snat = f.snat();
    let dnat = f.dnat();
    let enrich = f.enrich.as_deref();
    for (key, ip, port, counters, nat, extra) in [
        (
            k!("source"),
            orig.src,
            orig.sport,
            f.ct.counters_orig,
            snat,
            enrich.map(|e| &e.source),
        ),
        (
            k!("destination"),
            orig.dst,
            orig.dport,
            f.ct.counters_reply,
            dnat,
            enrich.map(|e| &e.destination),
        ),
    ] {
        o.obj(key, |s| {
            if let Some(ip) = ip {
                s.raw(k!("ip"), |out| super::ip_string(ip, out));
            }
            if let Some(p) = port {
                s.num(k!("port"), p);
            }
            if let Some(c) = counters {
                s.num(k!("packets"), c.packets).num(k!("bytes"), c.bytes);
            }
            if let Some((nip, nport)) = nat {
                s.obj(k!("nat"), |n| {
                    n.raw(k!("ip"), |out| super::ip_string(nip, out));
                    if let Some(p) = nport {
                        n.num(k!("port"), p);
                    }
                });
            }
            endpoint(s, extra);
        });
    }
    o.obj(k!("netfilter"), |nf| {
        nf.obj(k!("ct"), |c| {
            c.str(k!("event"), f.kind.as_str());
            if f.recovered {
                c.bool(k!("recovered"), true);
            }
            if let Some(id) = f.ct.id {
                c.num(k!("id"), id);
            }
            if let Some(m) = f.ct.mark {
                c.num(k!("mark"), m);
            }
            if let Some(z) = f.ct.zone {
                c.num(k!("zone"), z);
            }
            if let Some(s) = f.ct.status {
                c.num(k!("status"), s);
            }
            if let Some(t) = f.ct.tcp_state {
                c.str(k!("tcp_state"), nfnetlink::ctnetlink::tcp_state_name(t));
            }
            if let Some(t) = f.ct.timeout {
                c.num(k!("timeout"), t);
            }
            // Connlabels as the numbers of the bits set (names live in connlabel.conf).
            if let Some(l) = f.ct.labels.filter(|&l| l != 0) {
                c.raw(k!("labels"), |out| {
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
                c.num(k!("icmp_type"), t).num(k!("icmp_code"), co);
            }
            if let Some((src, dst)) = orig.gre_keys {
                c.raw(k!("gre_keys"), |out| {
                    out.push(b'[');
                    out.extend_from_slice(itoa::Buffer::new().format(src).as_bytes());
                    out.push(b',');
                    out.extend_from_slice(itoa::Buffer::new().format(dst).as_bytes());
                    out.push(b']');
                });
            }
            if let Some(r) = reply.src {
                c.raw(k!("reply_src"), |out| super::ip_string(r, out));
            }
            if let Some(r) = reply.dst {
                c.raw(k!("reply_dst"), |out| super::ip_string(r, out));
            }
            if let Some(p) = reply.sport {
                c.num(k!("reply_sport"), p);
            }
            if let Some(p) = reply.dport {
                c.num(k!("reply_dport"), p);
            }
        });
    });
    o.close();
}

/// An accounting object in ECS: a metric event with the counts since the previous poll (or the
/// totals, without zeroing) under `netfilter.nfacct` and `network`.
pub fn counter(c: &event::CounterEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    timestamp(&mut o, c.time);
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "metric")
            .strs(k!("category"), ["network"])
            .strs(k!("type"), ["info"])
            .lit(k!("module"), "netfilter")
            .lit(k!("dataset"), "netfilter.nfacct");
    });
    o.obj(k!("observer"), |ob| firewall_observer(ob, &opts.hostname));
    o.obj(k!("network"), |n| {
        n.num(k!("packets"), c.packets).num(k!("bytes"), c.bytes);
    });
    o.obj(k!("netfilter"), |nf| {
        nf.obj(k!("nfacct"), |a| {
            a.str(k!("name"), &c.name)
                .num(k!("packets"), c.packets)
                .num(k!("bytes"), c.bytes);
        });
    });
    o.close();
}

/// `observer.*`: this host, a Netfilter firewall, as nflogd reports it.
fn firewall_observer(ob: &mut Obj, hostname: &str) {
    ob.str(k!("hostname"), hostname)
        .lit(k!("type"), "firewall")
        .lit(k!("vendor"), "Netfilter")
        .lit(k!("product"), "nflogd");
}

/// `network.community_id`, when the sink writes it and the record has IP endpoints.
fn community_id(n: &mut Obj, key: Option<event::FlowKey>, opts: &SchemaOptions) {
    let key = key.filter(super::community_id::defined);
    if let (Some(seed), Some(key)) = (opts.community_id, key) {
        n.raw(k!("community_id"), |out| {
            out.push(b'"');
            super::community_id::write(&key, seed, out);
            out.push(b'"');
        });
    }
}

/// What transforms found about an endpoint: ECS `domain`, `geo.*`, `as.*`.
fn endpoint(s: &mut Obj, e: Option<&event::Endpoint>) {
    let Some(e) = e else { return };
    if let Some(d) = &e.domain {
        s.str(k!("domain"), d);
    }
    if let Some(p) = e.place.as_deref() {
        geo(s, p);
    }
    let asn = [e.place.as_deref(), e.network.as_deref()]
        .into_iter()
        .flatten()
        .find(|p| p.as_number.is_some() || p.as_organization.is_some());
    if let Some(p) = asn {
        s.obj(k!("as"), |a| {
            if let Some(n) = p.as_number {
                a.num(k!("number"), n);
            }
            if let Some(org) = &p.as_organization {
                a.obj(k!("organization"), |o| {
                    o.str(k!("name"), org);
                });
            }
        });
    }
}

/// ECS `geo.*` of a place.
fn geo(s: &mut Obj, p: &event::Place) {
    let has_geo =
        p.country_iso_code.is_some() || p.continent_code.is_some() || p.location.is_some();
    if !has_geo {
        return;
    }
    s.obj(k!("geo"), |g| {
        for (key, v) in [
            (k!("continent_code"), &p.continent_code),
            (k!("continent_name"), &p.continent_name),
            (k!("country_iso_code"), &p.country_iso_code),
            (k!("country_name"), &p.country_name),
            (k!("region_iso_code"), &p.region_iso_code),
            (k!("region_name"), &p.region_name),
            (k!("city_name"), &p.city_name),
            (k!("postal_code"), &p.postal_code),
            (k!("timezone"), &p.timezone),
        ] {
            if let Some(v) = v {
                g.str(key, v);
            }
        }
        if let Some((lat, lon)) = p.location {
            g.obj(k!("location"), |l| {
                l.raw(k!("lat"), |out| micro_degrees(lat, out));
                l.raw(k!("lon"), |out| micro_degrees(lon, out));
            });
        }
    });
}

/// Millionths of a degree as a decimal number, without trailing zeros (51.5142, -0.0931).
fn micro_degrees(v: i32, out: &mut Vec<u8>) {
    use std::io::Write;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (int, frac) = (a / 1_000_000, a % 1_000_000);
    let _ = write!(out, "{sign}{int}");
    if frac != 0 {
        let f = format!("{frac:06}");
        let _ = write!(out, ".{}", f.trim_end_matches('0'));
    }
}

/// A guard's decision: `event.action` ban or unban, the offending address as `source.ip`, the
/// banned prefix and the evidence under `netfilter.guard`.
pub fn decision(d: &event::Decision, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    timestamp(&mut o, d.time);
    o.str(k!("message"), &d.reason);
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "event")
            .strs(k!("category"), ["intrusion_detection", "network"])
            .strs(
                k!("type"),
                [match d.verdict {
                    event::Verdict::Ban => "denied",
                    event::Verdict::Unban => "end",
                }],
            )
            .lit(k!("action"), d.verdict.as_str())
            .lit(k!("module"), "netfilter")
            .lit(k!("dataset"), "netfilter.guard")
            .str(k!("reason"), &d.reason)
            .num(
                k!("duration"),
                d.duration_secs.saturating_mul(1_000_000_000),
            );
    });
    o.obj(k!("rule"), |r| {
        r.str(k!("name"), &d.detector);
    });
    o.obj(k!("source"), |s| {
        s.str(k!("ip"), &d.address.to_string());
    });
    o.obj(k!("observer"), |ob| firewall_observer(ob, &opts.hostname));
    o.obj(k!("netfilter"), |nf| {
        nf.obj(k!("guard"), |g| {
            g.str(k!("name"), &d.guard)
                .str(k!("prefix"), &d.prefix.to_string())
                .num(k!("evidence"), d.evidence)
                .num(k!("offense"), d.offense)
                .num(k!("duration"), d.duration_secs)
                .bool(k!("dry_run"), d.dry_run);
        });
    });
    o.close();
}

/// A program's log line (what a guard reads), should a sink be given one.
pub fn line(l: &event::LogLine, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    timestamp(&mut o, l.time);
    o.str(k!("message"), &l.message);
    o.obj(k!("event"), |e| {
        e.lit(k!("kind"), "event");
    });
    if l.program.is_some() || l.pid.is_some() {
        o.obj(k!("process"), |p| {
            if let Some(n) = &l.program {
                p.str(k!("name"), n);
            }
            if let Some(pid) = l.pid {
                p.num(k!("pid"), pid);
            }
        });
    }
    o.obj(k!("host"), |h| {
        h.str(k!("name"), l.host.as_deref().unwrap_or(&opts.hostname));
    });
    o.close();
}
