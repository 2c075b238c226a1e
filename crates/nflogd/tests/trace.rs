//! `nflogd trace` against `nft -a monitor trace` on a ruleset of jumps, gotos, a policy and
//! counters: each traced packet's path (table, chain, handle, rule text, verdict) equals what
//! nft printed for it; a ruleset flushed mid-trace is survived; the ruleset is as it was after
//! the tracer ends, also after it was killed and started again.

mod lab;

use lab::SpawnOwned;
use lab::{Daemon, Lab, B4};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

const RULES: &str = r#"table inet fw {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    tcp dport 22 counter jump ssh
    tcp dport 2222 jump ssh2
    udp dport 53 goto dns
    icmp type echo-request counter accept
  }
  chain ssh {
    ip saddr 10.200.0.1 counter accept
  }
  chain ssh2 {
    ip saddr 192.0.2.0/24 accept
  }
  chain dns {
    counter drop
  }
}
"#;

/// A step as (table, chain, handle, rule, verdict), counters' values left out.
type Step = (String, String, Option<u64>, Option<String>, String);

fn without_counts(rule: &str) -> String {
    let w: Vec<&str> = rule.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        if w[i] == "counter" && w.get(i + 1) == Some(&"packets") {
            out.push("counter");
            i += 5;
            continue;
        }
        out.push(w[i]);
        i += 1;
    }
    out.join(" ")
}

/// A packet: its trace id (the kernel reuses them) and its IPv4 id.
type Key = (String, u64);

/// `nft -a monitor trace` output → packet → its steps (the tracer's own table left out).
fn monitor_paths(text: &str) -> BTreeMap<Key, Vec<Step>> {
    let mut paths: BTreeMap<Key, Vec<Step>> = BTreeMap::new();
    let mut ip_id: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("trace id ") else {
            continue;
        };
        let mut w = rest.splitn(5, ' ');
        let (id, _family, table, chain, what) = (
            w.next().unwrap_or(""),
            w.next().unwrap_or(""),
            w.next().unwrap_or(""),
            w.next().unwrap_or(""),
            w.next().unwrap_or("").trim_end(),
        );
        if let Some(p) = what.strip_prefix("packet: ") {
            let n = p.split(" ip id ").nth(1).and_then(|r| r.split(' ').next());
            ip_id.insert(id.to_string(), n.and_then(|n| n.parse().ok()).unwrap_or(0));
            continue;
        }
        if table == "nflogd_trace" {
            continue;
        }
        let step = if let Some(r) = what.strip_prefix("rule ") {
            let (rule, verdict) = r.rsplit_once(" (verdict ").expect("a verdict");
            let (rule, handle) = rule.rsplit_once(" # handle ").expect("a handle (nft -a)");
            (
                table.to_string(),
                chain.to_string(),
                handle.parse().ok(),
                Some(without_counts(rule)),
                verdict.trim_end_matches(')').to_string(),
            )
        } else if let Some(p) = what.strip_prefix("policy ") {
            (
                table.into(),
                chain.into(),
                None,
                None,
                format!("policy {p}"),
            )
        } else {
            continue;
        };
        let key = (id.to_string(), ip_id.get(id).copied().unwrap_or(0));
        paths.entry(key).or_default().push(step);
    }
    paths
}

fn our_paths(text: &str) -> BTreeMap<Key, Vec<Step>> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|d| {
            let t = &d["netfilter"]["trace"];
            let steps = t["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["table"].as_str().unwrap().to_string(),
                        s["chain"].as_str().unwrap().to_string(),
                        s["handle"].as_u64(),
                        s["rule"].as_str().map(str::to_string),
                        s["verdict"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let ip_id = d["iptables"]["id"].as_u64().unwrap_or(0);
            ((t["id"].as_str().unwrap().to_string(), ip_id), steps)
        })
        .collect()
}

fn tracer(lab: &Lab, name: &str) -> (Daemon, std::path::PathBuf) {
    let out = lab.path(&format!("{name}.json"));
    let err = lab.path(&format!("{name}.err"));
    let child = Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .args(["trace", "--json", "--rate", "100", "--netns"])
        .arg(format!("/run/netns/{}", lab.b))
        .args(["ip", "saddr", "10.200.0.1"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn_owned()
        .unwrap();
    let d = Daemon {
        child: Some(child),
        log: err,
    };
    d.wait_log("tracing `ip saddr 10.200.0.1`", Duration::from_secs(10));
    (d, out)
}

fn ruleset(lab: &Lab) -> String {
    without_counts(&lab.exec(&lab.b, "nft list ruleset"))
}

fn traffic(lab: &Lab) {
    lab.exec(
        &lab.a,
        &format!(
            "bash -c 'timeout 1 bash -c \"echo x >/dev/tcp/{B4}/22\"; timeout 1 bash -c \"echo x >/dev/tcp/{B4}/2222\"; echo x >/dev/udp/{B4}/53; ping -c1 -W1 {B4} >/dev/null; true' 2>/dev/null"
        ),
    );
}

#[test]
fn trace_paths_equal_nft_monitor_and_leave_the_ruleset_as_it_was() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(&lab.b, RULES);
    let before = ruleset(&lab);
    let mon_out = lab.path("monitor.txt");
    let monitor = Daemon {
        child: Some(
            Command::new("ip")
                .args(["netns", "exec", &lab.b, "nft", "-a", "monitor", "trace"])
                .stdout(std::fs::File::create(&mon_out).unwrap())
                .stderr(Stdio::null())
                .spawn_owned()
                .unwrap(),
        ),
        log: mon_out.clone(),
    };
    std::thread::sleep(Duration::from_millis(300));

    let (t, out) = tracer(&lab, "trace1");
    traffic(&lab);
    // Four packets: TCP to 22 and 2222, UDP to 53, a ping.
    lab::wait_lines(&out, 4, Duration::from_secs(10));
    // The ruleset flushed and loaded again mid-trace: the tracer puts its table back.
    lab.exec(&lab.b, "nft flush ruleset");
    lab.nft(&lab.b, RULES);
    t.wait_log("added it again", Duration::from_secs(5));
    lab.exec(&lab.a, &format!("ping -c1 -W1 {B4} >/dev/null; true"));
    lab::wait_lines(&out, 5, Duration::from_secs(10));
    t.stop();
    drop(monitor);

    let theirs = monitor_paths(&std::fs::read_to_string(&mon_out).unwrap());
    let ours = our_paths(&std::fs::read_to_string(&out).unwrap());
    assert!(
        ours.len() >= 5,
        "only {} packets traced: {ours:?}",
        ours.len()
    );
    let verdicts: Vec<String> = ours
        .values()
        .flat_map(|p| p.iter().map(|s| s.4.clone()))
        .collect();
    for v in [
        "jump ssh",
        "jump ssh2",
        "goto dns",
        "accept",
        "drop",
        "policy drop",
    ] {
        assert!(
            verdicts.iter().any(|x| x == v),
            "no step with {v}: {ours:?}"
        );
    }
    for (id, path) in &ours {
        assert_eq!(
            Some(path),
            theirs.get(id),
            "trace {id:?}: ours vs nft monitor trace"
        );
    }
    // After the flush: the ping after it was traced too (its path has the echo rule).
    let echo = ours
        .values()
        .filter(|p| {
            p.iter()
                .any(|s| s.3.as_deref() == Some("icmp type echo-request counter accept"))
        })
        .count();
    assert!(echo >= 2, "pings traced before and after the flush: {echo}");
    assert_eq!(ruleset(&lab), before, "the ruleset after the tracer ended");

    // Killed, its table stays; the next start removes it, and its end leaves nothing.
    let (t, _) = tracer(&lab, "trace2");
    t.signal(libc::SIGKILL);
    drop(t);
    assert!(
        ruleset(&lab).contains("nflogd_trace"),
        "a killed tracer's table"
    );
    let (t, _) = tracer(&lab, "trace3");
    let tables = lab.exec(&lab.b, "nft list tables");
    assert_eq!(tables.matches("nflogd_trace").count(), 1, "{tables}");
    t.stop();
    assert_eq!(
        ruleset(&lab),
        before,
        "the ruleset after a kill and a restart"
    );
}

/// A step as (table, chain, handle, verdict): what the nftrace source and xtables-monitor both
/// say (their rule texts are in nft's and iptables' syntax).
fn steps_of(doc: &Value) -> Vec<(String, String, Option<u64>, String)> {
    doc["netfilter"]["trace"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["table"].as_str().unwrap().to_string(),
                s["chain"].as_str().unwrap().to_string(),
                s["handle"].as_u64(),
                s["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn docs(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// iptables-nft rules traced with `-j TRACE`: the daemon's `nftrace` source and
/// `xtables-monitor --trace` output read back through the `trace` transform give the same
/// packets with the same paths.
#[test]
fn nftrace_source_and_xtables_monitor_give_the_same_paths() {
    if !lab::available() {
        return;
    }
    if !lab::have("xtables-monitor") {
        lab::skip("xtables-monitor (Debian's iptables) is not installed");
        return;
    }
    let lab = Lab::new();
    let b = lab.b.clone();
    for rule in [
        format!("-t raw -A PREROUTING -s {} -j TRACE", lab::A4),
        "-N CHK".into(),
        "-A INPUT -p udp --dport 5355 -j CHK".into(),
        format!("-A CHK -s {} -p udp --dport 5355 -j ACCEPT", lab::A4),
        "-A INPUT -p tcp --dport 5356 -j DROP".into(),
    ] {
        lab.exec(&b, &format!("iptables-nft {rule}"));
    }
    let xm = lab.path("xtables-monitor.txt");
    let monitor = Daemon {
        child: Some(
            Command::new("ip")
                .args(["netns", "exec", &b, "xtables-monitor", "--trace"])
                .stdout(std::fs::File::create(&xm).unwrap())
                .stderr(Stdio::null())
                .spawn_owned()
                .unwrap(),
        ),
        log: xm.clone(),
    };
    let (from_kernel, from_text) = (lab.path("nftrace.json"), lab.path("xtables.json"));
    let d = lab.nflogd(
        &b,
        &format!(
            "stats_interval = \"0s\"\n\
             [sources.t]\ntype = \"nftrace\"\n\
             [sources.x]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}\"\npoll_interval = \"50ms\"\n\
             [transforms.paths]\ntype = \"trace\"\ninputs = [\"x\"]\n\
             [sinks.k]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"{}\"\n\
             [sinks.m]\ntype = \"file\"\ninputs = [\"paths\"]\npath = \"{}\"\n",
            xm.display(),
            lab.path("x.position").display(),
            from_kernel.display(),
            from_text.display()
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    lab.exec(
        &lab.a,
        &format!(
            "bash -c 'echo x >/dev/udp/{B4}/5355; echo y >/dev/udp/{B4}/5355; timeout 1 bash -c \"echo x >/dev/tcp/{B4}/5356\"; true' 2>/dev/null"
        ),
    );
    // Two datagrams and the SYNs of one connection attempt (the first, and resends).
    lab::wait_lines(&from_kernel, 3, Duration::from_secs(10));
    lab::wait_lines(&from_text, 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    d.stop();
    drop(monitor);

    let kernel = docs(&from_kernel);
    let text = docs(&from_text);
    lab::ecs::assert_conforms(&kernel);
    lab::ecs::assert_conforms(&text);
    let by_id = |docs: &[Value]| -> BTreeMap<String, Value> {
        docs.iter()
            .map(|d| {
                (
                    d["netfilter"]["trace"]["id"].as_str().unwrap().to_string(),
                    d.clone(),
                )
            })
            .collect()
    };
    let (k, t) = (by_id(&kernel), by_id(&text));
    assert_eq!(
        k.keys().collect::<Vec<_>>(),
        t.keys().collect::<Vec<_>>(),
        "the same packets from the kernel and from xtables-monitor"
    );
    for (id, kd) in &k {
        let td = &t[id];
        assert_eq!(
            steps_of(kd),
            steps_of(td),
            "trace {id}: nftrace vs xtables-monitor"
        );
        for key in ["source", "destination"] {
            assert_eq!(kd[key]["ip"], td[key]["ip"], "{id} {key}");
            assert_eq!(kd[key]["port"], td[key]["port"], "{id} {key}");
            assert_eq!(kd[key]["mac"], td[key]["mac"], "{id} {key}");
            assert!(kd[key]["mac"].is_string(), "{id}: {kd}");
        }
        assert_eq!(
            kd["network"]["transport"], td["network"]["transport"],
            "{id}"
        );
        assert_eq!(kd["event"]["action"], td["event"]["action"], "{id}");
        assert_eq!(kd["event"]["dataset"], "netfilter.trace");
        // xtables-monitor's rule text is iptables-save's.
        for s in td["netfilter"]["trace"]["path"].as_array().unwrap() {
            if let Some(r) = s["rule"].as_str() {
                assert!(r.starts_with("-A "), "{r}");
            }
        }
    }
    let accepted = k
        .values()
        .filter(|d| steps_of(d).iter().any(|s| s.3 == "jump CHK"))
        .filter(|d| d["event"]["action"] == "accept")
        .count();
    let dropped = k
        .values()
        .filter(|d| d["destination"]["port"] == 5356 && d["event"]["action"] == "drop")
        .count();
    assert_eq!(accepted, 2, "datagrams accepted in CHK: {kernel:?}");
    assert!(dropped >= 1, "a SYN dropped: {kernel:?}");
    let rule = k
        .values()
        .find_map(|d| {
            d["rule"]["description"]
                .as_str()
                .filter(|r| r.contains("5356"))
        })
        .expect("the deciding rule's text");
    assert!(rule.contains("drop"), "{rule}");
}

/// iptables-legacy's TRACE lines, read from the kernel log by the `kmsg` source, gathered by
/// the `trace` transform: one record per packet whose path is the lines' steps in order, with
/// the rules and verdicts looked up in iptables-legacy-save.
#[test]
fn legacy_trace_lines_become_one_path_per_packet() {
    if !lab::available() {
        return;
    }
    if !lab::have("iptables-legacy") {
        lab::skip("iptables-legacy is not installed");
        return;
    }
    let lab = Lab::new();
    let _netns_log = lab::kernel_log_from_netns();
    let b = lab.b.clone();
    for rule in [
        format!(
            "-t raw -A PREROUTING -s {} -p udp --dport 5357 -j TRACE",
            lab::A4
        ),
        "-N CHK".into(),
        "-A INPUT -p udp --dport 5357 -j CHK".into(),
        "-A CHK -p udp --dport 1 -j ACCEPT".into(),
        "-A INPUT -p udp --dport 5357 -j DROP".into(),
    ] {
        lab.exec(&b, &format!("iptables-legacy {rule}"));
    }
    let out = lab.path("legacy.json");
    let d = lab.nflogd(
        &b,
        &format!(
            "stats_interval = \"0s\"\n[sources.k]\ntype = \"kmsg\"\n\
             [transforms.paths]\ntype = \"trace\"\ninputs = [\"k\"]\n\
             [sinks.j]\ntype = \"file\"\ninputs = [\"paths\"]\npath = \"{}\"\n",
            out.display()
        ),
    );
    let mut kmsg = lab::Kmsg::open();
    lab.exec(
        &lab.a,
        &format!("bash -c 'echo x >/dev/udp/{B4}/5357; sleep 0.3; echo y >/dev/udp/{B4}/5357' 2>/dev/null"),
    );
    let got = lab::wait_lines(&out, 2, Duration::from_secs(10));
    d.stop();
    // The kernel's own lines, per packet (IPv4 id): (table, chain, kind, number).
    let mut kernel: BTreeMap<u64, Vec<(String, String, String, u64)>> = BTreeMap::new();
    for l in kmsg
        .read()
        .into_iter()
        .filter(|l| l.starts_with("TRACE: ") && l.contains(B4))
    {
        let head = l["TRACE: ".len()..].split(' ').next().unwrap();
        let f: Vec<&str> = head.split(':').collect();
        let id: u64 = l
            .split(' ')
            .find_map(|w| w.strip_prefix("ID="))
            .unwrap()
            .parse()
            .unwrap();
        kernel.entry(id).or_default().push((
            f[0].into(),
            f[1].into(),
            f[2].into(),
            f[3].parse().unwrap(),
        ));
    }
    let ours = lab::json_lines(&got);
    lab::ecs::assert_conforms(&ours);
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(kernel.len(), 2, "{kernel:?}");
    for doc in &ours {
        let id = doc["iptables"]["id"].as_u64().unwrap();
        let lines = &kernel[&id];
        let path = doc["netfilter"]["trace"]["path"].as_array().unwrap();
        let steps: Vec<(String, String, u64)> = path
            .iter()
            .map(|s| {
                (
                    s["table"].as_str().unwrap().into(),
                    s["chain"].as_str().unwrap().into(),
                    s["handle"].as_u64().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(String, String, u64)> = lines
            .iter()
            .map(|(t, c, _, n)| (t.clone(), c.clone(), *n))
            .collect();
        assert_eq!(
            steps, expected,
            "packet {id}: ours vs the kernel's TRACE lines"
        );
        let verdicts: Vec<&str> = path
            .iter()
            .map(|s| s["verdict"].as_str().unwrap())
            .collect();
        // raw's policy (and any other table's) accepts; then the jump, the return, the drop.
        let tail = &verdicts[verdicts.len() - 3..];
        assert_eq!(tail, ["jump CHK", "return", "drop"], "{verdicts:?}");
        assert!(verdicts[..verdicts.len() - 3]
            .iter()
            .all(|v| *v == "policy accept"));
        assert_eq!(
            path[path.len() - 1]["rule"],
            "-A INPUT -p udp -m udp --dport 5357 -j DROP"
        );
        assert_eq!(doc["event"]["action"], "drop");
        assert_eq!(doc["destination"]["port"], 5357);
        assert_eq!(doc["netfilter"]["prefix"], "");
        assert!(
            doc["netfilter"]["trace"]["id"].is_null(),
            "TRACE lines have no id"
        );
    }
}
