//! Whole lines that are not a well-formed LOG line: each is refused with the reason and the
//! byte where the parser stopped, never taken half-read; and lines without netfilter fields
//! are told apart from broken ones.

const V4: &str = "IN=eth0 OUT= MAC=b6:2a:bb:9c:87:e1:06:f7:19:19:b5:4a:08:00 SRC=192.0.2.1 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1234 DF ";

/// (line, reason, the text where the parser stopped).
fn cases() -> Vec<(String, &'static str, &'static str)> {
    vec![
        ("".into(), "no IN=… OUT= fields", ""),
        ("sshd[1]: Accepted publickey for root".into(), "no IN=… OUT= fields", ""),
        ("DROP IN=eth0 SRC=192.0.2.1".into(), "no IN=… OUT= fields", ""),
        ("DROP IN=eth0 OUT= MAC=zz SRC=192.0.2.1".into(), "MAC=", "MAC=zz"),
        ("DROP IN=eth0 OUT= SRC=192.0.2.999 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ".into(), "SRC=", "SRC=192.0.2.999"),
        ("DROP IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.7 LEN=forty TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ".into(), "LEN=", "LEN=forty"),
        (format!("DROP {V4}PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 garbage"), "unexpected text after the packet", "garbage"),
        (format!("DROP {V4}PROTO=6 SPT=1 DPT=2 "), "PROTO= (a number the kernel names)", "SPT=1"),
        (format!("DROP {V4}PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 OPT (0204"), "OPT (", "0204"),
        (format!("DROP {V4}PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 OPT (02GG) "), "OPT bytes", "02GG"),
        (format!("DROP {V4}PROTO=UDP INCOMPLETE [x bytes] "), "INCOMPLETE count", "x bytes"),
        (format!("DROP {V4}FRAG:abc PROTO=UDP "), "FRAG:", "FRAG:abc"),
        (format!("DROP {V4}PROTO=ESP SPI=zz "), "SPI=", "SPI=zz"),
        (format!("DROP {V4}PROTO=TCP SPT=1 DPT=99999 WINDOW=1 RES=0x00 SYN URGP=0 "), "DPT=", "DPT=99999"),
        (format!("DROP {V4}PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 LEN=20 "), "TOS=", ""),
        ("DROP IN=eth0 OUT= MACSRC=zz MACDST=00:00:00:00:00:00 MACPROTO=0800 SRC=192.0.2.1".into(), "MACSRC=", "MACSRC=zz"),
        ("DROP IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=aa:bb:cc:dd:ee:ff IPSRC=10.0.0.1 MACDST=00:00:00:00:00:00 IPDST=nonsense".into(), "IPDST=", "IPDST=nonsense"),
        ("DROP IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=40 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 trailing".into(), "unexpected text after the packet", "trailing"),
    ]
}

#[test]
fn malformed_lines_are_refused_with_their_reason_and_place() {
    for (line, reason, at) in cases() {
        let e = logline::parse(&line).expect_err(&line);
        assert_eq!(e.reason, reason, "{line}");
        assert!(
            line[e.offset..].starts_with(at),
            "{line}: stopped at byte {}: {:?}",
            e.offset,
            &line[e.offset..]
        );
        assert_eq!(e.is_not_netfilter(), reason.starts_with("no IN="), "{line}");
    }
}

/// The kernel prints addresses in full; a compressed IPv6 address (from another tool's
/// rendering) is still read.
#[test]
fn compressed_ipv6_addresses_are_read() {
    let p = logline::parse("DROP IN=eth0 OUT= SRC=2001:db8::1 DST=2001:db8::2 LEN=40 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 ").unwrap();
    assert_eq!(p.event.headers.ports(), Some((1, 2)));
}
