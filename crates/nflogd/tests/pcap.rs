//! The pcap sink and source against tcpdump. One nft rule logs every packet entering `b` to
//! NFLOG; nflogd writes them as captures (Linux cooked v2, and ulogd2's raw IP) while tcpdump
//! captures the same interface. Then the captures are replayed through nflogd's pcap source.
//! - tcpdump reads both captures, one packet per NFLOG record;
//! - each packet's bytes equal the frame tcpdump captured (less its Ethernet header);
//! - replaying tcpdump's capture and nflogd's own gives the NFLOG records' fields back.

mod lab;

use lab::SpawnOwned;
use lab::{json_lines, wait_lines, Lab, B4};
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// (link type, each packet's bytes) of a capture.
fn packets(path: &Path) -> (u32, Vec<Vec<u8>>) {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lt = u32::from(r.header().datalink);
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    (lt, out)
}

/// `tcpdump -r` reads the file; returns how many packets it printed.
fn tcpdump_reads(path: &Path) -> usize {
    let out = std::process::Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The fields of a ulogd-schema record that come from the packet itself (layers 3 and 4).
fn packet_fields(r: &Value) -> String {
    let m: BTreeMap<&String, &Value> = r
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            [
                "ip.", "ip6.", "tcp.", "udp.", "icmp.", "icmpv6.", "sctp.", "ahesp.",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || ["src_ip", "dest_ip", "src_port", "dest_port", "raw.pktlen"]
                    .contains(&k.as_str())
        })
        .collect();
    serde_json::to_string(&m).unwrap()
}

fn replay(lab: &Lab, capture: &Path, out: &Path, n: usize) -> Vec<Value> {
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.cap]\ntype = \"pcap\"\npath = \"{}\"\nprefix = \"REPLAY \"\n\
             [sinks.u]\ntype = \"file\"\ninputs = [\"cap\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            capture.display(),
            out.display()
        ),
    );
    let lines = wait_lines(out, n, Duration::from_secs(20));
    d.stop();
    json_lines(&lines)
}

#[test]
fn pcap_sink_and_source_agree_with_tcpdump() {
    if !lab::available() {
        return;
    }
    if !lab::have("tcpdump") {
        lab::skip("tcpdump is not installed");
        return;
    }
    let lab = Lab::new();
    let wire = lab.path("wire.pcap");
    let dump = lab::Daemon {
        child: Some(
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &lab.b, "tcpdump", "-i", "vb", "-Q", "in", "-n",
                ])
                .args(["-U", "--immediate-mode", "-w"])
                .arg(&wire)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(lab.path("tcpdump.err")).unwrap())
                .spawn_owned()
                .unwrap(),
        ),
        log: lab.path("tcpdump.err"),
    };
    dump.wait_log("listening on vb", Duration::from_secs(10));
    let (sll2, raw, json) = (
        lab.path("nflogd.pcap"),
        lab.path("nflogd-raw.pcap"),
        lab.path("nflog.json"),
    );
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [31]\nsequence = false\n\
             [sinks.cap]\ntype = \"pcap\"\ninputs = [\"fw\"]\npath = \"{}\"\n\
             [sinks.raw]\ntype = \"pcap\"\ninputs = [\"fw\"]\npath = \"{}\"\nlinktype = \"raw\"\n\
             [sinks.u]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            sll2.display(),
            raw.display(),
            json.display()
        ),
    );
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain pre {
    type filter hook prerouting priority -450;
    iifname "vb" meta nfproto ipv4 log group 31 prefix "IN "
    iifname "vb" ip6 saddr fd00:200::/64 log group 31 prefix "IN "
  }
}"#,
    );
    lab.craft();
    lab.traffic();
    // The last packet: once nflogd has logged it, tcpdump has captured everything before it.
    lab.exec(
        &lab.a,
        &format!("bash -c \"echo NFLOGD-PCAP-END >/dev/udp/{B4}/9\""),
    );
    let records = json_lines(&wait_lines_until(&json, "\"dest_port\": 9,"));
    d.stop();
    std::thread::sleep(Duration::from_millis(300));
    drop(dump);
    let n = records.len();
    assert!(n > 40, "only {n} packets logged");

    // tcpdump reads both captures, one packet per record.
    assert_eq!(
        tcpdump_reads(&sll2),
        n,
        "packets tcpdump read in the cooked capture"
    );
    let (lt, ours) = packets(&sll2);
    assert_eq!(lt, 276);
    let (lt_raw, ours_raw) = packets(&raw);
    assert_eq!(lt_raw, 101);
    assert_eq!(tcpdump_reads(&raw), n);

    // The bytes: each packet is a frame tcpdump captured, without its Ethernet header.
    let (lt_wire, frames) = packets(&wire);
    assert_eq!(lt_wire, 1);
    let mut on_wire: BTreeMap<&[u8], usize> = BTreeMap::new();
    for f in &frames {
        *on_wire.entry(&f[14..]).or_default() += 1;
    }
    for (i, (p, r)) in ours.iter().zip(&ours_raw).enumerate() {
        assert_eq!(
            &p[20..],
            &r[..],
            "#{i}: the two captures hold different bytes"
        );
        // The cooked header: the ethertype, the interface and the sender's MAC.
        let ethertype = u16::from_be_bytes([p[0], p[1]]);
        assert!(
            ethertype == 0x0800 || ethertype == 0x86dd,
            "#{i}: {ethertype:04x}"
        );
        assert_eq!(p[11], 6, "#{i}: link-layer address length");
        match on_wire.get_mut(&p[20..]) {
            Some(k) if *k > 0 => *k -= 1,
            _ => panic!("#{i}: a packet tcpdump did not capture: {:02x?}", &p[20..]),
        }
        // (Crafted frames may share their bytes and differ in their MAC: any of them will do.)
        assert!(
            frames
                .iter()
                .any(|f| f[14..] == p[20..] && f[6..12] == p[12..18]),
            "#{i}: no frame with these bytes came from MAC {:02x?}",
            &p[12..18]
        );
    }

    // Replayed: tcpdump's Ethernet capture and nflogd's cooked one give the NFLOG records'
    // packet fields back.
    let want: Vec<String> = records.iter().map(packet_fields).collect();
    for (name, cap) in [("nflogd's capture", &sll2), ("tcpdump's capture", &wire)] {
        let out = lab.path(&format!(
            "replay-{}.json",
            cap.file_name().unwrap().to_string_lossy()
        ));
        let expect = if cap == &wire { frames.len() } else { n };
        let got = replay(&lab, cap, &out, expect);
        assert_eq!(got.len(), expect, "{name}: records replayed");
        assert!(
            got.iter().all(|r| r["oob.prefix"] == "REPLAY "),
            "{name}: prefix"
        );
        let mut left: BTreeMap<String, usize> = BTreeMap::new();
        for g in &got {
            *left.entry(packet_fields(g)).or_default() += 1;
        }
        for (i, w) in want.iter().enumerate() {
            match left.get_mut(w) {
                Some(k) if *k > 0 => *k -= 1,
                _ => panic!("{name}: NFLOG record #{i} not replayed with its fields: {w}"),
            }
        }
        if cap == &sll2 {
            // Cooked captures keep the interface and the sender's MAC.
            for (g, r) in got.iter().zip(&records) {
                assert_eq!(g.get("mac.saddr.str"), r.get("mac.saddr.str"));
                assert_eq!(g.get("oob.ifindex_in"), r.get("oob.ifindex_in"));
            }
        }
    }
}

/// The lines of `path` once one of them contains `needle`.
fn wait_lines_until(path: &Path, needle: &str) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never got {needle:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
