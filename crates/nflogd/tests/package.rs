//! The Debian package, as a user gets it: `scripts/package` builds it, dpkg installs it (the
//! binary, the default configuration as a conffile, the unit, man pages, completions, the
//! system user), the unit is clean under `systemd-analyze verify` and rated OK or better by
//! `systemd-analyze security`; the installed binary, run as the service user with only the
//! unit's capability (setpriv), reads NFLOG in a lab namespace, and without it says which
//! capability it lacks; purging removes what installing made.
//!
//! It installs a package system-wide, so it runs under CI (or with NFLOGD_PACKAGE_TEST=1).

mod lab;

use lab::{Daemon, Lab, SpawnOwned, B4};
use std::process::{Command, Stdio};
use std::time::Duration;

fn run(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ok(cmd: &str) -> String {
    let (ok, out) = run(cmd);
    assert!(ok, "`{cmd}` failed:\n{out}");
    out
}

/// Purges the package if the test ends early, so no run leaves it installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg --purge nflogd");
    }
}

#[test]
fn the_package_installs_runs_least_privileged_and_purges() {
    if !lab::under_ci() && std::env::var_os("NFLOGD_PACKAGE_TEST").is_none() {
        lab::skip("installs a package system-wide: runs under CI or with NFLOGD_PACKAGE_TEST=1");
        return;
    }
    if !lab::available() {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = ok(&format!("cd {} && scripts/package", root.display()));
    let deb = built.lines().last().unwrap().trim().to_string();
    assert!(deb.ends_with(".deb"), "{built}");
    ok(&format!("dpkg -i {deb}"));
    let _installed = Installed;

    // What installing made.
    let default = ok("/usr/bin/nflogd default-config");
    assert_eq!(
        std::fs::read_to_string("/etc/nflogd/nflogd.toml").unwrap(),
        default
    );
    assert!(ok("dpkg-query -W -f='${Conffiles}' nflogd").contains("/etc/nflogd/nflogd.toml"));
    assert!(ok("getent passwd nflogd").contains("/usr/sbin/nologin"));
    assert_eq!(
        ok("stat -c '%U:%G %a' /etc/nflogd/nflogd.toml").trim(),
        "root:nflogd 640"
    );
    for f in [
        "/usr/share/man/man8/nflogd.8.gz",
        "/usr/share/man/man8/nflogd-run.8.gz",
        "/usr/share/man/man5/nflogd.toml.5.gz",
        "/usr/share/bash-completion/completions/nflogd",
        "/usr/share/zsh/vendor-completions/_nflogd",
        "/usr/share/fish/vendor_completions.d/nflogd.fish",
    ] {
        assert!(std::path::Path::new(f).exists(), "{f} missing");
    }
    let page = ok("zcat /usr/share/man/man5/nflogd.toml.5.gz");
    assert!(
        page.contains(".SH \\fB[sources.NAME] type = \"nflog\"\\fR"),
        "{page:.400}"
    );
    assert!(ok("zcat /usr/share/man/man8/nflogd-trace.8.gz").contains("\\-\\-netns"));
    assert!(
        ok("bash -c '. /usr/share/bash-completion/completions/nflogd && complete -p nflogd'")
            .contains("nflogd")
    );

    // The unit.
    let unit = "/lib/systemd/system/nflogd.service";
    let verify = ok(&format!("systemd-analyze verify {unit} 2>&1"));
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    let security = ok(&format!(
        "systemd-analyze security --offline=true {unit} 2>&1"
    ));
    let rating = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{security}"));
    assert!(
        rating.contains(" OK ") || rating.contains(" SAFE "),
        "{rating}"
    );

    // The installed binary as the service user, with only the unit's capability, reads NFLOG
    // in a lab namespace.
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        "table inet pkg {\n  chain input {\n    type filter hook input priority 0;\n    udp dport 5400 log group 31 prefix \"PKG \"\n  }\n}\n",
    );
    let dir = lab.path("pkg");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events.json");
    let cfg = dir.join("nflogd.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.n]\ntype = \"nflog\"\ngroups = [31]\n[sinks.f]\ntype = \"file\"\ninputs = [\"n\"]\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    ok(&format!("chown -R nflogd:nflogd {}", dir.display()));
    // The lab's directory is root's; the service user needs to pass through it.
    ok(&format!("chmod o+x {}", lab.path("").display()));
    let as_service = |caps: &str, log: &std::path::Path| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.b,
                "setpriv",
                "--reuid=nflogd",
                "--regid=nflogd",
                "--init-groups",
            ])
            .arg(format!("--inh-caps=-all{caps}"))
            .arg(format!("--ambient-caps=-all{caps}"))
            .arg(format!("--bounding-set=-all{caps}"))
            .args(["--no-new-privs", "/usr/bin/nflogd", "run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn_owned()
            .unwrap()
    };
    // Without it: an error naming the source and the capability.
    let denied_log = lab.path("denied.log");
    let mut denied = as_service("", &denied_log);
    let status = denied.wait().unwrap();
    let text = std::fs::read_to_string(&denied_log).unwrap();
    assert!(!status.success(), "{text}");
    assert!(text.contains("source `n` needs CAP_NET_ADMIN"), "{text}");

    let log = lab.path("service.log");
    let d = Daemon {
        child: Some(as_service(",+net_admin", &log)),
        log: log.clone(),
    };
    d.wait_log("nflogd running", Duration::from_secs(10));
    assert!(
        d.log_text()
            .contains("running without root, with CAP_NET_ADMIN"),
        "{}",
        d.log_text()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .to_string()
    };
    // CAP_NET_ADMIN is bit 12: effective and permitted hold it and nothing else.
    assert_eq!(field("CapEff:"), "0000000000001000");
    assert_eq!(field("CapPrm:"), "0000000000001000");
    assert_ne!(field("Uid:").split_whitespace().next(), Some("0"));
    lab.exec(
        &lab.a,
        &format!("bash -c 'for i in 1 2 3; do echo x >/dev/udp/{B4}/5400; done' 2>/dev/null"),
    );
    let lines = lab::wait_lines(&out, 3, Duration::from_secs(10));
    d.stop();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["netfilter"]["prefix"], "PKG ");
        assert_eq!(v["destination"]["port"], 5400);
    }
    assert_eq!(
        ok(&format!("stat -c %U {}", out.display())).trim(),
        "nflogd"
    );

    // Purge: nothing of it is left.
    ok("dpkg --purge nflogd");
    for gone in ["/usr/bin/nflogd", "/etc/nflogd", "/var/lib/nflogd", unit] {
        assert!(
            !std::path::Path::new(gone).exists(),
            "{gone} left after purge"
        );
    }
    assert!(
        !run("getent passwd nflogd").0,
        "the user is left after purge"
    );
    assert!(
        !run("getent group nflogd").0,
        "the group is left after purge"
    );
}
