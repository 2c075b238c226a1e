//! The conntrack source through a router doing masquerade: client → router → server, real TCP,
//! UDP and ICMP flows. Records carry the original tuple, the NAT mapping (the inside host behind
//! the public address and port), counters and times, and agree with `conntrack -L`.

mod lab;

use lab::SpawnOwned;

use lab::nat::{masquerade, tcp_hello, Masquerade};
use lab::{json_lines, sh, wait_lines};
use serde_json::Value;
use std::time::Duration;

/// nflogd in the router with one conntrack source (`source`: its extra keys), written as ECS to
/// `flows.json` in a directory of the test's own.
fn start_ecs(
    m: &Masquerade,
    dir_name: &str,
    source: &str,
) -> (lab::Daemon, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("nflogd-{dir_name}-{}", m.t));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("flows.json");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.ct]\ntype = \"conntrack\"\n{source}\n\
             [sinks.e]\ntype = \"file\"\ninputs = [\"ct\"]\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(Some(&m.r), &cfg, &dir.join("log"));
    (d, dir, out)
}

/// The conntrack ids `conntrack -L` lists in namespace `ns` for flows from the client.
fn listed_ids(ns: &str) -> Vec<(u64, String)> {
    sh(&format!(
        "ip netns exec {ns} conntrack -L -o id 2>/dev/null"
    ))
    .lines()
    .filter(|l| l.contains("src=10.210.1.2"))
    .map(|l| {
        // The last `id=` is the entry's; ICMP lines have the echo id before it.
        let id = l
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("id="))
            .next_back();
        (id.unwrap().parse().unwrap(), l.to_string())
    })
    .collect()
}

#[test]
fn masqueraded_flows_carry_tuples_nat_counters_and_times() {
    if !lab::available() {
        return;
    }
    let m = masquerade();
    let (c, r, t) = (m.c.clone(), m.r.clone(), m.t.clone());
    let dir = std::env::temp_dir().join(format!("nflogd-ct-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ecs, text) = (dir.join("flows.json"), dir.join("flows.txt"));
    let (web, v6_out) = (dir.join("web.json"), dir.join("v6.json"));
    let cfg = dir.join("c.toml");
    // A second source keeps only TCP to port 8080 from the client's network; a third only UDP
    // to the server's IPv6 network.
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.ct]\ntype = \"conntrack\"\nevents = [\"new\", \"destroy\"]\n\
             [sources.web]\ntype = \"conntrack\"\naccept_src = [\"10.210.1.0/24\"]\naccept_protocols = [\"tcp\"]\naccept_ports = [8080]\n\
             [sinks.e]\ntype = \"file\"\ninputs = [\"ct\"]\npath = \"{}\"\n[sinks.t]\ntype = \"file\"\ninputs = [\"ct\"]\npath = \"{}\"\nschema = \"text\"\n\
             [sinks.w]\ntype = \"file\"\ninputs = [\"web\"]\npath = \"{}\"\n\
             [sources.v6]\ntype = \"conntrack\"\naccept_dst = [\"fd10:210:2::/64\"]\naccept_protocols = [\"udp\"]\n\
             [sinks.v6]\ntype = \"file\"\ninputs = [\"v6\"]\npath = \"{}\"\n",
            ecs.display(),
            text.display(),
            web.display(),
            v6_out.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(Some(&r), &cfg, &dir.join("log"));
    // conntrack-tools watching the same events, for comparison.
    let events_seen = dir.join("conntrack-E.txt");
    let watcher = lab::Daemon {
        child: Some(
            std::process::Command::new("ip")
                .args(["netns", "exec", &r, "stdbuf", "-oL"])
                .args(["conntrack", "-E", "-o", "extended,id"])
                .stdout(std::fs::File::create(&events_seen).unwrap())
                .stderr(std::process::Stdio::null())
                .spawn_owned()
                .unwrap(),
        ),
        log: events_seen.clone(),
    };
    lab::wait_ct_subscribed(watcher.pid(), Duration::from_secs(10));

    // A TCP connection, UDP and a ping.
    let (peer, got, _) = tcp_hello(&m, 8080, Duration::ZERO);
    assert_eq!(
        (peer.ip().to_string().as_str(), got),
        ("10.210.2.1", 5),
        "the server sees the router's address"
    );
    lab::udp_burst(&c, "10.210.2.2", 5353, 3);
    sh(&format!(
        "ip netns exec {c} ping -c2 -i0.2 -W1 10.210.2.2 >/dev/null"
    ));
    lab::in_netns(&c, || {
        let s = std::net::UdpSocket::bind("[::]:0").unwrap();
        for i in 0..4u32 {
            s.send_to(&i.to_be_bytes(), "[fd10:210:2::2]:5354").unwrap();
        }
    });
    sh(&format!(
        "ip netns exec {c} ping -6 -c3 -i0.2 -W1 fd10:210:2::2 >/dev/null"
    ));
    std::thread::sleep(Duration::from_millis(300));
    let listed = listed_ids(&r);
    sh(&format!("ip netns exec {r} conntrack -F 2>/dev/null"));
    let recs = json_lines(&wait_lines(&ecs, 10, Duration::from_secs(5)));
    lab::ecs::assert_conforms(&recs);
    let lines = std::fs::read_to_string(&text).unwrap();
    let log = d.stop();
    std::thread::sleep(Duration::from_millis(200));
    drop(watcher);
    agree_with_conntrack_tool(&recs, &std::fs::read_to_string(&events_seen).unwrap());

    let find = |kind: &str, transport: &str| -> &Value {
        recs.iter()
            .find(|r| {
                r["netfilter"]["ct"]["event"] == kind
                    && r["network"]["transport"] == transport
                    && r["network"]["type"] == "ipv4"
            })
            .unwrap_or_else(|| panic!("no {kind} {transport} record in {recs:#?}"))
    };
    let tcp_new = find("new", "tcp");
    assert_eq!(tcp_new["source"]["ip"], "10.210.1.2");
    assert_eq!(tcp_new["destination"]["ip"], "10.210.2.2");
    assert_eq!(tcp_new["destination"]["port"], 8080);
    assert_eq!(
        tcp_new["source"]["nat"]["ip"], "10.210.2.1",
        "the NAT question: who was behind 10.210.2.1"
    );
    assert_eq!(tcp_new["source"]["nat"]["port"], peer.port());
    let tcp_end = find("destroy", "tcp");
    assert_eq!(
        tcp_end["netfilter"]["ct"]["id"],
        tcp_new["netfilter"]["ct"]["id"]
    );
    assert!(
        tcp_end["source"]["packets"].as_u64().unwrap() >= 4,
        "client → server packets: {tcp_end}"
    );
    assert!(
        tcp_end["source"]["bytes"].as_u64().unwrap() >= 5 + 4 * 40,
        "{tcp_end}"
    );
    assert!(
        tcp_end["destination"]["packets"].as_u64().unwrap() >= 2,
        "{tcp_end}"
    );
    assert!(
        tcp_end["event"]["duration"].as_u64().is_some() && tcp_end["event"]["start"].is_string(),
        "times: {tcp_end}"
    );
    let udp_end = find("destroy", "udp");
    assert_eq!(udp_end["source"]["packets"], 3);
    assert_eq!(udp_end["source"]["nat"]["ip"], "10.210.2.1");
    assert_eq!(udp_end["destination"]["port"], 5353);
    let icmp_end = find("destroy", "icmp");
    assert_eq!(icmp_end["netfilter"]["ct"]["icmp_type"], 8);
    assert_eq!(icmp_end["source"]["packets"], 2);
    // IPv6: masqueraded too, ICMPv6 echo with its type.
    let v6 = |transport: &str| -> &Value {
        recs.iter()
            .find(|r| {
                r["netfilter"]["ct"]["event"] == "destroy"
                    && r["network"]["type"] == "ipv6"
                    && r["network"]["transport"] == transport
            })
            .unwrap_or_else(|| panic!("no IPv6 {transport} destroy in {recs:#?}"))
    };
    let u6 = v6("udp");
    assert_eq!(u6["source"]["ip"], "fd10:210:1::2");
    assert_eq!(u6["source"]["nat"]["ip"], "fd10:210:2::1");
    assert_eq!(u6["destination"]["port"], 5354);
    assert_eq!(u6["source"]["packets"], 4);
    let i6 = v6("ipv6-icmp");
    assert_eq!(i6["netfilter"]["ct"]["icmp_type"], 128);
    assert_eq!(i6["source"]["packets"], 3);
    assert_eq!(i6["destination"]["packets"], 3);
    // Every entry `conntrack -L` listed is in the records, with the same id and addresses.
    assert!(!listed.is_empty());
    for (id, l) in &listed {
        let rec = recs.iter().find(|r| {
            r["netfilter"]["ct"]["id"] == *id && r["netfilter"]["ct"]["event"] == "destroy"
        });
        assert!(
            rec.is_some_and(|r| r["source"]["ip"] == "10.210.1.2"),
            "conntrack -L entry id={id} missing: {l}"
        );
    }
    assert!(
        lines.contains("[DESTROY] ORIG: SRC=10.210.1.2 DST=10.210.2.2 PROTO=TCP SPT="),
        "{lines}"
    );
    assert!(lines.contains("SNAT=10.210.2.1:"), "{lines}");
    // The filtered source has the TCP flow's NEW and DESTROY and nothing else.
    let web: Vec<Value> = complete_records(&web);
    let kinds: Vec<(&str, &str)> = web
        .iter()
        .map(|r| {
            (
                r["netfilter"]["ct"]["event"].as_str().unwrap(),
                r["network"]["transport"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("new", "tcp"), ("destroy", "tcp")], "{web:#?}");
    assert_eq!(web[1]["destination"]["port"], 8080);
    // Its filters ran in the kernel: the other flows' events never reached it.
    assert!(
        log.contains("source `web`: filters applied in the kernel"),
        "{log}"
    );
    assert_eq!(lab::stat(&log, "source.web", "received"), 2, "{log}");
    assert_eq!(lab::stat(&log, "source.web", "ignored"), 0, "{log}");
    assert!(lab::stat(&log, "source.ct", "received") >= 10, "{log}");
    let v6: Vec<Value> = complete_records(&v6_out);
    let kinds: Vec<(&str, &str, &str)> = v6
        .iter()
        .map(|r| {
            (
                r["netfilter"]["ct"]["event"].as_str().unwrap(),
                r["network"]["transport"].as_str().unwrap(),
                r["destination"]["ip"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("new", "udp", "fd10:210:2::2"),
            ("destroy", "udp", "fd10:210:2::2")
        ],
        "{v6:#?}"
    );
    assert_eq!(lab::stat(&log, "source.v6", "ignored"), 0, "{log}");
    assert_eq!(
        web[1]["netfilter"]["ct"]["id"],
        tcp_end["netfilter"]["ct"]["id"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Thousands of flows created and then flushed at once into a 4 KiB socket buffer: the kernel
/// drops events (ENOBUFS), nflogd dumps the table, and every flow `conntrack -L` listed still
/// gets a NEW and a DESTROY record — from its event, or recovered from the dumps.
#[test]
fn overruns_are_counted_and_resynced_so_no_open_flow_is_missed() {
    if !lab::available() {
        return;
    }
    const FLOWS: usize = 4000;
    let m = masquerade();
    let (d, dir, out) = start_ecs(&m, "ctb", "socket_buffer = \"4KiB\"");
    // One UDP flow per source port, as fast as the client can open sockets.
    lab::in_netns(&m.c, || {
        for i in 0..FLOWS {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let _ = s.send_to(&(i as u32).to_be_bytes(), "10.210.2.2:9");
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let listed = listed_ids(&m.r);
    assert!(
        listed.len() >= FLOWS * 9 / 10,
        "{} flows listed",
        listed.len()
    );
    sh(&format!("ip netns exec {} conntrack -F 2>/dev/null", m.r));
    // Lost DESTROYs are reported after a grace time of 2 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let all_found = || {
        let recs = complete_records(&out);
        let seen = by_id_and_event(&recs);
        listed.iter().all(|(id, _)| {
            ["new", "destroy"]
                .iter()
                .all(|k| seen.contains_key(&(*id, k.to_string())))
        })
    };
    while !all_found() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = d.stop();
    let recs = complete_records(&out);
    let seen = by_id_and_event(&recs);
    let overruns = lab::stat(&log, "source.ct", "overruns");
    let resyncs = lab::stat(&log, "source.ct", "resyncs");
    let resynced = lab::stat(&log, "source.ct", "resynced");
    eprintln!(
        "{} flows: overruns={overruns} resyncs={resyncs} resynced={resynced}",
        listed.len()
    );
    assert!(
        overruns > 0,
        "the burst did not overrun a 4 KiB buffer:\n{log}"
    );
    assert!(
        resyncs > 0 && resynced > 0,
        "overruns={overruns} resyncs={resyncs} resynced={resynced}\n{log}"
    );
    for (id, l) in &listed {
        for kind in ["new", "destroy"] {
            let rec = seen.get(&(*id, kind.to_string()));
            assert!(
                rec.is_some_and(|r| r["source"]["ip"] == "10.210.1.2"
                    && r["destination"]["port"] == 9
                    && r["source"]["nat"]["ip"] == "10.210.2.1"),
                "no {kind} record for id={id} ({l}); overruns={overruns} resynced={resynced}"
            );
        }
    }
    // A flow is recorded once per event: a NEW from the dump is not repeated by a late event.
    for kind in ["new", "destroy"] {
        let mut ids: Vec<u64> = recs
            .iter()
            .filter(|r| r["netfilter"]["ct"]["event"] == kind)
            .map(|r| r["netfilter"]["ct"]["id"].as_u64().unwrap())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate {kind} records");
    }
    assert!(recs
        .iter()
        .any(|r| r["netfilter"]["ct"]["recovered"] == true));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The records of a file being written, without a last line still cut short.
/// Every event `conntrack -E -o extended,id` printed has a record of the same event and id with
/// the same original tuple, the NAT address and port of the reply tuple, and (on DESTROY) the
/// same packet and byte counters per direction.
fn agree_with_conntrack_tool(recs: &[Value], tool: &str) {
    let records = by_id_and_event(recs);
    let mut checked = 0;
    for line in tool
        .lines()
        .filter(|l| l.contains("src=10.210.1.2 ") || l.contains("src=fd10:210:1::2 "))
    {
        let event = if line.contains("[NEW]") {
            "new"
        } else if line.contains("[DESTROY]") {
            "destroy"
        } else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        // Values of `key=` in the order printed: the original tuple's first, the reply's second.
        let values =
            |key: &str| -> Vec<&str> { words.iter().filter_map(|w| w.strip_prefix(key)).collect() };
        let id: u64 = values("id=").last().unwrap().parse().unwrap();
        let r = records
            .get(&(id, event.to_string()))
            .unwrap_or_else(|| panic!("no {event} record for id {id}: {line}"));
        let (src, dst) = (values("src="), values("dst="));
        assert_eq!(r["source"]["ip"], src[0], "{line}\n{r}");
        assert_eq!(r["destination"]["ip"], dst[0], "{line}\n{r}");
        let (sport, dport) = (values("sport="), values("dport="));
        if !sport.is_empty() {
            assert_eq!(r["source"]["port"].to_string(), sport[0], "{line}\n{r}");
            assert_eq!(
                r["destination"]["port"].to_string(),
                dport[0],
                "{line}\n{r}"
            );
        }
        // Masquerade: the reply goes to the router's address (and port).
        if dst[1] != src[0] {
            assert_eq!(r["source"]["nat"]["ip"], dst[1], "{line}\n{r}");
            if dport.len() > 1 && dport[1] != sport[0] {
                assert_eq!(
                    r["source"]["nat"]["port"].to_string(),
                    dport[1],
                    "{line}\n{r}"
                );
            }
        }
        let (packets, bytes) = (values("packets="), values("bytes="));
        // nflogd switched accounting on before these flows began: every DESTROY has counters.
        if event == "destroy" {
            assert!(
                packets.len() == 2 && bytes.len() == 2,
                "no counters: {line}"
            );
            assert_eq!(
                r["source"]["packets"].to_string(),
                packets[0],
                "{line}\n{r}"
            );
            assert_eq!(r["source"]["bytes"].to_string(), bytes[0], "{line}\n{r}");
            assert_eq!(
                r["destination"]["packets"].to_string(),
                packets[1],
                "{line}\n{r}"
            );
            assert_eq!(
                r["destination"]["bytes"].to_string(),
                bytes[1],
                "{line}\n{r}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} events from conntrack -E:\n{tool}"
    );
}

fn complete_records(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records by (conntrack id, event).
fn by_id_and_event(recs: &[Value]) -> std::collections::HashMap<(u64, String), &Value> {
    recs.iter()
        .filter_map(|r| {
            let ct = &r["netfilter"]["ct"];
            Some(((ct["id"].as_u64()?, ct["event"].as_str()?.to_string()), r))
        })
        .collect()
}

/// Where Debian installs ulogd2's plugins on this machine.
fn ulogd_plugins() -> String {
    format!("/usr/lib/{}/ulogd", lab::multiarch())
}

/// The `ulogd` schema for flows against ulogd2's NFCT → IP2STR → JSON on the same flows (both
/// read the router's events): every record ulogd2 writes has a record of ours with the same
/// keys, in the same order, and the same values, but the output time.
#[test]
fn flows_match_ulogd2_nfct_key_by_key() {
    if !lab::available() {
        return;
    }
    if !std::path::Path::new(&ulogd_plugins())
        .join("ulogd_inpflow_NFCT.so")
        .exists()
    {
        lab::skip("ulogd2 is not installed");
        return;
    }
    let m = masquerade();
    let dir = std::env::temp_dir().join(format!("nflogd-ctu-{}", m.t));
    std::fs::create_dir_all(&dir).unwrap();
    let (ours, theirs) = (dir.join("nflogd.json"), dir.join("ulogd.json"));
    let conf = dir.join("ulogd.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nlogfile=\"{log}\"\nloglevel=3\nplugin=\"{p}/ulogd_inpflow_NFCT.so\"\nplugin=\"{p}/ulogd_filter_IP2STR.so\"\nplugin=\"{p}/ulogd_output_JSON.so\"\n\
             stack=ct1:NFCT,ip2str1:IP2STR,json1:JSON\n\n[ct1]\nhash_enable=0\nevent_mask=5\n\n[json1]\nsync=1\nfile=\"{out}\"\n",
            log = dir.join("ulogd.log").display(),
            p = ulogd_plugins(),
            out = theirs.display()
        ),
    )
    .unwrap();
    let ulogd = lab::Daemon {
        child: Some(
            std::process::Command::new("ip")
                .args(["netns", "exec", &m.r, "ulogd", "-c"])
                .arg(&conf)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn_owned()
                .expect("start ulogd"),
        ),
        log: dir.join("ulogd.log"),
    };
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.ct]\ntype = \"conntrack\"\n\
             [sinks.u]\ntype = \"file\"\ninputs = [\"ct\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            ours.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(Some(&m.r), &cfg, &dir.join("log"));
    lab::wait_ct_subscribed(ulogd.pid(), Duration::from_secs(10));

    tcp_hello(&m, 8080, Duration::ZERO);
    lab::udp_burst(&m.c, "10.210.2.2", 5353, 3);
    sh(&format!(
        "ip netns exec {} ping -c2 -i0.2 -W1 10.210.2.2 >/dev/null",
        m.c
    ));
    lab::in_netns(&m.c, || {
        let s = std::net::UdpSocket::bind("[::]:0").unwrap();
        s.send_to(b"v6", "[fd10:210:2::2]:5354").unwrap();
    });
    sh(&format!(
        "ip netns exec {} ping -6 -c2 -i0.2 -W1 fd10:210:2::2 >/dev/null",
        m.c
    ));
    std::thread::sleep(Duration::from_millis(300));
    sh(&format!("ip netns exec {} conntrack -F 2>/dev/null", m.r));
    std::thread::sleep(Duration::from_millis(1000));
    d.stop();
    ulogd.stop();

    let theirs = complete_records(&theirs);
    let ours = complete_records(&ours);
    assert!(theirs.len() >= 10, "ulogd2 logged only {theirs:#?}");
    assert!(
        theirs.iter().any(|t| t["oob.family"] == 10),
        "IPv6 flows: {theirs:#?}"
    );
    assert_eq!(ours.len(), theirs.len(), "record counts differ");
    let mut diffs = Vec::new();
    for t in &theirs {
        let (Some(id), Some(ev)) = (t["ct.id"].as_u64(), t["ct.event"].as_u64()) else {
            diffs.push(format!("ulogd2 record without ct.id/ct.event: {t}"));
            continue;
        };
        let Some(o) = ours
            .iter()
            .find(|o| o["ct.id"] == id && o["ct.event"] == ev)
        else {
            diffs.push(format!(
                "no record of ours for ct.id={id} ct.event={ev}: {t}"
            ));
            continue;
        };
        // ulogd2 2.0.8 leaves out the ICMPv6 type and code (added in 2.0.9); nflogd has them.
        let icmpv6 = t["orig.ip.protocol"] == 58;
        let (tk, ok): (Vec<&String>, Vec<&String>) = (
            t.as_object().unwrap().keys().collect(),
            o.as_object()
                .unwrap()
                .keys()
                .filter(|k| !(icmpv6 && k.starts_with("icmp.")))
                .collect(),
        );
        if icmpv6 && (o["icmp.type"] != 128 || o["icmp.code"] != 0) {
            diffs.push(format!("id {id} event {ev}: ICMPv6 echo expected: {o}"));
        }
        if tk != ok {
            diffs.push(format!(
                "id {id} event {ev} keys: ours {ok:?} vs ulogd2 {tk:?}"
            ));
        }
        // A NEW carries no kernel stamp: each daemon takes its own receive time as the start.
        let start = |r: &Value| {
            r["flow.start.sec"].as_f64().unwrap_or(0.0)
                + r["flow.start.usec"].as_f64().unwrap_or(0.0) / 1e6
        };
        if ev == 1 && (start(o) - start(t)).abs() > 1.0 {
            diffs.push(format!(
                "id {id} NEW start: ours {} vs ulogd2 {}",
                start(o),
                start(t)
            ));
        }
        for (k, tv) in t.as_object().unwrap() {
            let own_time = k == "timestamp" || (ev == 1 && k.starts_with("flow.start."));
            if !own_time && o.get(k) != Some(tv) {
                diffs.push(format!(
                    "id {id} event {ev} {k}: ours {:?} vs ulogd2 {tv}",
                    o.get(k)
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
    let _ = std::fs::remove_dir_all(&dir);
}

/// Poll mode: no events, a dump every 200 ms. A connection that appears between two dumps is
/// recorded as NEW, and once flushed from the table as DESTROY with its last counters.
#[test]
fn poll_mode_records_flows_from_dumps() {
    if !lab::available() {
        return;
    }
    let m = masquerade();
    let (d, dir, out) = start_ecs(&m, "ctp", "poll_interval = \"200ms\"");
    // Open across several dumps.
    let (_, _, sport) = tcp_hello(&m, 8081, Duration::from_millis(600));
    std::thread::sleep(Duration::from_millis(400));
    sh(&format!("ip netns exec {} conntrack -F 2>/dev/null", m.r));
    std::thread::sleep(Duration::from_millis(600));
    d.stop();
    let recs = complete_records(&out);
    let tcp: Vec<&Value> = recs
        .iter()
        .filter(|r| r["source"]["port"] == sport && r["destination"]["port"] == 8081)
        .collect();
    assert_eq!(tcp.len(), 2, "one NEW and one DESTROY: {recs:#?}");
    assert_eq!(tcp[0]["netfilter"]["ct"]["event"], "new");
    assert_eq!(tcp[1]["netfilter"]["ct"]["event"], "destroy");
    assert_eq!(
        tcp[0]["netfilter"]["ct"]["id"],
        tcp[1]["netfilter"]["ct"]["id"]
    );
    assert_eq!(tcp[0]["source"]["nat"]["ip"], "10.210.2.1");
    assert!(
        tcp[1]["source"]["packets"].as_u64().unwrap() >= 4,
        "{:#}",
        tcp[1]
    );
    assert!(
        tcp[1]["event"]["duration"].as_u64().is_some(),
        "{:#}",
        tcp[1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sctp_udplite_gre_and_other_flows_are_recorded() {
    if !lab::available() {
        return;
    }
    let lab = lab::Lab::new();
    // Conntrack runs in `b` once a rule uses it.
    lab.nft(
        &lab.b,
        "table inet lab {\n chain in {\n type filter hook input priority 0;\n ct state new counter\n }\n}\n",
    );
    let out = lab.path("flows.json");
    let d = lab::start_nflogd(
        None,
        &{
            let cfg = lab.path("c.toml");
            std::fs::write(
                &cfg,
                format!(
                    "stats_interval = \"0s\"\n[sources.ct]\ntype = \"conntrack\"\nnetns = \"/run/netns/{}\"\n\
                     [sinks.e]\ntype = \"file\"\ninputs = [\"ct\"]\npath = \"{}\"\n",
                    lab.b,
                    out.display()
                ),
            )
            .unwrap();
            cfg
        },
        &lab.path("log"),
    );
    lab.exec(&lab.a, &format!("ping -c1 -W1 {} >/dev/null", lab::B4));
    lab.exec(
        &lab.a,
        &format!(
            "/usr/bin/python3 -c '
from scapy.all import *
conf.verb = 0
dst = \"{}\"
send(IP(dst=dst)/SCTP(sport=5000, dport=6000)/SCTPChunkInit(init_tag=1, n_in_streams=1, n_out_streams=1, a_rwnd=1500), iface=\"va\")
send(IP(dst=dst, proto=136)/UDP(sport=7000, dport=8000)/b\"x\", iface=\"va\")
send(IP(dst=dst)/GRE()/IP(dst=\"192.0.2.1\")/ICMP(), iface=\"va\")
send(IP(dst=dst, proto=33)/bytes(16), iface=\"va\")
'",
            lab::B4
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    sh(&format!("ip netns exec {} conntrack -F 2>/dev/null", lab.b));
    let recs = json_lines(&wait_lines(&out, 10, Duration::from_secs(5)));
    lab::ecs::assert_conforms(&recs);
    d.stop();
    let find = |event: &str, transport: &str| -> &Value {
        recs.iter()
            .find(|r| {
                r["netfilter"]["ct"]["event"] == event && r["network"]["transport"] == transport
            })
            .unwrap_or_else(|| panic!("no {event} {transport} record in {recs:#?}"))
    };
    // Any other protocol: its number (DCCP here, as a protocol nflogd does not decode).
    for event in ["new", "destroy"] {
        assert_eq!(find(event, "dccp")["network"]["iana_number"], "33");
    }
    for (transport, number, ports) in [
        ("sctp", "132", Some((5000, 6000))),
        ("udplite", "136", Some((7000, 8000))),
        ("gre", "47", None),
    ] {
        for event in ["new", "destroy"] {
            let r = find(event, transport);
            assert_eq!(r["network"]["iana_number"], number, "{r}");
            assert_eq!(r["source"]["ip"], lab::A4, "{r}");
            assert_eq!(r["destination"]["ip"], lab::B4, "{r}");
            match ports {
                Some((s, d)) => {
                    assert_eq!(r["source"]["port"], s, "{r}");
                    assert_eq!(r["destination"]["port"], d, "{r}");
                }
                // GRE has keys, not ports.
                None => {
                    assert!(r["source"]["port"].is_null(), "{r}");
                    assert_eq!(r["netfilter"]["ct"]["gre_keys"], serde_json::json!([0, 0]));
                }
            }
        }
    }
}

/// A flow inserted with `conntrack -I`: source, destination, protocol, destination port.
struct Flow(&'static str, &'static str, &'static str, u16);

impl Flow {
    fn insert_cmd(&self, sport: u16) -> String {
        let Flow(src, dst, proto, dport) = self;
        let l4 = match *proto {
            "tcp" => format!("-p tcp --sport {sport} --dport {dport} --state ESTABLISHED"),
            "udp" => format!("-p udp --sport {sport} --dport {dport}"),
            "icmp" => format!("-p icmp --icmp-type 8 --icmp-code 0 --icmp-id {sport}"),
            _ => format!("-p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id {sport}"),
        };
        format!("conntrack -I -s {src} -d {dst} {l4} -t 120 >/dev/null 2>&1")
    }
}

/// The kernel-side flow filters let through exactly what the lists say, over a matrix of
/// flows (IPv4 and IPv6, TCP, UDP, ICMP, ICMPv6, ports in and out of the list, addresses on
/// either side of a prefix boundary) and a source per filter kind and one combining them; the
/// expected sets are computed here from the lists, independently of nflogd's code. No event
/// is left for userspace to drop (`ignored` stays 0): the kernel did the filtering.
#[test]
fn kernel_flow_filters_let_through_exactly_what_they_list() {
    if !lab::available() {
        return;
    }
    let t = lab::tag();
    let netns = lab::Netns::new("flt");
    let ns = netns.0.clone();
    let flows = [
        Flow("10.1.0.1", "10.2.3.4", "tcp", 22),
        Flow("10.1.255.254", "10.2.3.5", "udp", 53),
        Flow("10.0.255.255", "10.2.3.4", "tcp", 8080),
        Flow("10.2.0.1", "192.0.2.9", "udp", 8080),
        Flow("10.1.9.9", "192.0.2.9", "icmp", 0),
        Flow("172.16.0.1", "10.2.3.4", "udp", 54),
        Flow("fd00:1::5", "fd00:2::1", "tcp", 22),
        Flow("fd00:9:ffff::1", "fd00:1::1", "udp", 53),
        Flow("fd01::1", "fd00:1::ffff:0:0:1", "icmpv6", 0),
        Flow("fd00:9::2", "fd00:1:0:1::1", "tcp", 22),
        Flow("fd00:8::1", "fd00:2::1", "tcp", 23),
    ];
    type Filter = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [u16],
    );
    let filters: [Filter; 5] = [
        ("bysrc", &["10.1.0.0/16", "fd00:9::/32"], &[], &[], &[]),
        ("bydst", &[], &["fd00:1::/64", "10.2.3.4/32"], &[], &[]),
        ("byproto", &[], &[], &["udp", "icmp"], &[]),
        ("byport", &[], &[], &[], &[53, 8080]),
        ("all", &["10.1.0.0/16", "fd00:9::/32"], &[], &["tcp"], &[22]),
    ];
    let dir = std::env::temp_dir().join(format!("nflogd-ctflt-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut cfg = String::from("stats_interval = \"0s\"\n");
    for (name, src, dst, protos, ports) in &filters {
        cfg += &format!(
            "[sources.{name}]\ntype = \"conntrack\"\nevents = [\"new\"]\naccept_src = [{}]\naccept_dst = [{}]\naccept_protocols = [{}]\naccept_ports = [{}]\n\
             [sinks.{name}]\ntype = \"file\"\ninputs = [\"{name}\"]\npath = \"{}\"\n",
            list(src),
            list(dst),
            list(protos),
            ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            dir.join(format!("{name}.json")).display()
        );
    }
    std::fs::write(dir.join("c.toml"), cfg).unwrap();
    let d = lab::start_nflogd(Some(&ns), &dir.join("c.toml"), &dir.join("log"));
    lab::wait_ct_subscribed(d.pid(), Duration::from_secs(10));
    for (i, f) in flows.iter().enumerate() {
        sh(&format!(
            "ip netns exec {ns} {}",
            f.insert_cmd(40000 + i as u16)
        ));
    }
    // The last flow, which every filter but `byproto` and `bysrc` lets through, marks the end.
    sh(&format!(
        "ip netns exec {ns} {}",
        Flow("10.1.2.3", "10.2.3.4", "tcp", 22).insert_cmd(39999)
    ));
    let in_nets = |ip: &str, nets: &[&str]| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        nets.is_empty()
            || nets.iter().any(|n| {
                let (net, len) = n.split_once('/').unwrap();
                let (net, len): (std::net::IpAddr, u32) =
                    (net.parse().unwrap(), len.parse().unwrap());
                match (ip, net) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                        len == 0 || (u32::from(a) ^ u32::from(b)) >> (32 - len) == 0
                    }
                    (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                        len == 0 || (u128::from(a) ^ u128::from(b)) >> (128 - len) == 0
                    }
                    _ => false,
                }
            })
    };
    let all_flows: Vec<Flow> = flows
        .into_iter()
        .chain([Flow("10.1.2.3", "10.2.3.4", "tcp", 22)])
        .collect();
    let mut wrong = Vec::new();
    for (name, src, dst, protos, ports) in &filters {
        let want: Vec<String> = all_flows
            .iter()
            .filter(|f| {
                in_nets(f.0, src)
                    && in_nets(f.1, dst)
                    && (protos.is_empty() || protos.contains(&f.2))
                    && (ports.is_empty() || (matches!(f.2, "tcp" | "udp") && ports.contains(&f.3)))
            })
            .map(|f| format!("{} {} {}", f.0, f.1, f.2))
            .collect();
        let path = dir.join(format!("{name}.json"));
        let start = std::time::Instant::now();
        let got = loop {
            let got: Vec<String> = complete_records(&path)
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {}",
                        r["source"]["ip"].as_str().unwrap(),
                        r["destination"]["ip"].as_str().unwrap(),
                        r["network"]["transport"]
                            .as_str()
                            .unwrap()
                            .replace("ipv6-icmp", "icmpv6")
                    )
                })
                .collect();
            if got.len() >= want.len() || start.elapsed() > Duration::from_secs(5) {
                break got;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if got != want {
            wrong.push(format!("{name}: got {got:#?}\nwant {want:#?}"));
        }
    }
    let log = d.stop();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (name, ..) in &filters {
        assert!(
            log.contains(&format!("source `{name}`: filters applied in the kernel")),
            "{log}"
        );
        assert_eq!(
            lab::stat(&log, &format!("source.{name}"), "ignored"),
            0,
            "{name}: {log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
