//! The guard against a real OpenSSH server in a namespace, attacked from another over IPv4 and
//! IPv6 with sshpass: bans in nflogd's own nftables table, within a second of the deciding
//! try; the attacker's new connections fail; allowed and single-typo addresses are left alone;
//! the /64 is blocked; bans end, come back after `nft flush ruleset` and after a restart; a
//! port scan through an NFLOG rule is banned too.

mod lab;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const ALLOWED4: &str = "10.200.0.50";
const TYPO4: &str = "10.200.0.60";
const SCAN4: &str = "10.200.0.70";
/// The attacker's IPv6 /64, routed to the server (not on the server's own link prefix).
const ATTACK6: &str = "fd00:201::5";
const SAME64: &str = "fd00:201::6";

/// One failed password login from `from`, as sshpass answers the prompt (the command line, to
/// run in the attacker's namespace).
fn ssh_command(from: &str, to: &str, user: &str) -> String {
    format!(
        "timeout 5 sshpass -p wrong ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o PubkeyAuthentication=no -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 \
         -o ConnectTimeout=2 -b {from} {user}@{to} true >/dev/null 2>&1; true"
    )
}

fn ssh_try(lab: &lab::Lab, from: &str, to: &str, user: &str) {
    lab.exec(&lab.a, &ssh_command(from, to, user));
}

/// Whether the server answers a TCP connection from `from` within a second. The probe goes to
/// a closed port (the server's refusal is an answer; a ban's drop gives none), so it is not an
/// sshd connection the guard would count.
fn connects(lab: &lab::Lab, from: &str, to: &str) -> bool {
    let out = lab.exec(
        &lab.a,
        &format!(
            "/usr/bin/python3 -c 'import socket,sys\ns=socket.socket(socket.AF_INET6 if \":\" in \"{to}\" else socket.AF_INET)\ns.settimeout(1)\ns.bind((\"{from}\",0))\ntry:\n  s.connect((\"{to}\",23)); print(\"answered\")\nexcept ConnectionRefusedError: print(\"answered\")\nexcept Exception as e: print(\"silent\", e)'"
        ),
    );
    out.contains("answered")
}

fn set_elements(lab: &lab::Lab, set: &str) -> String {
    lab.exec(
        &lab.b,
        &format!("nft list set inet nflogd_guard {set} 2>&1; true"),
    )
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {timeout:?}");
}

fn decisions(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sshd_attackers_and_scanners_are_banned_in_the_kernel() {
    if !lab::available() {
        return;
    }
    if !lab::have("sshd") || !lab::have("sshpass") {
        lab::skip("openssh-server and sshpass are needed (scripts/deps installs them)");
        return;
    }
    let lab = lab::Lab::new();
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // The attacker's extra addresses: allowed, single typo, scanner, and an IPv6 /64 routed
    // to the server.
    lab::sh(&format!(
        "ip -n {a} addr add {ALLOWED4}/24 dev va && ip -n {a} addr add {TYPO4}/24 dev va && ip -n {a} addr add {SCAN4}/24 dev va \
         && ip -n {a} addr add {ATTACK6}/128 dev va nodad && ip -n {a} addr add {SAME64}/128 dev va nodad \
         && ip -n {b} -6 route add fd00:201::/64 dev vb && ip -n {a} -6 route add {b6}/128 dev va src {ATTACK6}",
        b6 = lab::B6
    ));
    let dir = lab.dir.clone();
    std::fs::create_dir_all("/run/sshd").unwrap();
    lab::sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {}/hostkey",
        dir.display()
    ));
    let sshd_log = dir.join("sshd.log");
    std::fs::write(&sshd_log, "").unwrap();
    use lab::SpawnOwned;
    let _sshd = lab::Daemon {
        child: Some(
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &b,
                    "/usr/sbin/sshd",
                    "-D",
                    "-f",
                    "/dev/null",
                ])
                .arg("-o")
                .arg(format!("HostKey={}/hostkey", dir.display()))
                .args(["-o", "ListenAddress=0.0.0.0", "-o", "ListenAddress=::"])
                .args([
                    "-o",
                    "UsePAM=no",
                    "-o",
                    "PidFile=none",
                    "-o",
                    "LogLevel=INFO",
                ])
                .args(["-o", "MaxStartups=100", "-o", "PerSourceMaxStartups=none"])
                .arg("-E")
                .arg(&sshd_log)
                .spawn_owned()
                .unwrap(),
        ),
        log: sshd_log.clone(),
    };
    wait_for("sshd listening", Duration::from_secs(10), || {
        std::fs::read_to_string(&sshd_log)
            .unwrap_or_default()
            .contains("Server listening on :: port 22")
    });
    // Port scans arrive through NFLOG: new TCP connections to closed ports are logged and
    // rejected.
    lab.nft(
        &b,
        "table inet fw {\n chain input {\n type filter hook input priority 0; policy accept;\n \
         tcp dport 1000-2000 ct state new log group 9 prefix \"DROP \" drop\n }\n}\n",
    );
    let out = dir.join("decisions.json");
    let cfg = format!(
        "stats_interval = \"0s\"\n\
         [sources.auth]\ntype = \"file\"\npath = \"{log}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\npoll_interval = \"50ms\"\n\
         [sources.fw]\ntype = \"nflog\"\ngroups = [9]\n\
         [transforms.guard]\ntype = \"guard\"\ninputs = [\"auth\", \"fw\"]\nban_time = \"20s\"\ntable = \"nflogd_guard\"\n\
         allow = [\"{ALLOWED4}/32\"]\nstate_file = \"{d}/guard.json\"\ncontrol_socket = \"{d}/guard.sock\"\n\
         [transforms.guard.detectors.sshd]\nmax_retry = 3\nfind_time = \"1m\"\n\
         [transforms.guard.detectors.portscan]\nports = 8\nfind_time = \"10s\"\n\
         [sinks.decisions]\ntype = \"file\"\ninputs = [\"guard\"]\npath = \"{out}\"\n",
        log = sshd_log.display(),
        d = dir.display(),
        out = out.display()
    );
    let cfg_path = dir.join("guard.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let nflogd_log = dir.join("nflogd.log");
    let n = lab::start_nflogd(Some(&b), &cfg_path, &nflogd_log);
    lab::wait_nflog_bound(n.pid(), 9, Duration::from_secs(5));
    assert!(set_elements(&lab, "ban4").contains("flags interval,timeout"));

    // A single typo (one wrong password for a real user) and an allowed address that fails
    // again and again: no ban.
    ssh_try(&lab, TYPO4, lab::B4, "root");
    for _ in 0..5 {
        ssh_try(&lab, ALLOWED4, lab::B4, "nosuchuser");
    }
    // The attacker over IPv4: the third invalid-user try decides.
    assert!(connects(&lab, lab::A4, lab::B4));
    // The third try decides as soon as sshd logs its `Invalid user` line; the ban then cuts
    // that very connection short. The time is taken from when the line is in the log.
    for _ in 0..2 {
        ssh_try(&lab, lab::A4, lab::B4, "admin");
    }
    let invalid = || {
        std::fs::read_to_string(&sshd_log)
            .unwrap_or_default()
            .matches(&format!("Invalid user admin from {} ", lab::A4))
            .count()
    };
    let third = std::thread::spawn({
        let command = format!(
            "ip netns exec {a} {}",
            ssh_command(lab::A4, lab::B4, "admin")
        );
        move || lab::sh(&command)
    });
    wait_for(
        "the deciding try in sshd's log",
        Duration::from_secs(10),
        || invalid() >= 3,
    );
    let took = wait_for("IPv4 ban in the kernel", Duration::from_secs(3), || {
        set_elements(&lab, "ban4").contains(lab::A4)
    });
    let banned_at = Instant::now();
    println!("ban in the kernel {took:?} after sshd logged the deciding try");
    third.join().unwrap();
    assert!(took < Duration::from_secs(1), "ban took {took:?}");
    assert!(
        !connects(&lab, lab::A4, lab::B4),
        "the banned attacker still connects"
    );
    assert!(connects(&lab, TYPO4, lab::B4), "a single typo was banned");
    assert!(
        connects(&lab, ALLOWED4, lab::B4),
        "an allowed address was banned"
    );
    let ban4 = set_elements(&lab, "ban4");
    assert!(!ban4.contains(TYPO4) && !ban4.contains(ALLOWED4), "{ban4}");

    // IPv6: three tries from one address ban its /64; a neighbour in the /64 is blocked too.
    for _ in 0..3 {
        ssh_try(&lab, ATTACK6, lab::B6, "admin");
    }
    wait_for("IPv6 /64 ban", Duration::from_secs(3), || {
        set_elements(&lab, "ban6").contains("fd00:201::/64")
    });
    assert!(!connects(&lab, SAME64, lab::B6), "the /64 is not blocked");

    // `nft flush ruleset` takes the table away: it is back within a second, with its bans.
    lab.exec(&b, "nft flush ruleset");
    let back = wait_for("table back after a flush", Duration::from_secs(2), || {
        set_elements(&lab, "ban4").contains(lab::A4)
    });
    println!("table back {back:?} after the flush");
    assert!(!connects(&lab, lab::A4, lab::B4));

    // `nflogd guard list` shows both bans.
    let list = lab::sh(&format!(
        "{} guard --socket {}/guard.sock list",
        env!("CARGO_BIN_EXE_nflogd"),
        dir.display()
    ));
    assert!(
        list.contains(&format!("{}/32", lab::A4)) && list.contains("fd00:201::/64"),
        "{list}"
    );

    // A restart keeps the bans: the table is rebuilt from the state file with the time left.
    let log = n.stop();
    assert_eq!(lab::stat(&log, "transform.guard", "bans"), 2, "{log}");
    assert!(lab::stat(&log, "transform.guard", "restored") >= 1, "{log}");
    // The allowed address's five tries were seen, each counted once, as allowed.
    assert_eq!(lab::stat(&log, "transform.guard", "allowed"), 5, "{log}");
    lab.exec(&b, "nft delete table inet nflogd_guard");
    let n = lab::start_nflogd(Some(&b), &cfg_path, &nflogd_log);
    lab::wait_nflog_bound(n.pid(), 9, Duration::from_secs(5));
    let restored = set_elements(&lab, "ban4");
    println!(
        "after restart, {:?} after the ban: {restored}",
        banned_at.elapsed()
    );
    assert!(restored.contains(lab::A4), "not restored");
    assert!(n.log_text().contains("2 bans restored"));

    // The ban ends: the kernel's timeout removes it and the guard reports the unban.
    wait_for("ban expiry", Duration::from_secs(30), || {
        !set_elements(&lab, "ban4").contains(lab::A4)
    });
    println!("expired {:?} after the ban", banned_at.elapsed());
    assert!(
        banned_at.elapsed() >= Duration::from_secs(19),
        "a 20 s ban ended early"
    );
    assert!(connects(&lab, lab::A4, lab::B4), "the ban did not end");

    // A port scan through the NFLOG rule: 8 closed ports from one source.
    lab.nft(
        &b,
        "table inet fw {\n chain input {\n type filter hook input priority 0; policy accept;\n \
         tcp dport 1000-2000 ct state new log group 9 prefix \"DROP \" drop\n }\n}\n",
    );
    lab.exec(
        &a,
        &format!(
            "for p in 1001 1002 1003 1004 1005 1006 1007 1008; do /usr/bin/python3 -c 'import socket\ns=socket.socket()\ns.settimeout(0.2)\ns.bind((\"{SCAN4}\",0))\ntry: s.connect((\"{}\",'$p'))\nexcept Exception: pass'; done",
            lab::B4
        ),
    );
    wait_for("port-scan ban", Duration::from_secs(3), || {
        set_elements(&lab, "ban4").contains(SCAN4)
    });
    wait_for("unban events", Duration::from_secs(30), || {
        decisions(&out)
            .iter()
            .filter(|d| d["event"]["action"] == "unban")
            .count()
            >= 2
    });
    let log = n.stop();
    let d = decisions(&out);
    let bans: Vec<(String, String)> = d
        .iter()
        .filter(|d| d["event"]["action"] == "ban")
        .map(|d| {
            (
                d["netfilter"]["guard"]["prefix"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["rule"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        bans,
        [
            (format!("{}/32", lab::A4), "sshd".into()),
            ("fd00:201::/64".into(), "sshd".into()),
            (format!("{SCAN4}/32"), "portscan".into()),
        ],
        "{d:#?}"
    );
    lab::ecs::assert_conforms(&d);
    for rec in &d {
        assert_eq!(rec["event"]["dataset"], "netfilter.guard");
        assert!(rec["netfilter"]["guard"]["duration"].as_u64().is_some());
    }
    assert_eq!(lab::stat(&log, "transform.guard", "unbans"), 2, "{log}");
}

/// The iptables-era backends, through `nflogd guard ban|unban` and a restart: xt_recent (the
/// seed's `/proc/net/xt_recent` list) and ipset (hash:net sets with per-entry timeouts), each
/// with an iptables rule that drops what it holds.
#[test]
fn xt_recent_and_ipset_backends_hold_the_bans() {
    if !lab::available() {
        return;
    }
    if !lab::have("iptables") || !lab::have("ipset") {
        lab::skip("iptables and ipset are needed (scripts/deps installs them)");
        return;
    }
    let lab = lab::Lab::new();
    let b = lab.b.clone();
    let dir = lab.dir.clone();
    lab.exec(
        &b,
        "iptables -A INPUT -m recent --name nflogdlist --rcheck --seconds 3600 -j DROP \
         && ipset create nflogdset hash:net timeout 0 && ipset create nflogdset6 hash:net family inet6 timeout 0 \
         && iptables -A INPUT -m set --match-set nflogdset src -j DROP \
         && ip6tables -A INPUT -m set --match-set nflogdset6 src -j DROP",
    );
    let guard = |backend: &str, key: &str| {
        let cfg = format!(
            "stats_interval = \"0s\"\n[sources.in]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{port}\"\n\
             [transforms.g]\ntype = \"guard\"\ninputs = [\"in\"]\nbackend = \"{backend}\"\n{key}\nban_time = \"1h\"\n\
             state_file = \"{d}/{backend}.json\"\ncontrol_socket = \"{d}/{backend}.sock\"\n\
             [transforms.g.detectors.sshd]\n[sinks.o]\ntype = \"file\"\ninputs = [\"g\"]\npath = \"{d}/{backend}.out\"\n",
            port = lab::free_port(),
            d = dir.display()
        );
        let path = dir.join(format!("{backend}.toml"));
        std::fs::write(&path, cfg).unwrap();
        path
    };
    let ctl = |backend: &str, args: &str| {
        lab::sh(&format!(
            "{} guard --socket {}/{backend}.sock {args}",
            env!("CARGO_BIN_EXE_nflogd"),
            dir.display()
        ))
    };
    // A log file per start: `start_nflogd` waits for its "running" line.
    let log = |n: &str| dir.join(format!("{n}.log"));

    // xt_recent: a ban is an entry of the list, an unban removes it; a restart puts the
    // bans back into a list that lost them.
    let cfg = guard("xt_recent", "xt_recent = \"nflogdlist\"");
    let n = lab::start_nflogd(Some(&b), &cfg, &log("xt1"));
    ctl("xt_recent", "ban 10.200.0.1");
    ctl("xt_recent", "ban 10.200.0.9");
    let list = || lab.exec(&b, "cat /proc/net/xt_recent/nflogdlist");
    assert!(
        list().contains("src=10.200.0.1 ") && list().contains("src=10.200.0.9 "),
        "{}",
        list()
    );
    assert!(!lab
        .exec(
            &lab.a,
            "ping -c1 -W1 10.200.0.2 >/dev/null && echo up; true"
        )
        .contains("up"));
    ctl("xt_recent", "unban 10.200.0.9");
    assert!(!list().contains("src=10.200.0.9 "), "{}", list());
    n.stop();
    lab.exec(&b, "echo / > /proc/net/xt_recent/nflogdlist");
    let n = lab::start_nflogd(Some(&b), &cfg, &log("xt2"));
    assert!(
        list().contains("src=10.200.0.1 "),
        "not restored: {}",
        list()
    );
    ctl("xt_recent", "unban 10.200.0.1");
    assert!(lab
        .exec(
            &lab.a,
            "ping -c1 -W1 10.200.0.2 >/dev/null && echo up; true"
        )
        .contains("up"));
    n.stop();

    // ipset: prefixes with their timeouts, IPv4 and IPv6 sets, restored after a flush.
    let cfg = guard("ipset", "ipset = \"nflogdset\"");
    let n = lab::start_nflogd(Some(&b), &cfg, &log("ipset1"));
    ctl("ipset", "ban 10.200.0.1 --for 10m");
    ctl("ipset", "ban fd00:200::1");
    let set4 = || lab.exec(&b, "ipset list nflogdset");
    let set6 = || lab.exec(&b, "ipset list nflogdset6");
    let left: u64 = set4()
        .lines()
        .find_map(|l| l.strip_prefix("10.200.0.1 timeout "))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", set4()));
    assert!((590..=600).contains(&left), "a 10 min ban has {left}s left");
    assert!(set6().contains("fd00:200::1 timeout"), "{}", set6());
    assert!(!lab
        .exec(
            &lab.a,
            "ping -c1 -W1 10.200.0.2 >/dev/null && echo up; true"
        )
        .contains("up"));
    let listed = ctl("ipset", "list");
    assert!(
        listed.contains("10.200.0.1/32") && listed.contains("fd00:200::1/128"),
        "{listed}"
    );
    n.stop();
    lab.exec(&b, "ipset flush nflogdset && ipset flush nflogdset6");
    let n = lab::start_nflogd(Some(&b), &cfg, &log("ipset2"));
    assert!(
        set4().contains("10.200.0.1 timeout"),
        "not restored: {}",
        set4()
    );
    ctl("ipset", "unban 10.200.0.1");
    assert!(!set4().contains("10.200.0.1 timeout"), "{}", set4());
    assert!(lab
        .exec(
            &lab.a,
            "ping -c1 -W1 10.200.0.2 >/dev/null && echo up; true"
        )
        .contains("up"));
    let log = n.stop();
    assert_eq!(lab::stat(&log, "transform.g", "errors"), 0, "{log}");
}
