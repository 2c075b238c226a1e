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
