//! SIGHUP re-reads the configuration under load: a sink's path changes and a source is added
//! while NFLOG packets keep coming. The unchanged source keeps running (never rebinds), the
//! sink restarts on its new path once the old one has written what it had, the new source
//! starts; every packet the rules logged is in one of the two files exactly once.

mod lab;

use lab::{Lab, B4};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn config(out: &std::path::Path, with_second: bool) -> String {
    let mut c =
        String::from("stats_interval = \"0s\"\n[sources.n1]\ntype = \"nflog\"\ngroups = [11]\n");
    if with_second {
        c += "[sources.n2]\ntype = \"nflog\"\ngroups = [12]\n";
    }
    c += &format!(
        "[sinks.f]\ntype = \"file\"\ninputs = [{}]\npath = \"{}\"\n",
        if with_second {
            "\"n1\", \"n2\""
        } else {
            "\"n1\""
        },
        out.display()
    );
    c
}

/// Source ports of the records in `path` to `dport`.
fn ports(path: &std::path::Path, dport: u64) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["destination"]["port"] == dport)
        .map(|v| v["source"]["port"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_reload_under_load_loses_nothing_and_restarts_only_what_changed() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    udp dport 7200 counter log group 11
    udp dport 7201 log group 12
  }
}"#,
    );
    let (out1, out2) = (lab.path("out1.json"), lab.path("out2.json"));
    let cfg = lab.path("reload.toml");
    std::fs::write(&cfg, config(&out1, false)).unwrap();
    let log = lab.path("reload.log");
    let d = lab::start_nflogd(Some(&lab.b), &cfg, &log);

    // 8 000 datagrams to 7200, each from a source port of its own, over about two seconds.
    const N: u16 = 8000;
    let dst = format!("{B4}:7200");
    let load = std::thread::spawn({
        let a = lab.a.clone();
        move || {
            lab::in_netns(&a, move || {
                for i in 0..N {
                    let s = std::net::UdpSocket::bind(("0.0.0.0", 20000 + i)).unwrap();
                    let _ = s.send_to(b"x", &dst);
                    if i % 100 == 99 {
                        std::thread::sleep(Duration::from_millis(25));
                    }
                }
            })
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    // Mid-load: the sink's path changes and a second source comes.
    std::fs::write(&cfg, config(&out2, true)).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("reload:", Duration::from_secs(10));
    load.join().unwrap();
    lab.exec(
        &lab.a,
        &format!("bash -c 'for i in $(seq 1 50); do echo x >/dev/udp/{B4}/7201; done' 2>/dev/null"),
    );
    let logged = lab::nft_counter(&lab.b);
    assert_eq!(logged, N as u64, "the rule logged every datagram");
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while (ports(&out1, 7200).len() + ports(&out2, 7200).len()) < N as usize
        || ports(&out2, 7201).len() < 50
    {
        assert!(
            std::time::Instant::now() < end,
            "records did not arrive: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same file again: nothing restarts.
    d.signal(libc::SIGHUP);
    d.wait_log("reload: nothing changed", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let text = d.stop();
    let (before, after) = (ports(&out1, 7200), ports(&out2, 7200));
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{} then {}",
        before.len(),
        after.len()
    );
    let all: BTreeSet<u64> = before.iter().chain(&after).copied().collect();
    assert_eq!(
        before.len() + after.len(),
        N as usize,
        "a record twice or missing"
    );
    assert_eq!(all.len(), N as usize, "each datagram once");
    assert_eq!(ports(&out1, 7201).len(), 0);
    assert_eq!(ports(&out2, 7201).len(), 50, "the new source's records");
    let reload = text.lines().find(|l| l.contains("reload:")).unwrap();
    assert!(reload.contains("sink `f` restarts"), "{reload}");
    assert!(reload.contains("source `n2` starts"), "{reload}");
    assert!(
        !reload.contains("`n1`"),
        "the unchanged source kept running: {reload}"
    );
    assert_eq!(lab::stat(&text, "source.n1", "kernel_lost"), 0, "{text}");
    assert_eq!(lab::stat(&text, "sink.f", "dropped"), 0, "{text}");
}
