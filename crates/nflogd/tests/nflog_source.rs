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
