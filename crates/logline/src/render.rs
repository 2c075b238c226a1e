//! PacketEvent → kernel LOG text. Each function mirrors one function of nf_log_syslog.c; a
//! `false` return means the kernel returned early there (no trailer follows).

use crate::LogFlags;
use event::{family, Interface, LinkHeader, PacketEvent, ARPHRD_ETHER};
use packet::arp::Arp;
use packet::icmp;
use packet::icmpv6;
use packet::ipv4::Ipv4;
use packet::ipv6::{ExtHeader, Ipv6};
use packet::{ethertype, proto, Network, Transport};
use std::io::Write;
use std::net::Ipv6Addr;

/// Renders `ev` as the kernel would log it with `flags`, without the printk level and without
/// a newline. Lines end with the kernel's trailing space where the kernel prints one.
pub fn render(ev: &PacketEvent, flags: LogFlags, out: &mut Vec<u8>) {
    let bridged = matches!(ev.family, family::BRIDGE);
    // In the bridge family NFLOG reports the bridge as the device and the port as the physical
    // device; the kernel's logger names the port.
    let (indev, outdev) = if bridged {
        (
            ev.physindev.as_ref().or(ev.indev.as_ref()),
            ev.physoutdev.as_ref().or(ev.outdev.as_ref()),
        )
    } else {
        (ev.indev.as_ref(), ev.outdev.as_ref())
    };
    out.extend_from_slice(ev.prefix.as_bytes());
    out.extend_from_slice(b"IN=");
    out.extend_from_slice(name(indev).as_bytes());
    out.extend_from_slice(b" OUT=");
    out.extend_from_slice(name(outdev).as_bytes());
    out.push(b' ');
    if !bridged {
        if let Some(p) = &ev.physindev {
            if name(indev) != &*p.name {
                let _ = write!(out, "PHYSIN={} ", p.name);
            }
        }
        if let Some(p) = &ev.physoutdev {
            if name(outdev) != &*p.name {
                let _ = write!(out, "PHYSOUT={} ", p.name);
            }
        }
    }
    let kind = match ev.family {
        family::IPV4 => ethertype::IPV4,
        family::IPV6 => ethertype::IPV6,
        family::ARP => ethertype::ARP,
        _ => ev.hw_protocol,
    };
    match kind {
        ethertype::IPV4 | ethertype::IPV6 => {
            if let Some(dev) = indev {
                mac_header(ev.link.as_ref(), dev.hwtype, flags, out);
            }
            match &ev.headers.network {
                Network::Ipv4(ip) => {
                    if ipv4(ip, ev, false, flags, out) {
                        trailer(ev, flags, out);
                    }
                }
                Network::Ipv6(ip) => {
                    if ipv6(ip, false, flags, out) {
                        trailer(ev, flags, out);
                    }
                }
                Network::None => {}
                _ => out.extend_from_slice(b"TRUNCATED"),
            }
        }
        ethertype::ARP | ethertype::RARP => match &ev.headers.network {
            Network::Arp(a) => arp(a, ev.link.as_ref(), flags, out),
            Network::None => {}
            _ => out.extend_from_slice(b"TRUNCATED"),
        },
        _ => mac_header(ev.link.as_ref(), indev.and_then(|d| d.hwtype), flags, out),
    }
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex2(b: u8, digits: &[u8; 16], out: &mut Vec<u8>) {
    out.push(digits[(b >> 4) as usize]);
    out.push(digits[(b & 15) as usize]);
}

/// `key` then the decimal value, without the formatting machinery (this is the hot path of
/// every text record).
fn kv(out: &mut Vec<u8>, key: &[u8], v: impl itoa::Integer) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn ip4(a: std::net::Ipv4Addr, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    for (i, o) in a.octets().iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(b.format(*o).as_bytes());
    }
}

fn name(i: Option<&Interface>) -> &str {
    i.map(|i| &*i.name).unwrap_or("")
}

fn hex_colon(bytes: &[u8], out: &mut Vec<u8>) {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        hex2(*b, HEX_LOWER, out);
    }
}

fn hex_upper(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        hex2(*b, HEX_UPPER, out);
    }
}

fn mac_decoded(link: &LinkHeader, out: &mut Vec<u8>) -> bool {
    if link.header.len() < packet::ethernet::HEADER_LEN {
        return false;
    }
    let h = &link.header;
    out.extend_from_slice(b"MACSRC=");
    hex_colon(&h[6..12], out);
    out.extend_from_slice(b" MACDST=");
    hex_colon(&h[0..6], out);
    out.push(b' ');
    if let Some((tpid, tci)) = link.vlan {
        let _ = write!(out, "VPROTO={tpid:04x} VID={tci} ");
    }
    out.extend_from_slice(b"MACPROTO=");
    hex2(h[12], HEX_LOWER, out);
    hex2(h[13], HEX_LOWER, out);
    out.push(b' ');
    true
}

/// `dump_mac_header`.
fn mac_header(
    link: Option<&LinkHeader>,
    dev_type: Option<u16>,
    flags: LogFlags,
    out: &mut Vec<u8>,
) {
    if flags.has(LogFlags::MACDECODE)
        && link.and_then(|l| l.hwtype).or(dev_type) == Some(ARPHRD_ETHER)
    {
        if let Some(l) = link {
            mac_decoded(l, out);
        }
        return;
    }
    out.extend_from_slice(b"MAC=");
    if let Some(l) = link {
        hex_colon(&l.header, out);
    }
    out.push(b' ');
}

/// The outer packet's trailer: UID/GID (with the flag) and a non-zero mark.
fn trailer(ev: &PacketEvent, flags: LogFlags, out: &mut Vec<u8>) {
    // A socket on a frame at the netdev ingress hook is its sender's, in another network
    // namespace (a veth peer); the kernel prints the owner only of a socket of its own
    // namespace. (NFLOG reports it, and the other schemas keep it, as ulogd2 does.)
    let foreign = ev.family == family::NETDEV && ev.hook == Some(0);
    if flags.has(LogFlags::UID) && !foreign {
        if let (Some(u), Some(g)) = (ev.uid, ev.gid) {
            let _ = write!(out, "UID={u} GID={g} ");
        }
    }
    if ev.mark != 0 {
        let _ = write!(out, "MARK=0x{:x} ", ev.mark);
    }
}

fn incomplete(n: u32, out: &mut Vec<u8>) {
    let _ = write!(out, "INCOMPLETE [{n} bytes] ");
}

/// `dump_ipv4_packet`; returns false where the kernel returns before the trailer.
fn ipv4(ip: &Ipv4, ev: &PacketEvent, nested: bool, flags: LogFlags, out: &mut Vec<u8>) -> bool {
    let len = if ip.total_len == 0 && !nested {
        ev.payload_len
    } else {
        ip.total_len as u32
    };
    out.extend_from_slice(b"SRC=");
    ip4(ip.src, out);
    out.extend_from_slice(b" DST=");
    ip4(ip.dst, out);
    kv(out, b" LEN=", len);
    out.extend_from_slice(b" TOS=0x");
    hex2(ip.tos & 0x1e, HEX_UPPER, out);
    out.extend_from_slice(b" PREC=0x");
    hex2(ip.tos & 0xe0, HEX_UPPER, out);
    kv(out, b" TTL=", ip.ttl);
    kv(out, b" ID=", ip.id);
    out.push(b' ');
    if ip.reserved_flag() {
        out.extend_from_slice(b"CE ");
    }
    if ip.dont_fragment() {
        out.extend_from_slice(b"DF ");
    }
    if ip.more_fragments() {
        out.extend_from_slice(b"MF ");
    }
    if ip.frag_offset() != 0 {
        let _ = write!(out, "FRAG:{} ", ip.frag_offset());
    }
    if flags.has(LogFlags::IPOPT) && ip.header_len() > packet::ipv4::HEADER_LEN {
        if ip.options_truncated {
            out.extend_from_slice(b"TRUNCATED");
            return false;
        }
        out.extend_from_slice(b"OPT (");
        hex_upper(&ip.options, out);
        out.extend_from_slice(b") ");
    }
    let fragment = ip.is_later_fragment();
    match ip.protocol {
        proto::TCP => return tcp(&ip.transport, flags, out),
        proto::UDP | proto::UDPLITE => return udp(ip.protocol, &ip.transport, out),
        proto::ICMP => {
            out.extend_from_slice(b"PROTO=ICMP ");
            match &ip.transport {
                Transport::Icmp(m) => icmp4(m, ev, nested, flags, out),
                Transport::Incomplete { available } => incomplete(*available, out),
                _ => {}
            }
        }
        proto::AH => {
            if !fragment {
                out.extend_from_slice(b"PROTO=AH ");
                match &ip.transport {
                    Transport::Ah(a) => {
                        let _ = write!(out, "SPI=0x{:x} ", a.spi);
                    }
                    Transport::Incomplete { available } => incomplete(*available, out),
                    _ => {}
                }
            }
        }
        proto::ESP => {
            out.extend_from_slice(b"PROTO=ESP ");
            match &ip.transport {
                Transport::Esp(e) => {
                    let _ = write!(out, "SPI=0x{:x} ", e.spi);
                }
                Transport::Incomplete { available } => incomplete(*available, out),
                _ => {}
            }
        }
        p => {
            let _ = write!(out, "PROTO={p} ");
        }
    }
    true
}

fn icmp4(m: &icmp::Icmp, ev: &PacketEvent, nested: bool, flags: LogFlags, out: &mut Vec<u8>) {
    let _ = write!(out, "TYPE={} CODE={} ", m.icmp_type, m.code);
    let need = m.required_len();
    if m.icmp_type <= 18 && need != 0 && m.available < need {
        incomplete(m.available, out);
        return;
    }
    match m.icmp_type {
        icmp::ECHO | icmp::ECHO_REPLY => {
            let _ = write!(out, "ID={} SEQ={} ", m.echo_id(), m.echo_seq());
        }
        icmp::PARAMETER_PROBLEM => {
            let _ = write!(out, "PARAMETER={} ", m.pointer());
        }
        icmp::REDIRECT | icmp::DEST_UNREACH | icmp::SOURCE_QUENCH | icmp::TIME_EXCEEDED => {
            if m.icmp_type == icmp::REDIRECT {
                let _ = write!(out, "GATEWAY={} ", m.gateway());
            }
            if !nested {
                out.push(b'[');
                match &m.quoted {
                    Some(q) => {
                        ipv4(q, ev, true, flags, out);
                    }
                    None => out.extend_from_slice(b"TRUNCATED"),
                }
                out.extend_from_slice(b"] ");
            }
            if m.icmp_type == icmp::DEST_UNREACH && m.code == icmp::FRAG_NEEDED {
                let _ = write!(out, "MTU={} ", m.mtu());
            }
        }
        _ => {}
    }
}

/// `nf_log_dump_tcp_header`.
fn tcp(t: &Transport, flags: LogFlags, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(b"PROTO=TCP ");
    let t = match t {
        Transport::Tcp(t) => t,
        Transport::Incomplete { available } => {
            incomplete(*available, out);
            return false;
        }
        _ => return true,
    };
    kv(out, b"SPT=", t.sport);
    kv(out, b" DPT=", t.dport);
    out.push(b' ');
    if flags.has(LogFlags::TCPSEQ) {
        kv(out, b"SEQ=", t.seq);
        kv(out, b" ACK=", t.ack);
        out.push(b' ');
    }
    kv(out, b"WINDOW=", t.window);
    out.extend_from_slice(b" RES=0x");
    hex2(((t.flags & 0x0e00) >> 6) as u8, HEX_LOWER, out);
    out.push(b' ');
    use packet::tcp::flag::*;
    for (bit, name) in [
        (AE, "AE "),
        (CWR, "CWR "),
        (ECE, "ECE "),
        (URG, "URG "),
        (ACK, "ACK "),
        (PSH, "PSH "),
        (RST, "RST "),
        (SYN, "SYN "),
        (FIN, "FIN "),
    ] {
        if t.has(bit) {
            out.extend_from_slice(name.as_bytes());
        }
    }
    kv(out, b"URGP=", t.urgent);
    out.push(b' ');
    if flags.has(LogFlags::TCPOPT) && t.options_len() > 0 {
        if t.options_truncated {
            out.extend_from_slice(b"OPT (TRUNCATED)");
            return false;
        }
        out.extend_from_slice(b"OPT (");
        hex_upper(&t.options, out);
        out.extend_from_slice(b") ");
    }
    true
}

/// `nf_log_dump_udp_header`.
fn udp(protocol: u8, t: &Transport, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(if protocol == proto::UDP {
        b"PROTO=UDP "
    } else {
        b"PROTO=UDPLITE "
    });
    match t {
        Transport::Udp(u) => {
            kv(out, b"SPT=", u.sport);
            kv(out, b" DPT=", u.dport);
            kv(out, b" LEN=", u.length);
            out.push(b' ');
            true
        }
        Transport::Incomplete { available } => {
            incomplete(*available, out);
            false
        }
        _ => true,
    }
}

fn ip6(a: &Ipv6Addr, out: &mut Vec<u8>) {
    for (i, s) in a.segments().iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        hex2((s >> 8) as u8, HEX_LOWER, out);
        hex2(*s as u8, HEX_LOWER, out);
    }
}

/// `dump_ipv6_packet`; returns false where the kernel returns before the trailer.
fn ipv6(ip: &Ipv6, nested: bool, flags: LogFlags, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(b"SRC=");
    ip6(&ip.src, out);
    out.extend_from_slice(b" DST=");
    ip6(&ip.dst, out);
    kv(out, b" LEN=", ip.payload_len as u32 + 40);
    kv(out, b" TC=", ip.traffic_class);
    kv(out, b" HOPLIMIT=", ip.hop_limit);
    kv(out, b" FLOWLBL=", ip.flow_label);
    out.push(b' ');
    let opt = flags.has(LogFlags::IPOPT);
    let mut fragment = false;
    for e in &ip.ext {
        if *e == ExtHeader::Truncated {
            out.extend_from_slice(b"TRUNCATED");
            return false;
        }
        if opt {
            out.extend_from_slice(b"OPT ( ");
        }
        match *e {
            ExtHeader::Fragment { offset, more, id } => {
                let _ = write!(out, "FRAG:{offset} ");
                if more {
                    out.extend_from_slice(b"INCOMPLETE ");
                }
                let _ = write!(out, "ID:{id:08x} ");
                fragment |= offset != 0;
            }
            ExtHeader::FragmentTruncated => {
                out.extend_from_slice(b"FRAG:TRUNCATED ");
                return false;
            }
            ExtHeader::OptionsAfterFragment(_) => {
                if opt {
                    out.push(b')');
                }
                return false;
            }
            ExtHeader::Ah { spi, available } => {
                if opt {
                    out.extend_from_slice(b"AH ");
                    if fragment {
                        out.push(b')');
                        return false;
                    }
                    match spi {
                        Some(spi) => {
                            let _ = write!(out, "SPI=0x{spi:x} ");
                        }
                        None => {
                            let _ = write!(out, "INCOMPLETE [{available} bytes] )");
                            return false;
                        }
                    }
                }
            }
            ExtHeader::Esp { spi, available } => {
                if opt {
                    out.extend_from_slice(b"ESP ");
                    if fragment {
                        out.push(b')');
                        return false;
                    }
                    match spi {
                        Some(spi) => {
                            let _ = write!(out, "SPI=0x{spi:x} )");
                        }
                        None => {
                            let _ = write!(out, "INCOMPLETE [{available} bytes] )");
                        }
                    }
                }
                return false;
            }
            ExtHeader::HopByHop
            | ExtHeader::Routing
            | ExtHeader::DestOpts
            | ExtHeader::Truncated => {}
        }
        if opt {
            out.extend_from_slice(b") ");
        }
    }
    match ip.protocol {
        proto::TCP => tcp(&ip.transport, flags, out),
        proto::UDP | proto::UDPLITE => udp(ip.protocol, &ip.transport, out),
        proto::ICMPV6 => {
            out.extend_from_slice(b"PROTO=ICMPv6 ");
            match &ip.transport {
                Transport::Icmpv6(m) => icmp6(m, nested, flags, out),
                Transport::Incomplete { available } => {
                    incomplete(*available, out);
                    false
                }
                _ => true,
            }
        }
        p => {
            let _ = write!(out, "PROTO={p} ");
            true
        }
    }
}

fn icmp6(m: &icmpv6::Icmpv6, nested: bool, flags: LogFlags, out: &mut Vec<u8>) -> bool {
    let _ = write!(out, "TYPE={} CODE={} ", m.icmp_type, m.code);
    match m.icmp_type {
        icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY => {
            let _ = write!(out, "ID={} SEQ={} ", m.echo_id(), m.echo_seq());
        }
        icmpv6::PARAMETER_PROBLEM
        | icmpv6::DEST_UNREACH
        | icmpv6::PACKET_TOO_BIG
        | icmpv6::TIME_EXCEEDED => {
            if m.icmp_type == icmpv6::PARAMETER_PROBLEM {
                let _ = write!(out, "POINTER={:08x} ", m.word());
            }
            if !nested {
                out.push(b'[');
                match &m.quoted {
                    Some(q) => {
                        ipv6(q, true, flags, out);
                    }
                    None => out.extend_from_slice(b"TRUNCATED"),
                }
                out.extend_from_slice(b"] ");
            }
            if m.icmp_type == icmpv6::PACKET_TOO_BIG {
                let _ = write!(out, "MTU={} ", m.word());
            }
        }
        _ => {}
    }
    true
}

/// `dump_arp_packet`.
fn arp(a: &Arp, link: Option<&LinkHeader>, flags: LogFlags, out: &mut Vec<u8>) {
    if flags.has(LogFlags::MACDECODE) {
        if let Some(l) = link.filter(|l| l.hwtype == Some(ARPHRD_ETHER)) {
            mac_decoded(l, out);
        }
    }
    let _ = write!(
        out,
        "ARP HTYPE={} PTYPE=0x{:04x} OPCODE={}",
        a.htype, a.ptype, a.opcode
    );
    if !a.is_ether_ipv4() {
        return;
    }
    match &a.addrs {
        Some(x) => {
            out.extend_from_slice(b" MACSRC=");
            hex_colon(&x.sender_mac, out);
            let _ = write!(out, " IPSRC={} MACDST=", x.sender_ip);
            hex_colon(&x.target_mac, out);
            let _ = write!(out, " IPDST={}", x.target_ip);
        }
        None => {
            let _ = write!(out, " INCOMPLETE [{} bytes]", a.available_after_header);
        }
    }
}
