//! The pipeline graph end to end: two file sources, transforms in a chain and with fan-in,
//! a transform feeding two sinks, a sink fed by a source and a transform; and `nflogd check`
//! refusing cycles and unknown inputs, warning about a node that feeds nothing.

mod lab;

use std::collections::BTreeSet;
use std::time::Duration;

/// A kernel LOG line: `prefix`, protocol, and the IP ID that names it in the test.
fn line(prefix: &str, proto: &str, id: u32) -> String {
    let l4 = match proto {
        "TCP" => "PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ",
        _ => "PROTO=UDP SPT=40000 DPT=53 LEN=8 ",
    };
    format!("{prefix}IN=eth0 OUT= MAC= SRC=192.0.2.1 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID={id} {l4}\n")
}

/// The IP IDs in an ECS output file.
fn ids(path: &std::path::Path) -> BTreeSet<u64> {
    lab::json_lines(&lab::wait_lines(path, 0, Duration::ZERO))
        .iter()
        .map(|r| r["iptables"]["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn events_follow_the_graph() {
    let dir = std::env::temp_dir().join(format!("nflogd-graph-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    // Source a: ids 1..=40, source b: 101..=140; odd ids DROP, even ACCEPT; every third TCP.
    let mut want: std::collections::BTreeMap<&str, BTreeSet<u64>> = Default::default();
    for (src, base) in [("a", 0), ("b", 100)] {
        let mut text = String::new();
        for i in 1..=40u32 {
            let id = base + i;
            let drop = id % 2 == 1;
            let tcp = id % 3 == 0;
            text += &line(
                if drop { "DROP " } else { "ACCEPT " },
                if tcp { "TCP" } else { "UDP" },
                id,
            );
            let id = id as u64;
            want.entry("all").or_default().insert(id);
            if drop {
                want.entry("drops").or_default().insert(id);
                want.entry("both").or_default().insert(id);
                if tcp {
                    want.entry("tcp_drops").or_default().insert(id);
                }
            }
            if src == "a" {
                want.entry("a_and_accepts").or_default().insert(id);
            }
        }
        std::fs::write(dir.join(format!("{src}.log")), text).unwrap();
    }
    // `both` takes `dropped` and `tcp` (a chain under it): every TCP drop reaches it twice,
    // which the set of ids does not show; its line count does.
    let sink = |name: &str, inputs: &str| {
        format!(
            "[sinks.{name}]\ntype = \"file\"\ninputs = [{inputs}]\npath = \"{d}/{name}.json\"\n"
        )
    };
    let cfg = format!(
        "stats_interval = \"0s\"\n\
         [sources.a]\ntype = \"file\"\npath = \"{d}/a.log\"\nstart = \"beginning\"\nstate_file = \"{d}/a.pos\"\n\
         [sources.b]\ntype = \"file\"\npath = \"{d}/b.log\"\nstart = \"beginning\"\nstate_file = \"{d}/b.pos\"\n\
         [transforms.dropped]\ntype = \"filter\"\ninputs = [\"a\", \"b\"]\nactions = [\"drop\"]\n\
         [transforms.tcp]\ntype = \"filter\"\ninputs = [\"dropped\"]\nprotocols = [\"tcp\"]\n\
         [transforms.accepts]\ntype = \"filter\"\ninputs = [\"a\"]\nactions = [\"drop\"]\ndrop = true\n\
         {}{}{}{}{}",
        sink("all", "\"a\", \"b\""),
        sink("drops", "\"dropped\""),
        sink("tcp_drops", "\"tcp\""),
        sink("both", "\"dropped\", \"tcp\""),
        sink("a_and_accepts", "\"a\", \"accepts\""),
    );
    std::fs::write(dir.join("c.toml"), &cfg).unwrap();
    let n = lab::start_nflogd(None, &dir.join("c.toml"), &dir.join("log"));
    lab::wait_lines(&dir.join("all.json"), 80, Duration::from_secs(10));
    lab::wait_lines(&dir.join("a_and_accepts.json"), 60, Duration::from_secs(10));
    let log = n.stop();
    for (sink, ids_want) in &want {
        assert_eq!(
            &ids(&dir.join(format!("{sink}.json"))),
            ids_want,
            "sink `{sink}`\n{log}"
        );
    }
    let lines = |s: &str| lab::wait_lines(&dir.join(format!("{s}.json")), 0, Duration::ZERO).len();
    assert_eq!(lines("both"), want["drops"].len() + want["tcp_drops"].len());
    assert_eq!(
        lines("a_and_accepts"),
        40 + 20,
        "source a, and its accepts once more"
    );
    // Each transform counts what it took, passed and left out, over both sources.
    assert_eq!(
        lab::stat(&log, "transform.dropped", "received"),
        80,
        "{log}"
    );
    assert_eq!(lab::stat(&log, "transform.dropped", "sent"), 40, "{log}");
    assert_eq!(lab::stat(&log, "transform.dropped", "ignored"), 40, "{log}");
    assert_eq!(
        lab::stat(&log, "transform.tcp", "sent"),
        want["tcp_drops"].len() as u64,
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_refuses_cycles_and_unknown_inputs_and_warns_about_loose_ends() {
    let dir = std::env::temp_dir().join(format!("nflogd-graph-check-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |body: &str| {
        let f = dir.join("g.toml");
        std::fs::write(
            &f,
            format!("[sources.fw]\ntype = \"nflog\"\ngroups = [5]\n{body}"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nflogd"))
            .arg("check")
            .arg(&f)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let filter = |name: &str, inputs: &str| {
        format!(
            "[transforms.{name}]\ntype = \"filter\"\ninputs = [{inputs}]\nprotocols = [\"tcp\"]\n"
        )
    };
    let sink = "[sinks.out]\ntype = \"file\"\ninputs = [\"x\"]\npath = \"-\"\n";
    let (ok, msg) = check(&format!(
        "{}{}{sink}",
        filter("x", "\"fw\", \"y\""),
        filter("y", "\"x\"")
    ));
    assert!(
        !ok && msg.contains("transforms form a cycle: x → y → x"),
        "{msg}"
    );
    let (ok, msg) = check(&format!("{}{sink}", filter("x", "\"nope\"")));
    assert!(
        !ok && msg.contains("no source or transform named `nope`"),
        "{msg}"
    );
    let (ok, msg) = check(&format!(
        "{}{}{sink}",
        filter("x", "\"fw\""),
        filter("spare", "\"fw\"")
    ));
    assert!(ok, "{msg}");
    assert!(
        msg.contains("warning: transform `spare` feeds nothing"),
        "{msg}"
    );
    let (ok, msg) = check(&format!(
        "[transforms.x]\ntype = \"filter\"\ninputs = [\"fw\"]\n{sink}"
    ));
    assert!(!ok && msg.contains("needs at least one condition"), "{msg}");
    let (ok, msg) = check(&format!(
        "[transforms.x]\ntype = \"geoip2\"\ninputs = [\"fw\"]\n{sink}"
    ));
    assert!(!ok && msg.contains("geoip2"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
