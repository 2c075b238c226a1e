//! `nflogd doctor` in a lab namespace, one case per finding: each broken setting is made, the
//! doctor names it with its fix and exits 1; the clean setting gives no finding and exit 0.

mod lab;

use lab::SpawnOwned;
use lab::{Daemon, Lab};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the doctor in namespace `b` with `config`; `prefix` runs before it (setpriv…).
fn doctor(lab: &Lab, config: &str, prefix: &[&str]) -> (i32, String) {
    doctor_in(lab, Some(&lab.b), config, prefix)
}

/// Runs the doctor in namespace `ns` (None: the first one).
fn doctor_in(lab: &Lab, ns: Option<&str>, config: &str, prefix: &[&str]) -> (i32, String) {
    let path = lab.path(&format!("doctor-{}.toml", lab::tag()));
    let sink = format!(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\n",
        lab.path("out.json").display()
    );
    std::fs::write(&path, format!("stats_interval = \"0s\"\n{config}{sink}")).unwrap();
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c
        }
        None => Command::new("env"),
    };
    let out = cmd
        .args(prefix)
        .arg(env!("CARGO_BIN_EXE_nflogd"))
        .args(["doctor", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn finds(lab: &Lab, config: &str, needle: &str) {
    let (code, text) = doctor(lab, config, &[]);
    assert_eq!(code, 1, "exit status with a finding:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("finding: ") && l.contains(needle) && l.contains(" — fix: ")),
        "no finding with {needle:?}:\n{text}"
    );
}

const NFLOG9: &str = "[sources.fw]\ntype = \"nflog\"\ngroups = [9]\nsocket_buffer = \"64KiB\"\n";

/// Puts a global sysctl back as it was.
struct Sysctl(&'static str, String);

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, &self.1);
    }
}

#[test]
fn doctor_names_each_breakage_with_its_fix() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        "table inet lab {\n  chain in {\n    type filter hook input priority 0;\n    tcp dport 22 log group 9 prefix \"SSH \"\n  }\n}\n",
    );

    // Clean: the group is logged to and read, nothing else is configured.
    let (code, text) = doctor(&lab, NFLOG9, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no findings"), "{text}");

    // A source reading a group no rule logs to, and rules logging to a group no source reads.
    let other = NFLOG9.replace("[9]", "[7]");
    finds(&lab, &other, "reads NFLOG group 7, but no rule logs to it");
    finds(&lab, &other, "rules log to NFLOG group 9 (inet lab in)");

    // The kernel's own IPv4 logging handed to NFLOG group 0, which nothing reads.
    lab.exec(
        &lab.b,
        "echo nfnetlink_log > /proc/sys/net/netfilter/nf_log/2",
    );
    finds(&lab, NFLOG9, "goes to NFLOG group 0");
    lab.exec(&lab.b, "echo NONE > /proc/sys/net/netfilter/nf_log/2");

    // Conntrack's counters off while a conntrack source wants them.
    lab.exec(&lab.b, "sysctl -qw net.netfilter.nf_conntrack_acct=0");
    let ct = format!("{NFLOG9}[sources.ct]\ntype = \"conntrack\"\nsocket_buffer = \"64KiB\"\n");
    finds(&lab, &ct, "net.netfilter.nf_conntrack_acct is 0");

    // A socket buffer above rmem_max, without the capability to pass it.
    let rmem: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let big = NFLOG9.replace("64KiB", &format!("{}", rmem * 4));
    let (code, text) = doctor(&lab, &big, &["setpriv", "--bounding-set", "-net_admin"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("above net.core.rmem_max"), "{text}");
    // With the capability (root here) it is no finding.
    assert_eq!(doctor(&lab, &big, &[]).0, 0);

    // LOG rules in a namespace while the kernel logs only the first namespace's: seen from
    // the first namespace, where nf_log_all_netns lives.
    const ALL_NETNS: &str = "/proc/sys/net/netfilter/nf_log_all_netns";
    let _restore = Sysctl(ALL_NETNS, std::fs::read_to_string(ALL_NETNS).unwrap());
    std::fs::write(ALL_NETNS, "0").unwrap();
    lab.nft(
        &lab.b,
        "table inet lab2 {\n  chain in {\n    type filter hook input priority 0;\n    tcp dport 23 log prefix \"TELNET \"\n  }\n}\n",
    );
    let about_b = |text: &str| {
        text.lines().any(|l| {
            l.starts_with("finding: ")
                && l.contains(&format!("network namespace {} ", lab.b))
                && l.contains("nf_log_all_netns is 0")
        })
    };
    let (code, text) = doctor_in(&lab, None, NFLOG9, &[]);
    assert!(code == 1 && about_b(&text), "{text}");
    std::fs::write(ALL_NETNS, "1").unwrap();
    let (_, text) = doctor_in(&lab, None, NFLOG9, &[]);
    assert!(!about_b(&text), "with nf_log_all_netns=1:\n{text}");
    // Seen from the namespace itself, it can only be a note.
    let (code, text) = doctor(&lab, NFLOG9, &[]);
    assert!(
        code == 0 && text.contains("nf_log_all_netns is 1 in the first namespace"),
        "{text}"
    );

    // Legacy iptables rules (which nft does not list) logging to a group nothing reads.
    if lab::have("iptables-legacy") {
        lab.exec(
            &lab.b,
            "iptables-legacy -A INPUT -p tcp --dport 25 -j NFLOG --nflog-group 12",
        );
        finds(
            &lab,
            NFLOG9,
            "rules log to NFLOG group 12 (ip (iptables-legacy) filter INPUT)",
        );
        lab.exec(
            &lab.b,
            "iptables-legacy -D INPUT -p tcp --dport 25 -j NFLOG --nflog-group 12",
        );
    }

    // The group held by ulogd2.
    let conf = lab.path("ulogd.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nlogfile=\"{}\"\nloglevel=3\nstack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n[log1]\ngroup=9\n[emu1]\nfile=\"{}\"\n",
            lab.path("ulogd.log").display(),
            lab.path("emu.log").display()
        ),
    )
    .unwrap();
    let u = Command::new("ip")
        .args(["netns", "exec", &lab.b, "ulogd", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_owned()
        .expect("start ulogd");
    lab::wait_nflog_bound(u.id(), 9, Duration::from_secs(10));
    let _u = Daemon {
        child: Some(u),
        log: lab.path("ulogd.log"),
    };
    finds(&lab, NFLOG9, "NFLOG group 9 (source `fw`) is held by ulogd");
}
