//! `render` from records decoded from bytes (not from parsed lines, which the round-trip tests
//! cover): each expected text is the kernel's (nf_log_syslog.c) for that packet and those
//! flags, as the kernel-lab test saw it print for the same kind of packet.

use event::{family, Interface, LinkHeader, PacketEvent};
use logline::{render, LogFlags};
use std::sync::Arc;

fn iface(name: &str) -> Option<Interface> {
    Some(Interface {
        index: Some(2),
        name: Arc::from(name),
        hwtype: Some(1),
    })
}

fn ipv4(id: u16, df: bool, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let len = (20 + l4.len()) as u16;
    let mut b = vec![0x45, 0];
    b.extend(len.to_be_bytes());
    b.extend(id.to_be_bytes());
    b.extend(if df { [0x40, 0] } else { [0, 0] });
    b.extend([64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    b.extend(l4);
    b
}

/// A packet received on eth0 at prerouting, with its Ethernet header.
fn received(ethertype: u16, payload: &[u8]) -> PacketEvent {
    let mut e = PacketEvent::with_prefix(Arc::from("DROP "));
    e.family = if ethertype == 0x86dd {
        family::IPV6
    } else {
        family::IPV4
    };
    e.hook = Some(0);
    e.indev = iface("eth0");
    let mut header = arrayvec::ArrayVec::new();
    header
        .try_extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1])
        .unwrap();
    header
        .try_extend_from_slice(&ethertype.to_be_bytes())
        .unwrap();
    e.link = Some(LinkHeader {
        hwtype: Some(1),
        header,
        hwaddr: None,
        vlan: None,
    });
    e.payload_len = payload.len() as u32;
    e.headers = packet::decode_ethertype(ethertype, payload);
    e
}

fn text(e: &PacketEvent, flags: u8) -> String {
    let mut out = Vec::new();
    render(e, LogFlags(flags), &mut out);
    String::from_utf8(out).unwrap()
}

const MAC: &str = "MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00";

#[test]
fn udp_with_and_without_uid_and_mark() {
    let udp = [0, 1, 0, 2, 0, 8, 0, 0];
    let mut e = received(0x0800, &ipv4(7, false, 17, &udp));
    let base = format!("DROP IN=eth0 OUT= {MAC} SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=7 PROTO=UDP SPT=1 DPT=2 LEN=8 ");
    assert_eq!(text(&e, 0), base);
    e.uid = Some(1000);
    e.gid = Some(100);
    e.mark = 0x2a;
    assert_eq!(
        text(&e, 0),
        format!("{base}MARK=0x2a "),
        "UID only with the flag"
    );
    assert_eq!(
        text(&e, LogFlags::UID),
        format!("{base}UID=1000 GID=100 MARK=0x2a ")
    );
}

#[test]
fn tcp_with_sequence_numbers_and_flags() {
    let mut tcp = vec![0x04, 0xd2, 0, 80];
    tcp.extend(100u32.to_be_bytes());
    tcp.extend(200u32.to_be_bytes());
    tcp.extend([0x50, 0x18, 0x10, 0x00, 0, 0, 0, 0]);
    let e = received(0x0800, &ipv4(3, true, 6, &tcp));
    let head = format!("DROP IN=eth0 OUT= {MAC} SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=3 DF PROTO=TCP SPT=1234 DPT=80 ");
    assert_eq!(
        text(&e, 0),
        format!("{head}WINDOW=4096 RES=0x00 ACK PSH URGP=0 ")
    );
    assert_eq!(
        text(&e, LogFlags::TCPSEQ),
        format!("{head}SEQ=100 ACK=200 WINDOW=4096 RES=0x00 ACK PSH URGP=0 ")
    );
}

#[test]
fn icmp_echo_and_a_transport_cut_short() {
    let e = received(0x0800, &ipv4(12, false, 1, &[8, 0, 0, 0, 0, 9, 0, 9]));
    assert!(
        text(&e, 0).ends_with("ID=12 PROTO=ICMP TYPE=8 CODE=0 ID=9 SEQ=9 "),
        "{}",
        text(&e, 0)
    );
    let e = received(0x0800, &ipv4(4, false, 6, &[4, 0x57, 0]));
    assert!(
        text(&e, 0).ends_with("ID=4 PROTO=TCP INCOMPLETE [3 bytes] "),
        "{}",
        text(&e, 0)
    );
}

/// A received packet whose device has no link header still gets an empty `MAC=` (a tun
/// device's lines read `IN=tun0 OUT= MAC= SRC=…`).
#[test]
fn ipv6_addresses_in_full() {
    let mut b = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    b.extend(
        "fd00:200::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    b.extend(
        "fd00:200::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    b.extend([0, 1, 0, 2, 0, 8, 0, 0]);
    let mut e = received(0x86dd, &b);
    e.link = None;
    assert_eq!(
        text(&e, 0),
        "DROP IN=eth0 OUT= MAC= SRC=fd00:0200:0000:0000:0000:0000:0000:0001 DST=fd00:0200:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 "
    );
}

#[test]
fn arp_lines_end_without_a_space() {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend([0xfa, 0x83, 0xf7, 0x3d, 0xea, 0xce, 10, 200, 0, 1]);
    arp.extend([0, 0, 0, 0, 0, 0, 10, 200, 0, 2]);
    let mut e = received(0x0806, &arp);
    e.family = family::ARP;
    e.link = None;
    assert_eq!(
        text(&e, 0),
        "DROP IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=fa:83:f7:3d:ea:ce IPSRC=10.200.0.1 MACDST=00:00:00:00:00:00 IPDST=10.200.0.2"
    );
}
