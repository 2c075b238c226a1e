//! Malformed and unusual packets at the edges of what the decoder reads: it never panics, and
//! says what it found (a truncated flag, an incomplete transport) instead of reading past what
//! was captured.

use packet::{decode, Network, Transport};

/// An IPv4 header of 20 bytes with the given IHL, total length and protocol.
fn ipv4(ihl: u8, total_len: u16, protocol: u8) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    b[0] = 0x40 | ihl;
    b[2..4].copy_from_slice(&total_len.to_be_bytes());
    b[8] = 64;
    b[9] = protocol;
    b[12..16].copy_from_slice(&[10, 0, 0, 1]);
    b[16..20].copy_from_slice(&[10, 0, 0, 2]);
    b
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&8u16.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u
}

#[test]
fn total_length_against_what_was_captured() {
    // More announced than captured (a snaplen): decoded as far as it goes, flagged.
    let mut p = ipv4(5, 1500, 17);
    p.extend(udp(1000, 53));
    let h = decode(&p);
    assert!(h.truncated);
    assert_eq!(h.ports(), Some((1000, 53)));
    // Exactly what was announced: not truncated.
    let mut p = ipv4(5, 28, 17);
    p.extend(udp(1000, 53));
    assert!(!decode(&p).truncated);
    // The transport header itself cut short: incomplete, with what was there.
    let mut p = ipv4(5, 28, 17);
    p.extend(&udp(1000, 53)[..5]);
    assert_eq!(
        decode(&p).transport(),
        Some(&Transport::Incomplete { available: 5 })
    );
}

#[test]
fn an_ihl_below_five_or_past_the_capture_reads_no_transport_from_the_ip_header() {
    for ihl in [0u8, 3, 4] {
        let mut p = ipv4(ihl, 28, 17);
        p.extend(udp(1000, 53));
        let h = decode(&p);
        assert!(matches!(h.network, Network::Ipv4(_)), "ihl {ihl}");
        // Never ports read from inside the 20-byte header.
        assert_ne!(h.ports(), Some((0x0a00, 0x0001)), "ihl {ihl}");
    }
    // IHL 15 (60 bytes of header) on a 28-byte capture: no transport.
    let mut p = ipv4(15, 28, 17);
    p.extend(udp(1000, 53));
    let h = decode(&p);
    assert!(h.ports().is_none());
}

#[test]
fn an_icmp_error_quoted_inside_an_icmp_error_is_not_followed_further() {
    // Destination unreachable quoting a time-exceeded that quotes a UDP packet.
    let inner_udp = {
        let mut p = ipv4(5, 28, 17);
        p.extend(udp(1, 2));
        p
    };
    let icmp = |t: u8, quoted: &[u8]| {
        let mut i = vec![t, 0, 0, 0, 0, 0, 0, 0];
        i.extend_from_slice(quoted);
        i
    };
    let mut middle = ipv4(5, (20 + 8 + inner_udp.len()) as u16, 1);
    middle.extend(icmp(11, &inner_udp));
    let mut outer = ipv4(5, (20 + 8 + middle.len()) as u16, 1);
    outer.extend(icmp(3, &middle));
    let h = decode(&outer);
    let Some(Transport::Icmp(out)) = h.transport() else {
        panic!("the outer ICMP error is decoded: {h:?}")
    };
    assert_eq!(out.icmp_type, 3);
    // The quoted packet is decoded one level deep, as the kernel prints it: its own ICMP error
    // header is read, what that one quotes is not.
    let quoted = out.quoted.as_ref().expect("the quoted packet");
    let Transport::Icmp(inner) = &quoted.transport else {
        panic!("the quoted ICMP header: {quoted:?}")
    };
    assert_eq!(inner.icmp_type, 11);
    assert!(inner.quoted.is_none());
}

#[test]
fn ipv6_extension_headers_running_past_the_end() {
    // IPv6 header announcing a hop-by-hop header (0) whose length runs past the capture.
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&64u16.to_be_bytes());
    p[6] = 0; // next header: hop-by-hop
    p[7] = 64;
    p[8] = 0xfd;
    p[24] = 0xfd;
    p.extend_from_slice(&[17, 200, 0, 0, 0, 0]); // next UDP, length (200+1)*8: past the end
    let h = decode(&p);
    assert!(matches!(h.network, Network::Ipv6(_)));
    assert!(
        h.ports().is_none(),
        "no UDP ports read past the capture: {h:?}"
    );
}

fn tag(tpid: u16, tci: u16) -> Vec<u8> {
    [tpid.to_be_bytes(), tci.to_be_bytes()].concat()
}

#[test]
fn qinq_tags_in_the_ethernet_header_and_in_the_payload() {
    use packet::ethernet;
    // Outer 802.1ad (S-tag 100), inner 802.1Q (C-tag 7, priority 5), then IPv4.
    let mut frame = vec![0xaa; 6];
    frame.extend([0xbb; 6]);
    frame.extend(tag(0x88a8, 100));
    frame.extend(tag(0x8100, (5 << 13) | 7));
    frame.extend(0x0800u16.to_be_bytes());
    let e = ethernet::parse(&frame).unwrap();
    let ids: Vec<(u16, u16, u8)> = e
        .vlans
        .iter()
        .flatten()
        .map(|v| (v.tpid, v.id(), v.priority()))
        .collect();
    assert_eq!(ids, [(0x88a8, 100, 0), (0x8100, 7, 5)]);
    assert_eq!((e.ethertype, e.header_len), (0x0800, 22));
    // A third tag is not taken: its TPID is the ethertype left.
    let mut three = frame[..12].to_vec();
    three.extend(tag(0x88a8, 1));
    three.extend(tag(0x8100, 2));
    three.extend(tag(0x8100, 3));
    three.extend(0x0800u16.to_be_bytes());
    let e = ethernet::parse(&three).unwrap();
    assert_eq!((e.ethertype, e.header_len), (0x8100, 22));
    // A tag cut short ends the header where the bytes end.
    let e = ethernet::parse(&frame[..16]).unwrap();
    assert_eq!(
        (e.vlans, e.ethertype, e.header_len),
        ([None, None], 0x88a8, 14)
    );
    assert!(ethernet::parse(&frame[..13]).is_none());

    // On receive the kernel takes the outer tag out; the inner one starts the payload.
    let mut payload = ((5 << 13) | 7u16).to_be_bytes().to_vec();
    payload.extend(0x0800u16.to_be_bytes());
    payload.extend(ipv4(5, 28, 17));
    payload.extend(udp(1000, 2000));
    let h = packet::decode_ethertype(0x8100, &payload);
    assert_eq!(h.vlans[0].map(|v| (v.id(), v.priority())), Some((7, 5)));
    assert_eq!(h.ports(), Some((1000, 2000)));
    // Two tags in the payload, then an ARP.
    let mut two = [
        100u16.to_be_bytes(),
        0x8100u16.to_be_bytes(),
        9u16.to_be_bytes(),
        0x0806u16.to_be_bytes(),
    ]
    .concat();
    two.extend(arp(1, 0x0800, 6, 4, 28));
    let h = packet::decode_ethertype(0x88a8, &two);
    let ids: Vec<u16> = h.vlans.iter().flatten().map(|v| v.id()).collect();
    assert_eq!(ids, [100, 9]);
    assert!(matches!(h.network, Network::Arp(a) if a.addrs.is_some()));
    // A tag with nothing after it: truncated, no network header read.
    let h = packet::decode_ethertype(0x8100, &[0, 7]);
    assert_eq!(h.vlans, [None, None]);
    assert!(matches!(h.network, Network::Other { ethertype: 0x8100 }));
}

/// An ARP packet: hardware type, protocol type, address lengths, and `len` bytes in all.
fn arp(htype: u16, ptype: u16, hlen: u8, plen: u8, len: usize) -> Vec<u8> {
    let mut b = [htype.to_be_bytes(), ptype.to_be_bytes()].concat();
    b.extend([hlen, plen]);
    b.extend(1u16.to_be_bytes());
    b.extend((0..len.saturating_sub(8)).map(|i| i as u8));
    b.truncate(len);
    b
}

#[test]
fn arp_with_other_address_lengths_keeps_the_header_only() {
    use packet::arp;
    // Ethernet/IPv4: addresses read.
    let a = arp::parse(&arp(1, 0x0800, 6, 4, 28)).unwrap();
    assert!(a.is_ether_ipv4() && a.addrs.is_some());
    assert_eq!(a.available_after_header, 20);
    // IEEE 802 hardware, 8-byte hardware addresses (FireWire/InfiniBand style), IPv6-length
    // protocol addresses: the header is kept, no addresses are guessed.
    for (htype, hlen, plen, len) in [
        (6, 6, 4, 28),
        (1, 8, 4, 32),
        (24, 16, 4, 48),
        (1, 6, 16, 52),
        (32, 20, 4, 56),
    ] {
        let a = arp::parse(&arp(htype, 0x0800, hlen, plen, len)).unwrap();
        assert!(
            !a.is_ether_ipv4() && a.addrs.is_none(),
            "htype {htype} hlen {hlen} plen {plen}"
        );
        assert_eq!((a.htype, a.hlen, a.plen, a.opcode), (htype, hlen, plen, 1));
        assert_eq!(a.available_after_header as usize, len - 8);
        let h = packet::decode_ethertype(0x0806, &arp(htype, 0x0800, hlen, plen, len));
        assert!(
            !h.truncated,
            "another kind of ARP is not a cut Ethernet one"
        );
    }
    // Ethernet/IPv4 cut short: header only, and flagged.
    for len in [8, 12, 27] {
        let a = arp::parse(&arp(1, 0x0800, 6, 4, len)).unwrap();
        assert!(a.addrs.is_none());
        assert!(packet::decode_ethertype(0x0806, &arp(1, 0x0800, 6, 4, len)).truncated);
    }
    assert!(arp::parse(&arp(1, 0x0800, 6, 4, 7)).is_none());
}

#[test]
fn gre_flag_variants_find_the_key_where_it_is() {
    use packet::gre;
    let gre = |flags: u16, words: &[u32]| {
        let mut b = [flags.to_be_bytes(), 0x0800u16.to_be_bytes()].concat();
        for w in words {
            b.extend(w.to_be_bytes());
        }
        b
    };
    const C: u16 = 0x8000;
    const K: u16 = 0x2000;
    const S: u16 = 0x1000;
    // No options.
    let g = gre::parse(&gre(0, &[])).unwrap();
    assert_eq!((g.key, g.version(), g.protocol), (None, 0, 0x0800));
    // Key alone; key after the checksum word; key before the sequence number.
    assert_eq!(gre::parse(&gre(K, &[0x42])).unwrap().key, Some(0x42));
    assert_eq!(
        gre::parse(&gre(C | K, &[0xdead_0000, 0x43])).unwrap().key,
        Some(0x43)
    );
    assert_eq!(gre::parse(&gre(K | S, &[0x44, 7])).unwrap().key, Some(0x44));
    assert_eq!(
        gre::parse(&gre(C | K | S, &[0, 0x45, 7])).unwrap().key,
        Some(0x45)
    );
    // Checksum or sequence alone: no key.
    assert_eq!(gre::parse(&gre(C | S, &[0, 7])).unwrap().key, None);
    // Version 1 (PPTP): K always set, the key word is payload length and call id.
    let g = gre::parse(&[0x20, 0x01, 0x88, 0x0b, 0x00, 0x10, 0x12, 0x34]).unwrap();
    assert_eq!(
        (g.version(), g.protocol, g.key),
        (1, 0x880b, Some(0x0010_1234))
    );
    // A key announced and cut off: none read, nothing past the end.
    assert_eq!(gre::parse(&gre(C | K, &[0])).unwrap().key, None);
    assert!(gre::parse(&[0x20, 0x00, 0x08]).is_none());
}
