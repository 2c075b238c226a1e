//! Kernel LOG text → PacketEvent, positionally by section as nf_log_syslog.c prints it, so that
//! duplicate keys (LEN, ID, SEQ, ACK, MACSRC, the keys of a quoted header) land where they
//! belong. `render(parse(line))` gives the line back, byte for byte.

use crate::LogFlags;
use arrayvec::ArrayVec;
use event::{family, Interface, LinkHeader, PacketEvent, ARPHRD_ETHER};
use packet::arp::{Arp, ArpAddrs};
use packet::icmp::Icmp;
use packet::icmpv6::Icmpv6;
use packet::ipsec::{Ah, Esp};
use packet::ipv4::Ipv4;
use packet::ipv6::{ExtHeader, Ipv6};
use packet::tcp::Tcp;
use packet::udp::Udp;
use packet::{ethertype, proto, Headers, Network, Transport};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Why a line is not a netfilter LOG line, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset}")]
pub struct ParseError {
    pub offset: usize,
    pub reason: &'static str,
}

/// A parsed line: the packet record and the log flags the line shows were set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub event: PacketEvent,
    pub flags: LogFlags,
}

struct Cur<'a> {
    s: &'a str,
    pos: usize,
    flags: LogFlags,
}

type R<T> = Result<T, ParseError>;

impl<'a> Cur<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn err<T>(&self, reason: &'static str) -> R<T> {
        Err(ParseError {
            offset: self.pos,
            reason,
        })
    }
    fn at_end(&self) -> bool {
        self.rest().trim_end().is_empty()
    }
    // Always inlined: the literal's length becomes a constant and the compare needs no call.
    #[inline(always)]
    fn peek(&self, lit: &str) -> bool {
        self.rest().starts_with(lit)
    }
    #[inline(always)]
    fn eat(&mut self, lit: &str) -> bool {
        if self.peek(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }
    #[inline(always)]
    fn expect(&mut self, lit: &'static str) -> R<()> {
        if self.eat(lit) {
            Ok(())
        } else {
            self.err(lit)
        }
    }
    /// The text up to the next space (or `]`), then one space if there is one.
    fn word(&mut self) -> &'a str {
        let r = self.rest();
        let end = r
            .bytes()
            .position(|b| b == b' ' || b == b']')
            .unwrap_or(r.len());
        self.pos += end;
        if r.as_bytes().get(end) == Some(&b' ') {
            self.pos += 1;
        }
        // The scan stops at ASCII bytes only, so `end` is a character boundary.
        &r[..end]
    }
    /// `KEY=value ` → value.
    #[inline(always)]
    fn field(&mut self, key: &'static str) -> R<&'a str> {
        self.expect(key)?;
        Ok(self.word())
    }
    #[inline(always)]
    fn num<T: TryFrom<u64>>(&mut self, key: &'static str) -> R<T> {
        let at = self.pos;
        let v = self.field(key)?;
        decimal(v)
            .and_then(|n| T::try_from(n).ok())
            .ok_or(ParseError {
                offset: at,
                reason: key,
            })
    }
    fn hex<T: TryFrom<u64>>(&mut self, key: &'static str, prefix: &str) -> R<T> {
        let at = self.pos;
        let v = self.field(key)?;
        let v = v.strip_prefix(prefix).unwrap_or(v);
        u64::from_str_radix(v, 16)
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or(ParseError {
                offset: at,
                reason: key,
            })
    }
    /// Bare flag words (`DF `, `SYN `…), in the table's order, OR-ed together.
    fn flag_words(&mut self, table: &[(&str, u16)]) -> u16 {
        let mut bits = 0;
        for &(w, bit) in table {
            let r = self.rest().as_bytes();
            if r.len() > w.len() && r[w.len()] == b' ' && &r[..w.len()] == w.as_bytes() {
                self.pos += w.len() + 1;
                bits |= bit;
            }
        }
        bits
    }

    /// `INCOMPLETE [n bytes]` (the caller has checked the word), returning n.
    fn incomplete(&mut self) -> R<u32> {
        self.expect("INCOMPLETE [")?;
        let at = self.pos;
        let r = self.rest();
        let end = r.find(' ').unwrap_or(r.len());
        let n = r[..end].parse().map_err(|_| ParseError {
            offset: at,
            reason: "INCOMPLETE count",
        })?;
        self.pos += end;
        self.expect(" bytes]")?;
        self.eat(" ");
        Ok(n)
    }
    /// `OPT (HEXHEX…)` → bytes.
    fn opt_hex(&mut self) -> R<ArrayVec<u8, 40>> {
        let at = self.pos;
        let r = self.rest();
        let end = r.find(')').ok_or(ParseError {
            offset: at,
            reason: "OPT (",
        })?;
        let hex = &r[..end];
        self.pos += end + 1;
        self.eat(" ");
        let mut v = ArrayVec::new();
        let b = hex.as_bytes();
        if !b.len().is_multiple_of(2) || b.len() > 80 {
            return Err(ParseError {
                offset: at,
                reason: "OPT bytes",
            });
        }
        for pair in b.chunks(2) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => v.push(h << 4 | l),
                _ => {
                    return Err(ParseError {
                        offset: at,
                        reason: "OPT bytes",
                    })
                }
            }
        }
        Ok(v)
    }
}

/// A plain decimal number (the kernel prints no signs or spaces), without the UTF-8 and
/// radix machinery of `str::parse`.
fn decimal(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as u64;
    }
    Some(n)
}

/// A dotted quad, as the kernel prints it (`%pI4`).
fn ipv4_addr(s: &str) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut parts = s.split('.');
    for x in o.iter_mut() {
        let p = parts.next()?;
        if p.len() > 3 {
            return None;
        }
        *x = u8::try_from(decimal(p)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(o))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `aa:bb:cc:dd:ee:ff` exactly.
fn mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        let j = i * 3;
        if i > 0 && b[j - 1] != b':' {
            return None;
        }
        *o = hex_digit(b[j])? << 4 | hex_digit(b[j + 1])?;
    }
    Some(out)
}

/// Where the kernel's fields start: the `IN=` of the last `IN=<name> OUT=` (an interface name
/// has no space; a prefix may be glued to `IN=` or contain `IN=` itself).
pub fn split_prefix(line: &str) -> Option<usize> {
    static OUT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" OUT="));
    let b = line.as_bytes();
    let mut found = None;
    for out in OUT.find_iter(b) {
        let tok = memchr::memrchr(b' ', &b[..out]).map_or(0, |i| i + 1);
        // The token before ` OUT=` is short: a plain scan finds its `IN=`.
        if let Some(i) = b[tok..out].windows(3).position(|w| w == b"IN=") {
            found = Some(tok + i);
        }
    }
    found
}

/// Prefixes and interface names repeat from line to line: keep the last few as shared strings.
fn shared_str(n: &str) -> Arc<str> {
    thread_local! {
        static LAST: std::cell::RefCell<[Option<Arc<str>>; 8]> = const { std::cell::RefCell::new([None, None, None, None, None, None, None, None]) };
    }
    LAST.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(a) = c.iter().flatten().find(|a| &***a == n) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(n);
        c.rotate_right(1);
        c[0] = Some(a.clone());
        a
    })
}

/// Parses a LOG line body: from the prefix to the end, without syslog or kmsg wrapping.
pub fn parse(line: &str) -> Result<Parsed, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let start = split_prefix(line).ok_or(ParseError {
        offset: 0,
        reason: "no IN=… OUT= fields",
    })?;
    let mut c = Cur {
        s: line,
        pos: start,
        flags: LogFlags::default(),
    };
    let mut ev = PacketEvent {
        prefix: shared_str(&line[..start]),
        ..Default::default()
    };
    let indev = c.field("IN=")?;
    let outdev = c.field("OUT=")?;
    let iface = |n: &str| {
        (!n.is_empty()).then(|| Interface {
            index: None,
            name: shared_str(n),
            hwtype: None,
        })
    };
    ev.indev = iface(indev);
    ev.outdev = iface(outdev);
    if c.peek("PHYSIN=") {
        ev.physindev = iface(c.field("PHYSIN=")?);
    }
    if c.peek("PHYSOUT=") {
        ev.physoutdev = iface(c.field("PHYSOUT=")?);
    }
    let mut macproto = None;
    if c.peek("MAC=") {
        let v = c.field("MAC=")?;
        let mut header = ArrayVec::new();
        if !v.is_empty() {
            for b in v.split(':') {
                let x = u8::from_str_radix(b, 16).map_err(|_| ParseError {
                    offset: c.pos,
                    reason: "MAC=",
                })?;
                let _ = header.try_push(x);
            }
        }
        let mut hwtype = None;
        if header.len() >= 14 {
            macproto = Some(u16::from_be_bytes([header[12], header[13]]));
            // An Ethernet-shaped header: the source and destination can be read from it.
            hwtype = Some(ARPHRD_ETHER);
        }
        if c.peek("TUNNEL=") {
            c.word();
        }
        ev.link = Some(LinkHeader {
            header,
            hwtype,
            ..Default::default()
        });
    } else if c.peek("MACSRC=") {
        macproto = Some(mac_decoded(&mut c, &mut ev)?);
    }
    if c.eat("ARP ") {
        ev.family = family::ARP;
        ev.hw_protocol = ethertype::ARP;
        ev.headers = Headers {
            network: Network::Arp(arp(&mut c)?),
            truncated: false,
        };
    } else if c.peek("SRC=") {
        let v6 = c.rest().as_bytes()[4..]
            .iter()
            .take_while(|&&b| b != b' ')
            .any(|&b| b == b':');
        if v6 {
            ev.family = family::IPV6;
            ev.hw_protocol = ethertype::IPV6;
            let (ip, trailer) = ipv6(&mut c, false)?;
            ev.payload_len = ip.payload_len as u32 + 40;
            ev.headers = Headers {
                network: Network::Ipv6(ip),
                truncated: false,
            };
            if trailer {
                self::trailer(&mut c, &mut ev)?;
            }
        } else {
            ev.family = family::IPV4;
            ev.hw_protocol = ethertype::IPV4;
            let (ip, len, trailer) = ipv4(&mut c, false)?;
            ev.payload_len = len;
            ev.headers = Headers {
                network: Network::Ipv4(ip),
                truncated: false,
            };
            if trailer {
                self::trailer(&mut c, &mut ev)?;
            }
        }
    } else if c.eat("TRUNCATED") {
        // The ARP logger prints TRUNCATED before any MAC part; the IP loggers after it.
        let arp = ev.link.is_none() && ev.indev.is_some();
        let (fam, et) = if arp {
            (family::ARP, ethertype::ARP)
        } else {
            ip_family(macproto)
        };
        ev.family = fam;
        ev.hw_protocol = et;
        ev.headers = Headers {
            network: Network::Truncated { ethertype: et },
            truncated: true,
        };
    } else {
        let ip_or_arp = |p: u16| [ethertype::IPV4, ethertype::IPV6, ethertype::ARP].contains(&p);
        // Bridge/netdev with an ethertype the kernel does not decode print the MAC part only,
        // with or without an input device; the IP loggers print one only with an input device.
        let unknown =
            ev.link.is_some() && (ev.indev.is_none() || macproto.is_some_and(|p| !ip_or_arp(p)));
        if unknown {
            ev.family = family::BRIDGE;
            ev.hw_protocol = macproto.unwrap_or(0);
            ev.headers = Headers {
                network: Network::Other {
                    ethertype: ev.hw_protocol,
                },
                truncated: false,
            };
        } else {
            // A packet logged without its payload. With an input device the IP loggers always
            // print a MAC part, so none means the ARP logger.
            let arp = ev.link.is_none() && ev.indev.is_some();
            let (fam, et) = if arp {
                (family::ARP, ethertype::ARP)
            } else {
                ip_family(macproto)
            };
            ev.family = fam;
            ev.hw_protocol = et;
        }
    }
    if let Some(p) = macproto {
        ev.hw_protocol = p;
    }
    if !c.at_end() {
        return c.err("unexpected text after the packet");
    }
    Ok(Parsed {
        event: ev,
        flags: c.flags,
    })
}

fn ip_family(macproto: Option<u16>) -> (u8, u16) {
    match macproto {
        Some(ethertype::IPV6) => (family::IPV6, ethertype::IPV6),
        _ => (family::IPV4, ethertype::IPV4),
    }
}

fn mac_decoded(c: &mut Cur, ev: &mut PacketEvent) -> R<u16> {
    let at = c.pos;
    let bad = ParseError {
        offset: at,
        reason: "MACSRC=",
    };
    let src = mac(c.field("MACSRC=")?).ok_or(bad.clone())?;
    let dst = mac(c.field("MACDST=")?).ok_or(bad)?;
    let mut link = LinkHeader {
        hwtype: Some(ARPHRD_ETHER),
        ..Default::default()
    };
    if c.peek("VPROTO=") {
        let tpid: u16 = c.hex("VPROTO=", "")?;
        let tci: u16 = c.num("VID=")?;
        link.vlan = Some((tpid, tci));
    }
    let proto: u16 = c.hex("MACPROTO=", "")?;
    let _ = link.header.try_extend_from_slice(&dst);
    let _ = link.header.try_extend_from_slice(&src);
    let _ = link.header.try_extend_from_slice(&proto.to_be_bytes());
    ev.link = Some(link);
    if let Some(i) = ev.indev.as_mut() {
        i.hwtype = Some(ARPHRD_ETHER);
    }
    c.flags = c.flags | LogFlags(LogFlags::MACDECODE);
    Ok(proto)
}

fn arp(c: &mut Cur) -> R<Arp> {
    let htype: u16 = c.num("HTYPE=")?;
    let ptype: u16 = c.hex("PTYPE=", "0x")?;
    let opcode: u16 = c.num("OPCODE=")?;
    let mut a = Arp {
        htype,
        ptype,
        hlen: 0,
        plen: 0,
        opcode,
        addrs: None,
        available_after_header: 0,
    };
    if c.peek("MACSRC=") {
        let at = c.pos;
        let bad = || ParseError {
            offset: at,
            reason: "ARP addresses",
        };
        let sender_mac = mac(c.field("MACSRC=")?).ok_or_else(bad)?;
        let sender_ip: Ipv4Addr = ipv4_addr(c.field("IPSRC=")?).ok_or_else(bad)?;
        let target_mac = mac(c.field("MACDST=")?).ok_or_else(bad)?;
        let target_ip: Ipv4Addr = ipv4_addr(c.field("IPDST=")?).ok_or_else(bad)?;
        a.addrs = Some(ArpAddrs {
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        });
        a.hlen = 6;
        a.plen = 4;
        a.available_after_header = 20;
    } else if c.peek("INCOMPLETE [") {
        a.available_after_header = c.incomplete()?;
        a.hlen = 6;
        a.plen = 4;
    }
    Ok(a)
}

/// The trailer of the outer packet.
fn trailer(c: &mut Cur, ev: &mut PacketEvent) -> R<()> {
    if c.peek("UID=") {
        ev.uid = Some(c.num("UID=")?);
        ev.gid = Some(c.num("GID=")?);
        c.flags = c.flags | LogFlags(LogFlags::UID);
    }
    if c.peek("MARK=") {
        ev.mark = c.hex("MARK=", "0x")?;
    }
    Ok(())
}

/// An IPv4 header and what follows; returns the header, its LEN, and whether a trailer may
/// follow (false where the kernel ends the line early).
fn ipv4(c: &mut Cur, nested: bool) -> R<(Ipv4, u32, bool)> {
    let at = c.pos;
    let src: Ipv4Addr = ipv4_addr(c.field("SRC=")?).ok_or(ParseError {
        offset: at,
        reason: "SRC=",
    })?;
    let at = c.pos;
    let dst: Ipv4Addr = ipv4_addr(c.field("DST=")?).ok_or(ParseError {
        offset: at,
        reason: "DST=",
    })?;
    let len: u32 = c.num("LEN=")?;
    let tos: u8 = c.hex("TOS=", "0x")?;
    let prec: u8 = c.hex("PREC=", "0x")?;
    let ttl: u8 = c.num("TTL=")?;
    let id: u16 = c.num("ID=")?;
    let mut frag_field = 0u16;
    frag_field |= c.flag_words(&[("CE", 0x8000), ("DF", 0x4000), ("MF", 0x2000)]);
    if c.peek("FRAG:") {
        let at = c.pos;
        let v = c.field("FRAG:")?;
        frag_field |= v.parse::<u16>().map_err(|_| ParseError {
            offset: at,
            reason: "FRAG:",
        })? & 0x1fff;
    }
    let mut ip = Ipv4 {
        src,
        dst,
        ihl: 5,
        tos: tos | prec,
        total_len: len.min(u16::MAX as u32) as u16,
        id,
        frag_field,
        ttl,
        protocol: 0,
        checksum: 0,
        options: ArrayVec::new(),
        options_truncated: false,
        transport: Transport::None,
    };
    if c.eat("OPT (") {
        ip.options = c.opt_hex()?;
        ip.ihl = 5 + ip.options.len().div_ceil(4) as u8;
        c.flags = c.flags | LogFlags(LogFlags::IPOPT);
    }
    if c.eat("TRUNCATED") {
        ip.options_truncated = true;
        ip.ihl = 6;
        c.flags = c.flags | LogFlags(LogFlags::IPOPT);
        return Ok((ip, len, false));
    }
    let fragment = ip.is_later_fragment();
    let avail = len.saturating_sub(ip.header_len() as u32);
    if !c.peek("PROTO=") {
        // Only AH prints nothing at all for a later fragment.
        if fragment {
            ip.protocol = proto::AH;
            ip.transport = Transport::Fragment;
            return Ok((ip, len, true));
        }
        return c.err("PROTO=");
    }
    let p = c.field("PROTO=")?;
    let (protocol, trailer) = match p {
        "TCP" => (proto::TCP, tcp(c, fragment, &mut ip.transport)?),
        "UDP" => (proto::UDP, udp(c, fragment, &mut ip.transport)?),
        "UDPLITE" => (proto::UDPLITE, udp(c, fragment, &mut ip.transport)?),
        "ICMP" => {
            ip.transport = if fragment {
                Transport::Fragment
            } else {
                icmp4(c, nested, avail)?
            };
            (proto::ICMP, true)
        }
        "AH" | "ESP" => {
            let esp = p == "ESP";
            ip.transport = if fragment {
                Transport::Fragment
            } else if c.peek("INCOMPLETE [") {
                Transport::Incomplete {
                    available: c.incomplete()?,
                }
            } else {
                let spi: u32 = c.hex("SPI=", "0x")?;
                if esp {
                    Transport::Esp(Esp { spi, seq: 0 })
                } else {
                    Transport::Ah(Ah {
                        next_header: 0,
                        header_len: 0,
                        spi,
                        seq: 0,
                    })
                }
            };
            (if esp { proto::ESP } else { proto::AH }, true)
        }
        n => {
            let at = c.pos;
            let n: u8 = n.parse().map_err(|_| ParseError {
                offset: at,
                reason: "PROTO=",
            })?;
            ip.transport = if fragment {
                Transport::Fragment
            } else {
                Transport::Other
            };
            (n, true)
        }
    };
    ip.protocol = protocol;
    Ok((ip, len, trailer))
}

/// What TCP and UDP share: a later fragment has no header (the trailer follows), and a header
/// cut short prints `INCOMPLETE [n bytes]` (and the line ends). `Some(trailer)` when so.
fn no_header(c: &mut Cur, fragment: bool, out: &mut Transport) -> R<Option<bool>> {
    if fragment {
        *out = Transport::Fragment;
        return Ok(Some(true));
    }
    if c.peek("INCOMPLETE [") {
        *out = Transport::Incomplete {
            available: c.incomplete()?,
        };
        return Ok(Some(false));
    }
    Ok(None)
}

fn tcp(c: &mut Cur, fragment: bool, out: &mut Transport) -> R<bool> {
    if let Some(trailer) = no_header(c, fragment, out)? {
        return Ok(trailer);
    }
    let sport: u16 = c.num("SPT=")?;
    let dport: u16 = c.num("DPT=")?;
    let (mut seq, mut ack) = (0, 0);
    if c.peek("SEQ=") {
        seq = c.num("SEQ=")?;
        ack = c.num("ACK=")?;
        c.flags = c.flags | LogFlags(LogFlags::TCPSEQ);
    }
    let window: u16 = c.num("WINDOW=")?;
    let res: u16 = c.hex("RES=", "0x")?;
    // Kernels before the AE flag show it as RES bit 0x04.
    let mut flags = ((res & 0x38) << 6)
        | if res & 0x04 != 0 {
            packet::tcp::flag::AE
        } else {
            0
        };
    use packet::tcp::flag::*;
    flags |= c.flag_words(&[
        ("AE", AE),
        ("CWR", CWR),
        ("ECE", ECE),
        ("URG", URG),
        ("ACK", ACK),
        ("PSH", PSH),
        ("RST", RST),
        ("SYN", SYN),
        ("FIN", FIN),
    ]);

    let urgent: u16 = c.num("URGP=")?;
    let mut t = Tcp {
        sport,
        dport,
        seq,
        ack,
        data_offset: 5,
        flags,
        window,
        checksum: 0,
        urgent,
        options: ArrayVec::new(),
        options_truncated: false,
    };
    let mut trailer = true;
    if c.eat("OPT (") {
        c.flags = c.flags | LogFlags(LogFlags::TCPOPT);
        if c.eat("TRUNCATED)") {
            t.options_truncated = true;
            t.data_offset = 6;
            trailer = false;
        } else {
            t.options = c.opt_hex()?;
            t.data_offset = 5 + t.options.len().div_ceil(4) as u8;
        }
    }
    *out = Transport::Tcp(t);
    Ok(trailer)
}

fn udp(c: &mut Cur, fragment: bool, out: &mut Transport) -> R<bool> {
    if let Some(trailer) = no_header(c, fragment, out)? {
        return Ok(trailer);
    }
    *out = Transport::Udp(Udp {
        sport: c.num("SPT=")?,
        dport: c.num("DPT=")?,
        length: c.num("LEN=")?,
        checksum: 0,
    });
    Ok(true)
}

fn icmp4(c: &mut Cur, nested: bool, avail: u32) -> R<Transport> {
    if c.peek("INCOMPLETE [") {
        return Ok(Transport::Incomplete {
            available: c.incomplete()?,
        });
    }
    let mut m = Icmp {
        icmp_type: c.num("TYPE=")?,
        code: c.num("CODE=")?,
        checksum: 0,
        rest: [0; 4],
        available: avail.max(8),
        quoted: None,
    };
    if c.peek("INCOMPLETE [") {
        m.available = c.incomplete()?;
        return Ok(Transport::Icmp(m));
    }
    m.available = m.available.max(m.required_len());
    match m.icmp_type {
        packet::icmp::ECHO | packet::icmp::ECHO_REPLY => {
            let id: u16 = c.num("ID=")?;
            let seq: u16 = c.num("SEQ=")?;
            m.rest[..2].copy_from_slice(&id.to_be_bytes());
            m.rest[2..].copy_from_slice(&seq.to_be_bytes());
        }
        packet::icmp::PARAMETER_PROBLEM => m.rest[0] = c.num("PARAMETER=")?,
        3 | 4 | 5 | 11 => {
            if m.icmp_type == packet::icmp::REDIRECT {
                let at = c.pos;
                let gw: Ipv4Addr = ipv4_addr(c.field("GATEWAY=")?).ok_or(ParseError {
                    offset: at,
                    reason: "GATEWAY=",
                })?;
                m.rest = gw.octets();
            }
            if !nested && c.eat("[") {
                if !c.eat("TRUNCATED") {
                    let (q, _, _) = ipv4(c, true)?;
                    m.quoted = Some(Box::new(q));
                }
                c.expect("] ").or_else(|_| c.expect("]"))?;
            }
            if c.peek("MTU=") {
                let mtu: u16 = c.num("MTU=")?;
                m.rest[2..].copy_from_slice(&mtu.to_be_bytes());
            }
        }
        _ => {}
    }
    Ok(Transport::Icmp(m))
}

/// An IPv6 header and what follows; the bool says whether a trailer may follow.
fn ipv6(c: &mut Cur, nested: bool) -> R<(Ipv6, bool)> {
    let at = c.pos;
    let src: Ipv6Addr = c.field("SRC=")?.parse().map_err(|_| ParseError {
        offset: at,
        reason: "SRC=",
    })?;
    let at = c.pos;
    let dst: Ipv6Addr = c.field("DST=")?.parse().map_err(|_| ParseError {
        offset: at,
        reason: "DST=",
    })?;
    let len: u32 = c.num("LEN=")?;
    let mut ip = Ipv6 {
        src,
        dst,
        payload_len: len.saturating_sub(40).min(u16::MAX as u32) as u16,
        traffic_class: c.num("TC=")?,
        hop_limit: c.num("HOPLIMIT=")?,
        flow_label: c.num("FLOWLBL=")?,
        next_header: 0,
        ext: ArrayVec::new(),
        protocol: 0,
        transport: Transport::None,
    };
    let mut fragment = false;
    let push = |ip: &mut Ipv6, e: ExtHeader| {
        let _ = ip.ext.try_push(e);
    };
    loop {
        if c.eat("TRUNCATED") {
            push(&mut ip, ExtHeader::Truncated);
            return Ok((ip, false));
        }
        let opt = c.eat("OPT ( ");
        if opt {
            c.flags = c.flags | LogFlags(LogFlags::IPOPT);
        }
        if c.peek("FRAG:") {
            if c.eat("FRAG:TRUNCATED") {
                c.eat(" ");
                push(&mut ip, ExtHeader::FragmentTruncated);
                return Ok((ip, false));
            }
            let offset: u16 = c.num("FRAG:")?;
            let more = c.eat("INCOMPLETE ");
            let id: u32 = c.hex("ID:", "")?;
            fragment |= offset != 0;
            push(&mut ip, ExtHeader::Fragment { offset, more, id });
        } else if opt && c.eat("AH ") {
            if c.eat(")") {
                push(
                    &mut ip,
                    ExtHeader::Ah {
                        spi: None,
                        available: 0,
                    },
                );
                return Ok((ip, false));
            }
            if c.peek("INCOMPLETE [") {
                c.expect("INCOMPLETE [")?;
                let n: u32 = c.word().parse().map_err(|_| ParseError {
                    offset: c.pos,
                    reason: "INCOMPLETE",
                })?;
                c.expect("bytes] )")?;
                push(
                    &mut ip,
                    ExtHeader::Ah {
                        spi: None,
                        available: n,
                    },
                );
                return Ok((ip, false));
            }
            let spi: u32 = c.hex("SPI=", "0x")?;
            push(
                &mut ip,
                ExtHeader::Ah {
                    spi: Some(spi),
                    available: 12,
                },
            );
        } else if opt && c.eat("ESP ") {
            let e = if c.eat(")") {
                ExtHeader::Esp {
                    spi: None,
                    available: 0,
                }
            } else if c.peek("INCOMPLETE [") {
                c.expect("INCOMPLETE [")?;
                let n: u32 = c.word().parse().map_err(|_| ParseError {
                    offset: c.pos,
                    reason: "INCOMPLETE",
                })?;
                c.expect("bytes] )")?;
                ExtHeader::Esp {
                    spi: None,
                    available: n,
                }
            } else {
                let at = c.pos;
                let v = c.rest().split(' ').next().unwrap_or("");
                let spi =
                    u32::from_str_radix(v.trim_start_matches("SPI=0x"), 16).map_err(|_| {
                        ParseError {
                            offset: at,
                            reason: "SPI=",
                        }
                    })?;
                c.pos += v.len();
                c.expect(" )")?;
                ExtHeader::Esp {
                    spi: Some(spi),
                    available: 8,
                }
            };
            push(&mut ip, e);
            ip.protocol = proto::ESP;
            return Ok((ip, false));
        } else if opt && (c.rest().trim_end() == ")" || (nested && c.peek(")]"))) {
            c.eat(")");
            // An option header after a later fragment ends the walk.
            push(&mut ip, ExtHeader::OptionsAfterFragment(proto::DSTOPTS));
            return Ok((ip, false));
        } else if opt {
            // Hop-by-hop, routing and destination options all print as `OPT ( )`.
            push(&mut ip, ExtHeader::DestOpts);
        } else {
            break;
        }
        if opt {
            c.expect(") ")?;
        }
    }
    if c.at_end() || (nested && c.peek("]")) {
        // ESP without the ip-options flag, or options after a fragment: the walk ended unseen.
        push(
            &mut ip,
            ExtHeader::Esp {
                spi: None,
                available: 0,
            },
        );
        ip.protocol = proto::ESP;
        return Ok((ip, false));
    }
    let p = c.field("PROTO=")?;
    let trailer = match p {
        "TCP" => {
            ip.protocol = proto::TCP;
            tcp(c, fragment, &mut ip.transport)?
        }
        "UDP" | "UDPLITE" => {
            ip.protocol = if p == "UDP" {
                proto::UDP
            } else {
                proto::UDPLITE
            };
            udp(c, fragment, &mut ip.transport)?
        }
        "ICMPv6" => {
            ip.protocol = proto::ICMPV6;
            if fragment {
                ip.transport = Transport::Fragment;
                true
            } else if c.peek("INCOMPLETE [") {
                ip.transport = Transport::Incomplete {
                    available: c.incomplete()?,
                };
                false
            } else {
                ip.transport = icmp6(c, nested)?;
                true
            }
        }
        n => {
            let at = c.pos;
            ip.protocol = n.parse().map_err(|_| ParseError {
                offset: at,
                reason: "PROTO=",
            })?;
            ip.transport = if fragment {
                Transport::Fragment
            } else {
                Transport::Other
            };
            true
        }
    };
    ip.next_header = ip
        .ext
        .first()
        .map(|_| proto::HOPOPTS)
        .unwrap_or(ip.protocol);
    Ok((ip, trailer))
}

fn icmp6(c: &mut Cur, nested: bool) -> R<Transport> {
    let mut m = Icmpv6 {
        icmp_type: c.num("TYPE=")?,
        code: c.num("CODE=")?,
        checksum: 0,
        rest: [0; 4],
        available: 8,
        quoted: None,
    };
    match m.icmp_type {
        128 | 129 => {
            let id: u16 = c.num("ID=")?;
            let seq: u16 = c.num("SEQ=")?;
            m.rest[..2].copy_from_slice(&id.to_be_bytes());
            m.rest[2..].copy_from_slice(&seq.to_be_bytes());
        }
        1..=4 => {
            if m.icmp_type == 4 {
                let p: u32 = c.hex("POINTER=", "")?;
                m.rest = p.to_be_bytes();
            }
            if !nested && c.eat("[") {
                if !c.eat("TRUNCATED") {
                    let (q, _) = ipv6(c, true)?;
                    m.quoted = Some(Box::new(q));
                }
                c.expect("] ").or_else(|_| c.expect("]"))?;
            }
            if c.peek("MTU=") {
                let mtu: u32 = c.num("MTU=")?;
                m.rest = mtu.to_be_bytes();
            }
        }
        _ => {}
    }
    Ok(Transport::Icmpv6(m))
}
