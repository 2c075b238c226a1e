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
