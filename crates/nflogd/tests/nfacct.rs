//! The nfacct source against real accounting objects: `nfacct add`, an iptables rule counting
//! into one of them, pings, and polls that read and reset. The records of an object add up to
//! exactly what the rule counted.

mod lab;

use lab::{json_lines, sh, wait_lines};
use std::time::Duration;

#[test]
fn polls_add_up_to_what_the_rule_counted() {
    if !lab::available() {
        return;
    }
    let have = |t: &str| sh(&format!("which {t} || true")).contains(t);
    if !have("nfacct") || !have("iptables") {
        lab::skip("nfacct or iptables missing");
        return;
    }
    let t = lab::tag();
    let netns = lab::Netns::new("acct");
    let ns = netns.0.clone();
    sh(&format!(
        "ip netns exec {ns} nfacct add pings && ip netns exec {ns} nfacct add idle && \
         ip netns exec {ns} iptables -A INPUT -p icmp -m nfacct --nfacct-name pings"
    ));
    let dir = std::env::temp_dir().join(format!("nflogd-acct-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ecs, ulogd) = (dir.join("acct.json"), dir.join("acct-ulogd.json"));
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.acct]\ntype = \"nfacct\"\ninterval = \"300ms\"\n\
             [sinks.e]\ntype = \"file\"\ninputs = [\"acct\"]\npath = \"{}\"\n\
             [sinks.u]\ntype = \"file\"\ninputs = [\"acct\"]\npath = \"{}\"\nschema = \"ulogd\"\n",
            ecs.display(),
            ulogd.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(Some(&ns), &cfg, &dir.join("log"));
    sh(&format!(
        "ip netns exec {ns} ping -c3 -i0.2 -W1 127.0.0.1 >/dev/null"
    ));
    std::thread::sleep(Duration::from_millis(700));
    sh(&format!(
        "ip netns exec {ns} ping -c2 -i0.2 -s 200 -W1 127.0.0.1 >/dev/null"
    ));
    std::thread::sleep(Duration::from_millis(700));
    // The last poll happens at shutdown.
    d.stop();
    let rule = sh(&format!("ip netns exec {ns} iptables -L INPUT -v -x -n"));
    let counted: Vec<u64> = rule
        .lines()
        .find(|l| l.contains("nfacct-name"))
        .unwrap_or_else(|| panic!("no rule in {rule}"))
        .split_whitespace()
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(counted[0], 10, "echo requests and replies on lo: {rule}");

    let recs = json_lines(&wait_lines(&ecs, 1, Duration::from_secs(2)));
    lab::ecs::assert_conforms(&recs);
    let of = |name: &str| -> Vec<&serde_json::Value> {
        recs.iter()
            .filter(|r| r["netfilter"]["nfacct"]["name"] == name)
            .collect()
    };
    let sum = |name: &str, key: &str| -> u64 {
        of(name)
            .iter()
            .map(|r| r["netfilter"]["nfacct"][key].as_u64().unwrap())
            .sum()
    };
    assert!(of("pings").len() >= 4, "a record per poll: {recs:#?}");
    assert_eq!(sum("pings", "packets"), counted[0], "{recs:#?}");
    assert_eq!(sum("pings", "bytes"), counted[1], "{recs:#?}");
    assert_eq!(sum("idle", "packets"), 0);
    assert!(of("pings").iter().all(|r| r["event"]["kind"] == "metric"
        && r["network"]["packets"] == r["netfilter"]["nfacct"]["packets"]));
    // Read and reset: nothing is left in the kernel after the last poll.
    let left = sh(&format!("ip netns exec {ns} nfacct get pings"));
    assert!(left.contains("pkts = 00000000000000000000"), "{left}");
    let u = json_lines(&wait_lines(&ulogd, 1, Duration::from_secs(2)));
    let keys: Vec<&String> = u[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "dvc",
            "sum.name",
            "sum.pkts",
            "sum.bytes",
            "oob.time.sec",
            "oob.time.usec"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
