//! Arbitrary bytes as a logged packet of each family: decoding, and rendering the kernel LOG
//! line and ulogd2's line from the result, must never panic whatever is cut short or malformed;
//! each line reads back to itself. The bytes as a captured frame never make the pcap reader
//! panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let (family, ethertype) = match sel % 4 {
        0 => (event::family::IPV4, 0x0800),
        1 => (event::family::IPV6, 0x86dd),
        2 => (event::family::ARP, 0x0806),
        _ => (event::family::BRIDGE, u16::from(sel) << 8 | 0x00dd),
    };
    let ev = event::PacketEvent {
        family,
        hw_protocol: ethertype,
        payload_len: payload.len() as u32,
        headers: packet::decode_ethertype(ethertype, payload),
        mark: u32::from(sel),
        ..Default::default()
    };
    // Option decoders walk whatever bytes the header carried.
    if let packet::Network::Ipv4(ip) = &ev.headers.network {
        let _ = ip.decoded_options();
        if let packet::Transport::Tcp(t) = &ip.transport {
            let _ = t.decoded_options();
        }
    }
    let mut out = Vec::new();
    logline::render(&ev, logline::LogFlags(sel & 0x2f), &mut out);
    // What the renderer prints, the parser reads back to the same line.
    let line = String::from_utf8(out).expect("rendering is UTF-8");
    let parsed = logline::parse(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let mut again = Vec::new();
    logline::render(&parsed.event, parsed.flags, &mut again);
    assert_eq!(line.as_bytes(), &again[..]);
    // ulogd2's line of the same record renders, and reads back to itself.
    let mut emu = Vec::new();
    logline::logemu::render(&ev, &mut emu);
    let emu = String::from_utf8(emu).expect("rendering is UTF-8");
    let back = logline::parse_ulogd(&emu).unwrap_or_else(|e| panic!("{e}: {emu:?}"));
    let mut emu2 = Vec::new();
    logline::logemu::render(&back.event, &mut emu2);
    assert_eq!(emu.as_bytes(), &emu2[..], "logemu: {emu:?}");
    // The same bytes as a captured frame of each link type the pcap source reads.
    for lt in [1, 101, 113, 276] {
        if let Some(f) = nflogd::capture::frame(lt, payload) {
            let _ = packet::decode_ethertype(f.ethertype, f.payload);
        }
    }
});
