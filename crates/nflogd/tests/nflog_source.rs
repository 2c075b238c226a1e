//! The nflog source and the ECS schema on real kernel traffic: every protocol the decoder
//! knows, read from another namespace by path, loss under overload counted exactly, SIGHUP.

mod lab;

use lab::SpawnOwned;

use lab::{json_lines, wait_lines, Lab, B4};
use serde_json::Value;
use std::time::Duration;

fn find(recs: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    recs.iter()
        .find(|r| pred(r))
        .unwrap_or_else(|| panic!("no matching record among {}", recs.len()))
}

fn ipid(r: &Value) -> Option<u64> {
    if r["network"]["type"] == "ipv4" {
        r["iptables"]["id"].as_u64()
    } else {
        None
    }
}

#[test]
fn ecs_records_carry_every_protocol() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain pre {
    type filter hook prerouting priority -450;
    iifname "vb" ip saddr 10.200.0.1 log group 3 prefix "IPTables/Dropped: "
    iifname "vb" ip6 saddr fd00:200::1 log group 3 prefix "IPTABLES: ACCEPT "
  }
}"#,
    );
    let out = lab.path("ecs.json");
    // nflogd runs in the root namespace and reads the lab's groups through `netns`.
    let cfg = lab.path("ecs.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [3]\nnetns = \"/run/netns/{}\"\n[sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\nschema = \"ecs\"\n",
            lab.b,
            out.display()
        ),
    )
    .unwrap();
    let log = lab.path("root-nflogd.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn_owned()
        .unwrap();
    let d = lab::Daemon {
        child: Some(child),
        log,
    };
    d.wait_log("nflogd running", Duration::from_secs(10));
    lab.craft();
    let recs = json_lines(&wait_lines(&out, 49, Duration::from_secs(10)));
    lab::ecs::assert_conforms(&recs);
    d.stop();

    // Every record names the rule, the verdict and the interface.
    for r in &recs {
        assert_eq!(r["observer"]["ingress"]["interface"]["name"], "vb", "{r}");
        assert!(r["@timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let syn = find(&recs, |r| ipid(r) == Some(1));
    assert_eq!(syn["event"]["action"], "drop");
    assert_eq!(
        syn["event"]["type"],
        serde_json::json!(["connection", "denied"])
    );
    assert_eq!(syn["event"]["outcome"], "failure");
    assert_eq!(syn["rule"]["name"], "IPTables/Dropped:");
    assert_eq!(syn["network"]["transport"], "tcp");
    assert_eq!(syn["network"]["iana_number"], "6");
    assert_eq!(syn["source"]["ip"], "10.200.0.1");
    assert_eq!(syn["destination"]["ip"], B4);
    assert_eq!(
        (
            syn["source"]["port"].as_u64(),
            syn["destination"]["port"].as_u64()
        ),
        (Some(1111), Some(22))
    );
    assert!(syn["source"]["mac"].as_str().unwrap().contains('-'));
    assert_eq!(syn["iptables"]["ttl"], 99);
    assert_eq!(syn["iptables"]["tcp"]["flags"], serde_json::json!(["SYN"]));
    assert_eq!(syn["iptables"]["tcp"]["mss"], 1460);
    assert_eq!(syn["iptables"]["tcp"]["window_scale"], 7);
    assert_eq!(syn["iptables"]["tcp"]["timestamp"], 12345);
    let all = find(&recs, |r| ipid(r) == Some(2));
    assert_eq!(
        all["iptables"]["tcp"]["flags"],
        serde_json::json!(["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"])
    );
    assert_eq!(all["iptables"]["tcp"]["reserved_bits"], 0x38);
    assert_eq!(all["iptables"]["tcp"]["urgent_pointer"], 7);
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(4))["iptables"]["incomplete_bytes"],
        3
    );
    let lite = find(&recs, |r| ipid(r) == Some(8));
    assert_eq!(
        (
            lite["network"]["transport"].as_str(),
            lite["destination"]["port"].as_u64()
        ),
        (Some("udplite"), Some(4444))
    );
    assert!(
        find(&recs, |r| ipid(r) == Some(9))["iptables"]["ip_options"]
            .as_str()
            .unwrap()
            .starts_with("07"),
        "record-route option"
    );
    // IPv4 options decoded into fields, TCP SACK blocks.
    let ipt = |id| &find(&recs, |r| ipid(r) == Some(id))["iptables"];
    assert_eq!(ipt(9)["ip_option_names"], serde_json::json!(["RR"]));
    assert_eq!(ipt(32)["ip_option_names"], serde_json::json!(["RTRALT"]));
    assert_eq!(ipt(32)["ip_router_alert"], 0);
    assert_eq!(
        ipt(33)["ip_loose_source_route"],
        serde_json::json!(["10.200.0.7", "10.200.0.8"])
    );
    assert_eq!(ipt(33)["ip_source_route_passed"], 0);
    assert_eq!(ipt(34)["ip_option_names"], serde_json::json!(["TS"]));
    assert_eq!(ipt(34)["ip_timestamps"], serde_json::json!([1000, 2000]));
    assert_eq!(
        ipt(35)["tcp"]["sack"],
        serde_json::json!([{"left": 100, "right": 200}, {"left": 300, "right": 400}])
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(10))["iptables"]["fragment_flags"],
        serde_json::json!(["CE"])
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(11))["iptables"]["tos"],
        0x18
    );
    // Three fragments: ports only on the first, offsets in 8-byte units.
    let frags: Vec<_> = recs.iter().filter(|r| ipid(r) == Some(777)).collect();
    assert_eq!(frags.len(), 3);
    assert_eq!(frags[0]["destination"]["port"], 9999);
    assert_eq!(frags[1]["iptables"]["fragment_offset"], 185);
    assert!(frags[1]["destination"]["port"].is_null() && frags[2]["destination"]["port"].is_null());
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(13))["iptables"]["icmp"],
        serde_json::json!({"type": 3, "code": 3})
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(14))["iptables"]["icmp"]["mtu"],
        1280
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(16))["iptables"]["icmp"]["redirect"],
        "10.200.0.3"
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(17))["iptables"]["icmp"]["parameter"],
        20
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(25))["iptables"]["spi"],
        0x1234
    );
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(26))["iptables"]["spi"],
        0xdeadbeefu32
    );
    let sctp = find(&recs, |r| ipid(r) == Some(27));
    assert_eq!(
        (
            sctp["network"]["transport"].as_str(),
            sctp["source"]["port"].as_u64()
        ),
        (Some("sctp"), Some(3868))
    );
    assert_eq!(sctp["iptables"]["sctp"]["verification_tag"], 0xaabbccddu32);
    assert_eq!(
        find(&recs, |r| ipid(r) == Some(28))["iptables"]["gre"]["key"],
        0x42
    );
    let other = find(&recs, |r| ipid(r) == Some(29));
    assert_eq!(
        (
            other["network"]["iana_number"].as_str(),
            other["network"]["transport"].as_str()
        ),
        (Some("253"), None)
    );

    let v6: Vec<_> = recs
        .iter()
        .filter(|r| r["network"]["type"] == "ipv6")
        .collect();
    assert!(v6
        .iter()
        .all(|r| r["event"]["action"] == "accept" && r["event"]["outcome"] == "success"));
    let tc = find(&recs, |r| r["iptables"]["flow_label"] == 0x12345);
    assert_eq!(
        (
            tc["iptables"]["tos"].as_u64(),
            tc["destination"]["port"].as_u64()
        ),
        (Some(0xb8), Some(22))
    );
    let echo = find(&recs, |r| {
        r["network"]["transport"] == "ipv6-icmp" && r["iptables"]["icmp"]["id"] == 77
    });
    assert_eq!(echo["iptables"]["icmp"]["seq"], 3);
    assert!(
        v6.iter()
            .any(|r| r["network"]["transport"] == "tcp" && r["destination"]["port"] == 2),
        "TCP after extension headers"
    );
    let f6: Vec<_> = v6
        .iter()
        .filter(|r| r["iptables"]["fragment_id"] == 0xabcdef01u32)
        .collect();
    assert_eq!(f6.len(), 2);
    assert_eq!(f6[0]["destination"]["port"], 4001);
    assert_eq!(f6[1]["iptables"]["fragment_offset"], 1232);
    assert!(
        v6.iter().any(|r| r["iptables"]["spi"] == 0x2002),
        "ESP over IPv6"
    );
    assert!(
        v6.iter().any(|r| r["iptables"]["ah_spi"] == 0x1001
            && r["destination"]["port"] == 4
            && r["network"]["transport"] == "tcp"),
        "TCP after AH: {v6:#?}"
    );
    assert!(v6
        .iter()
        .any(|r| r["iptables"]["icmp"]["type"] == 2 && r["iptables"]["icmp"]["mtu"] == 1280));
}

#[test]
fn kernel_loss_is_counted_exactly_and_survived() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    udp dport 7000 counter log group 4 prefix "burst "
  }
}"#,
    );
    let out = lab.path("burst.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A deliberately small buffer and no batching, so the burst overruns the socket.
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\nmetrics_address = \"127.0.0.1:{port}\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [4]\nqthreshold = 1\nsocket_buffer = \"4KiB\"\nsocket_buffer_max = \"4KiB\"\n[sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            out.display()
        ),
    );
    lab::udp_burst(&lab.a, B4, 7000, 30_000);
    std::thread::sleep(Duration::from_millis(500));
    // Still alive and reading after the overrun.
    lab::udp_burst(&lab.a, B4, 7000, 5);
    std::thread::sleep(Duration::from_millis(500));
    let matched = lab::nft_counter(&lab.b);
    // The same counters on the Prometheus endpoint (nflogd runs in the lab namespace).
    let metrics = lab::in_netns(&lab.b, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    let log = d.stop();
    let lines = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    let received = lab::stat(&log, "source.fw", "received");
    let lost = lab::stat(&log, "source.fw", "kernel_lost");
    let overruns = lab::stat(&log, "source.fw", "overruns");
    assert!(
        overruns > 0 && lost > 0,
        "the burst did not overrun the socket (received {received}, lost {lost}): {log}"
    );
    assert_eq!(received, lines, "every received event was written");
    assert_eq!(
        received + lost,
        matched,
        "received + kernel_lost must equal what the rule logged"
    );
    assert!(log.contains("socket overrun"), "{log}");
    let scraped = metrics
        .lines()
        .find(|l| {
            l.starts_with("nflogd_kernel_lost_total{component_kind=\"source\",component=\"fw\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(scraped, Some(lost), "kernel_lost on /metrics:\n{metrics}");
}

#[test]
fn sighup_reopens_the_output_file() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(&lab.b, "table inet lab {\n chain in {\n type filter hook input priority 0;\n udp dport 7001 log group 5\n }\n}");
    let out = lab.path("rotate.json");
    let d = lab.nflogd(
        &lab.b,
        &format!("[sources.fw]\ntype = \"nflog\"\ngroups = [5]\n[sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\n", out.display()),
    );
    lab::udp_burst(&lab.a, B4, 7001, 3);
    assert_eq!(wait_lines(&out, 3, Duration::from_secs(5)).len(), 3);
    let rotated = lab.path("rotate.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("SIGHUP", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(400));
    lab::udp_burst(&lab.a, B4, 7001, 2);
    assert_eq!(
        wait_lines(&out, 2, Duration::from_secs(5)).len(),
        2,
        "new file after SIGHUP"
    );
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        3,
        "rotated file untouched"
    );
    d.stop();
}

#[test]
fn a_group_already_bound_is_a_clear_start_error() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    let cfg = "[sources.fw]\ntype = \"nflog\"\ngroups = [6]\n[sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"-\"\n";
    let d = lab.nflogd(&lab.b, cfg);
    let f = lab.path("second.toml");
    std::fs::write(&f, cfg).unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.b,
            env!("CARGO_BIN_EXE_nflogd"),
            "run",
            "--config",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NFLOG group 6 is already bound"), "{err}");
    d.stop();
}

/// What tcpdump captured on the same interface, each frame decoded by scapy.
fn captured(pcap: &std::path::Path) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/pcap2json.py");
    let out = lab::sh(&format!(
        "PYTHONPATH={} /usr/bin/python3 {} {}",
        lab::PYTHON_LIBS,
        script.display(),
        pcap.display()
    ));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ecs_mac(m: &Value) -> String {
    m.as_str().unwrap().to_uppercase().replace(':', "-")
}

/// ARP (the arp family's input hook) and every frame of the netdev ingress hook, tagged
/// 802.1Q, QinQ or not, checked field by field against tcpdump's capture of the same
/// interface: ulogd2 decodes neither family, so the reference is the wire itself.
#[test]
fn arp_and_netdev_records_match_what_tcpdump_captured() {
    if !lab::available() {
        return;
    }
    if !lab::have("tcpdump") {
        lab::skip("tcpdump is not installed");
        return;
    }
    let lab = Lab::new();
    let pcap = lab.path("vb.pcap");
    let dump = lab::Daemon {
        child: Some(
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &lab.b, "tcpdump", "-i", "vb", "-Q", "in", "-n", "-U",
                ])
                .args(["--immediate-mode", "-w"])
                .arg(&pcap)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(lab.path("tcpdump.err")).unwrap())
                .spawn_owned()
                .unwrap(),
        ),
        log: lab.path("tcpdump.err"),
    };
    dump.wait_log("listening on vb", Duration::from_secs(10));
    let (ecs, ulogd) = (lab.path("l2.ecs.json"), lab.path("l2.ulogd.json"));
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [21]\n\
             [sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\nschema = \"ecs\"\n\
             [sinks.u]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            ecs.display(),
            ulogd.display()
        ),
    );
    // The rules last, once tcpdump and nflogd are both reading, then a first frame: both sides
    // are compared from it on (tcpdump saw the namespace's chatter before the rules too).
    lab.nft(
        &lab.b,
        r#"table arp lab {
  chain in {
    type filter hook input priority 0;
    log group 21 prefix "ARP-IN "
  }
}
table netdev lab {
  chain ing {
    type filter hook ingress device "vb" priority 0;
    log group 21 prefix "ING "
  }
}"#,
    );
    lab.exec(
        &lab.a,
        &format!("bash -c \"echo NFLOGD-L2-START >/dev/udp/{B4}/7920\""),
    );
    lab.craft();
    lab.traffic();
    // An ARP reply coming in: `b` asks for `a`'s address afresh.
    lab.exec(
        &lab.b,
        "ip neigh flush dev vb && ping -c1 -W1 10.200.0.1 >/dev/null",
    );
    // The last frame: once nflogd has logged it, tcpdump has captured everything before it.
    lab.exec(
        &lab.a,
        &format!("bash -c \"echo NFLOGD-L2-END >/dev/udp/{B4}/9\""),
    );
    let ends = |p: &std::path::Path| {
        std::fs::read(p).is_ok_and(|b| b.windows(13).any(|w| w == b"NFLOGD-L2-END"))
    };
    let start = std::time::Instant::now();
    while !(ends(&pcap)
        && std::fs::read_to_string(&ecs)
            .is_ok_and(|t| t.contains("\"destination\":{\"ip\":\"10.200.0.2\",\"port\":9,")))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the last frame never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.stop();
    drop(dump);
    let frames = captured(&pcap);
    let ecs = json_lines(&wait_lines(&ecs, 1, Duration::ZERO));
    let ulogd = json_lines(&wait_lines(&ulogd, 1, Duration::ZERO));
    lab::ecs::assert_conforms(&ecs);
    assert_eq!(ecs.len(), ulogd.len());
    let family = |r: &Value| r["netfilter"]["family"].as_str().unwrap().to_string();
    // Up to the last frame: the namespace's own chatter (router solicitations, MLD) may go on.
    let is_end = |dst: &Value, port: &Value| dst == B4 && port == 9;
    let mut netdev: Vec<&Value> = ecs.iter().filter(|r| family(r) == "netdev").collect();
    let end = netdev
        .iter()
        .position(|r| is_end(&r["destination"]["ip"], &r["destination"]["port"]));
    netdev.truncate(end.expect("the last frame is logged") + 1);
    let mut frames = frames;
    let end = frames
        .iter()
        .position(|f| is_end(&f["ip"]["dst"], &f["ports"][1]));
    frames.truncate(end.expect("the last frame is captured") + 1);
    // From the first frame after the rules on.
    let first = |dst: &Value, port: &Value| dst == B4 && port == 7920;
    let start = frames
        .iter()
        .position(|f| first(&f["ip"]["dst"], &f["ports"][1]));
    frames.drain(..start.expect("the first frame is captured"));
    let start = netdev
        .iter()
        .position(|r| first(&r["destination"]["ip"], &r["destination"]["port"]));
    netdev.drain(..start.expect("the first frame is logged"));

    // Every frame tcpdump saw came through the ingress hook, in the same order.
    assert_eq!(
        netdev.len(),
        frames.len(),
        "netdev records vs captured frames"
    );
    let mut diffs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, (r, f)) in netdev.iter().zip(&frames).enumerate() {
        let mut check = |what: &str, ours: Value, theirs: Value| {
            if ours != theirs {
                diffs.push(format!(
                    "#{i} {what}: ours {ours} vs capture {theirs}\n  {r}\n  {f}"
                ));
            }
        };
        check(
            "source.mac",
            r["source"]["mac"].clone(),
            ecs_mac(&f["src"]).into(),
        );
        check(
            "destination.mac",
            r["destination"]["mac"].clone(),
            ecs_mac(&f["dst"]).into(),
        );
        let vlans: Vec<Value> = f["vlans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string().into())
            .collect();
        check(
            "network.vlan.id",
            r["network"]["vlan"]["id"].clone(),
            vlans.first().cloned().unwrap_or(Value::Null),
        );
        check(
            "network.inner.vlan.id",
            r["network"]["inner"]["vlan"]["id"].clone(),
            vlans.get(1).cloned().unwrap_or(Value::Null),
        );
        if let Some(a) = f.get("arp") {
            seen.insert("arp");
            check("network.type", r["network"]["type"].clone(), "arp".into());
            check("source.ip", r["source"]["ip"].clone(), a["psrc"].clone());
            check(
                "destination.ip",
                r["destination"]["ip"].clone(),
                a["pdst"].clone(),
            );
        } else if let Some(ip) = f.get("ip") {
            seen.insert(if ip["src"].as_str().unwrap().contains(':') {
                "ipv6"
            } else {
                "ipv4"
            });
            check("source.ip", r["source"]["ip"].clone(), ip["src"].clone());
            check(
                "destination.ip",
                r["destination"]["ip"].clone(),
                ip["dst"].clone(),
            );
            if !ip["proto"].is_null() {
                check(
                    "network.iana_number",
                    r["network"]["iana_number"].clone(),
                    ip["proto"].to_string().into(),
                );
            }
            if let Some(p) = f.get("ports") {
                check("source.port", r["source"]["port"].clone(), p[0].clone());
                check(
                    "destination.port",
                    r["destination"]["port"].clone(),
                    p[1].clone(),
                );
            }
        } else {
            seen.insert("other");
            check("network.type", r["network"]["type"].clone(), Value::Null);
        }
        if !vlans.is_empty() {
            seen.insert(if vlans.len() == 2 { "qinq" } else { "vlan" });
        }
    }

    // The arp family's records: the ARP frames addressed to this host, field by field as
    // ulogd2's keys name them.
    let arp_frames: Vec<&Value> = frames
        .iter()
        .filter(|f| f["vlans"].as_array().unwrap().is_empty())
        .filter_map(|f| f.get("arp").map(|a| (f, a)))
        .filter(|(_, a)| a["pdst"] == B4)
        .map(|(f, _)| f)
        .collect();
    // (The ulogd records are the ECS ones, in the same order: from the first frame on.)
    let from = ecs
        .iter()
        .position(|r| first(&r["destination"]["ip"], &r["destination"]["port"]))
        .unwrap();
    let arp: Vec<&Value> = ulogd[from..]
        .iter()
        .filter(|r| r["oob.family"] == 3)
        .collect();
    assert_eq!(
        arp.len(),
        arp_frames.len(),
        "arp records vs ARP frames for {B4}"
    );
    for (i, (r, f)) in arp.iter().zip(&arp_frames).enumerate() {
        let a = &f["arp"];
        for (key, want) in [
            ("arp.hwtype", a["hwtype"].clone()),
            ("arp.protocoltype", a["ptype"].clone()),
            ("arp.operation", a["op"].clone()),
            ("arp.saddr.str", a["psrc"].clone()),
            ("arp.daddr.str", a["pdst"].clone()),
            ("mac.saddr.str", f["src"].clone()),
            ("mac.daddr.str", f["dst"].clone()),
        ] {
            if r[key] != want {
                diffs.push(format!(
                    "arp #{i} {key}: ours {} vs capture {want}\n  {r}\n  {f}",
                    r[key]
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    for kind in ["arp", "ipv4", "ipv6", "vlan", "qinq", "other"] {
        assert!(
            seen.contains(kind),
            "no {kind} frame was compared: {seen:?}"
        );
    }
    assert!(
        arp.iter().any(|r| r["arp.operation"] == 1) && arp.iter().any(|r| r["arp.operation"] == 2),
        "requests and replies"
    );
}
