//! The `text` schema against the kernel itself: every packet is logged twice by one nft rule,
//! once by the kernel's LOG backend (to /dev/kmsg) and once to an NFLOG group read by nflogd,
//! with the same prefix. Both renderings must be byte-identical, with all log flags and with
//! none, for the inet (IPv4, IPv6), arp and netdev (VLAN tags, unknown ethertypes) families.

mod lab;

use lab::SpawnOwned;

use lab::{wait_lines, Kmsg, Lab};
use std::time::Duration;

#[test]
fn text_schema_equals_kernel_log_lines() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    let t = lab::tag();
    let (pa, pn) = (format!("KA{t} "), format!("KN{t} "));
    // Let LOG lines from the lab's namespace reach the kernel log.
    let _netns_log = lab::kernel_log_from_netns();
    // Loaded once nflogd and the kernel-log reader are both ready: a packet logged before one
    // of them (the namespace's own chatter comes at any time) would be seen by one side only.
    let rules = format!(
        r#"table inet lab {{
  chain pre {{
    type filter hook prerouting priority -450;
    iifname "vb" meta nfproto ipv4 jump logit
    iifname "vb" ip6 saddr fd00:200::/64 jump logit
  }}
  chain logit {{
    log prefix "{pa}" flags all log group 7 prefix "{pa}" log prefix "{pn}" log group 8 prefix "{pn}"
  }}
  chain out {{
    type filter hook output priority 0;
    oifname "vb" meta nfproto ipv4 jump logit
    oifname "vb" ip6 saddr fd00:200::/64 jump logit
  }}
}}
table arp lab {{
  chain in {{
    type filter hook input priority 0;
    log prefix "{pa}" flags all log group 7 prefix "{pa}" log prefix "{pn}" log group 8 prefix "{pn}"
  }}
  chain out {{
    type filter hook output priority 0;
    log prefix "{pa}" flags all log group 7 prefix "{pa}" log prefix "{pn}" log group 8 prefix "{pn}"
  }}
}}
table netdev lab {{
  chain ing {{
    type filter hook ingress device "vb" priority 0;
    log prefix "{pa}" flags all log group 7 prefix "{pa}" log prefix "{pn}" log group 8 prefix "{pn}"
  }}
}}"#
    );
    let (fa, fnn) = (lab.path("all.txt"), lab.path("none.txt"));
    let d = lab.nflogd(
        &lab.b,
        &format!(
            r#"
stats_interval = "0s"
[sources.all]
type = "nflog"
groups = [7]
[sources.none]
type = "nflog"
groups = [8]
[sinks.all]
type = "file"
inputs = ["all"]
path = "{}"
schema = "text"
log_flags = ["all"]
[sinks.none]
type = "file"
inputs = ["none"]
path = "{}"
schema = "text"
"#,
            fa.display(),
            fnn.display()
        ),
    );
    let mut kmsg = Kmsg::open();
    lab.nft(&lab.b, &rules);
    lab.craft();
    lab.traffic();
    // The last packet, seen inbound twice (netdev ingress, then prerouting). The namespace's own
    // chatter (router solicitations, MLD) goes on after it, so both sides are cut there.
    lab.exec(
        &lab.a,
        &format!("bash -c \"echo end >/dev/udp/{}/7919\"", lab::B4),
    );
    let cut = |lines: &[String], prefix: &str| -> Option<Vec<String>> {
        let mine: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect();
        let end = mine
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("IN=vb ") && l.contains(" DPT=7919 "))
            .nth(1)?
            .0;
        Some(mine[..=end].to_vec())
    };
    let mut kernel = Vec::new();
    let start = std::time::Instant::now();
    let (k_all, k_none) = loop {
        kernel.extend(kmsg.read());
        if let (Some(a), Some(n)) = (cut(&kernel, &pa), cut(&kernel, &pn)) {
            break (a, n);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the last packet was never logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ours = |path: &std::path::Path, prefix: &str| {
        let start = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if let Some(c) = cut(&lines, prefix) {
                return c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nflogd never logged the last packet"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (n_all, n_none) = (ours(&fa, &pa), ours(&fnn, &pn));
    d.stop();
    // Everything each side logged by now: a packet on another CPU may sit on either side of
    // the last one in one log and not the other, so each side's lines up to the cut are looked
    // for among all of the other's.
    // The lines of `mine` not found among `theirs`, each of theirs used once.
    fn missing<'a>(mine: &'a [String], theirs: &[String]) -> Vec<&'a String> {
        let mut left: Vec<&String> = theirs.iter().collect();
        let mut out = Vec::new();
        for m in mine {
            match left.iter().position(|t| *t == m) {
                Some(i) => {
                    left.remove(i);
                }
                None => out.push(m),
            }
        }
        out
    }
    let all = |lines: &[String], prefix: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    };
    let (n_all_rest, n_none_rest) = (
        wait_lines(&fa, 0, Duration::ZERO),
        wait_lines(&fnn, 0, Duration::ZERO),
    );
    // A kernel line may reach the log a moment after its NFLOG twin reached nflogd.
    let start = std::time::Instant::now();
    let (k_all_rest, k_none_rest) = loop {
        kernel.extend(kmsg.read());
        let (a, n) = (all(&kernel, &pa), all(&kernel, &pn));
        let settled = missing(&n_all, &a).is_empty() && missing(&n_none, &n).is_empty();
        if settled || start.elapsed() > Duration::from_secs(3) {
            break (a, n);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (lines, what) in [(&k_all, "flags all"), (&k_none, "no flags")] {
        assert!(
            lines.len() >= 120,
            "{what}: too few kernel lines ({}): {lines:#?}",
            lines.len()
        );
        // Each family's lines were compared, not only the inet ones: ARP lines carry its
        // opcode; with flags, netdev lines decode the MAC header and its VLAN tag.
        let marks: &[(&str, &str)] = if what == "flags all" {
            &[
                ("arp", "ARP HTYPE="),
                ("decoded MAC", "MACSRC="),
                ("vlan", "VID="),
            ]
        } else {
            &[("arp", "ARP HTYPE=")]
        };
        for (family, mark) in marks {
            assert!(
                lines.iter().any(|l| l.contains(mark)),
                "{what}: no {family} line: {lines:#?}"
            );
        }
    }
    for (kernel, kernel_rest, ours, ours_rest, what) in [
        (&k_all, &k_all_rest, &n_all, &n_all_rest, "flags all"),
        (&k_none, &k_none_rest, &n_none, &n_none_rest, "no flags"),
    ] {
        let only_kernel = missing(kernel, ours_rest);
        let only_ours = missing(ours, kernel_rest);
        assert!(
            only_kernel.is_empty() && only_ours.is_empty(),
            "{what}: {} kernel lines, {} nflogd lines.\nonly the kernel printed:\n{}\nonly nflogd rendered:\n{}",
            kernel.len(),
            ours.len(),
            only_kernel.iter().map(|s| format!("  {s:?}")).collect::<Vec<_>>().join("\n"),
            only_ours.iter().map(|s| format!("  {s:?}")).collect::<Vec<_>>().join("\n")
        );
    }
}

/// A bridge between two hosts: the nft bridge family (IN=/OUT= are the ports) and, through
/// br_netfilter, the inet family with PHYSIN=/PHYSOUT=. nflogd's text equals the kernel's.
#[test]
fn bridged_packets_equal_kernel_log_lines() {
    if !lab::available() {
        return;
    }
    let t = lab::tag();
    let (a, b, c) = (
        format!("nfl{t}ba"),
        format!("nfl{t}bb"),
        format!("nfl{t}bc"),
    );
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for ns in &self.0 {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", ns])
                    .status();
            }
        }
    }
    let _cleanup = Cleanup(vec![a.clone(), b.clone(), c.clone()]);
    for ns in [&a, &b, &c] {
        lab::sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    }
    lab::sh(&format!(
        "ip link add va netns {a} type veth peer pa netns {b}"
    ));
    lab::sh(&format!(
        "ip link add vc netns {c} type veth peer pc netns {b}"
    ));
    lab::sh(&format!(
        "ip -n {b} link add br0 type bridge && ip -n {b} link set pa master br0 && ip -n {b} link set pc master br0 && \
         ip -n {b} link set pa up && ip -n {b} link set pc up && ip -n {b} link set br0 up && \
         ip netns exec {b} sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1"
    ));
    lab::sh(&format!("ip -n {a} addr add 10.200.1.1/24 dev va && ip -n {a} addr add fd00:201::1/64 dev va nodad && ip -n {a} link set va up"));
    lab::sh(&format!("ip -n {c} addr add 10.200.1.2/24 dev vc && ip -n {c} addr add fd00:201::2/64 dev vc nodad && ip -n {c} link set vc up"));
    let (pb, pi) = (format!("BR{t} "), format!("BN{t} "));
    let rules = format!(
        r#"table bridge lab {{
  chain forwarded {{
    type filter hook forward priority 0;
    meta protocol {{ ip, arp }} log prefix "{pb}" flags all log group 7 prefix "{pb}"
    meta protocol ip6 ip6 saddr fd00:201::/64 log prefix "{pb}" flags all log group 7 prefix "{pb}"
  }}
}}
table inet lab {{
  chain forwarded {{
    type filter hook forward priority 0;
    meta nfproto ipv4 log prefix "{pi}" log group 8 prefix "{pi}"
    ip6 saddr fd00:201::/64 log prefix "{pi}" log group 8 prefix "{pi}"
  }}
}}"#
    );
    let f = std::env::temp_dir().join(format!("nflogd-br-{t}.nft"));
    std::fs::write(&f, rules).unwrap();
    lab::sh(&format!("ip netns exec {b} nft -f {}", f.display()));
    let dir = std::env::temp_dir().join(format!("nflogd-br-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (fb, fi) = (dir.join("bridge.txt"), dir.join("inet.txt"));
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.br]\ntype = \"nflog\"\ngroups = [7]\n[sources.in]\ntype = \"nflog\"\ngroups = [8]\n\
             [sinks.br]\ntype = \"file\"\ninputs = [\"br\"]\npath = \"{}\"\nschema = \"text\"\nlog_flags = [\"all\"]\n\
             [sinks.in]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\nschema = \"text\"\n",
            fb.display(),
            fi.display()
        ),
    )
    .unwrap();
    // Let LOG lines from the lab's namespace reach the kernel log.
    let _netns_log = lab::kernel_log_from_netns();
    let child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b,
            env!("CARGO_BIN_EXE_nflogd"),
            "run",
            "--config",
        ])
        .arg(&cfg)
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn_owned()
        .unwrap();
    let d = lab::Daemon {
        child: Some(child),
        log: dir.join("log"),
    };
    d.wait_log("nflogd running", Duration::from_secs(10));
    let mut kmsg = Kmsg::open();
    lab::sh(&format!(
        "ip netns exec {a} ping -c2 -i0.2 -W1 10.200.1.2 >/dev/null; ip netns exec {a} ping -6 -c1 -W1 fd00:201::2 >/dev/null; \
         ip netns exec {a} bash -c 'echo hi >/dev/udp/10.200.1.2/5353; (echo x >/dev/tcp/10.200.1.2/81) 2>/dev/null; true'"
    ));
    std::thread::sleep(Duration::from_millis(500));
    let kernel = kmsg.read();
    let k_br: Vec<_> = kernel
        .iter()
        .filter(|l| l.starts_with(&pb))
        .cloned()
        .collect();
    let k_in: Vec<_> = kernel
        .iter()
        .filter(|l| l.starts_with(&pi))
        .cloned()
        .collect();
    let n_br = wait_lines(&fb, k_br.len(), Duration::from_secs(5));
    let n_in = wait_lines(&fi, k_in.len(), Duration::from_secs(5));
    d.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&f);
    assert!(
        k_br.iter().any(|l| l.contains("IN=pa OUT=pc")),
        "bridge lines name the ports: {k_br:#?}"
    );
    assert!(
        k_br.iter().any(|l| l.contains(" ARP HTYPE=1")),
        "ARP crossed the bridge: {k_br:#?}"
    );
    assert!(
        k_in.iter()
            .any(|l| l.contains("IN=br0 OUT=br0 PHYSIN=pa PHYSOUT=pc")),
        "br_netfilter lines carry PHYSIN/PHYSOUT: {k_in:#?}"
    );
    assert_eq!(n_br, k_br, "bridge family: nflogd differs from the kernel");
    assert_eq!(n_in, k_in, "br_netfilter: nflogd differs from the kernel");
}
