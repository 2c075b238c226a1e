//! The command line without the kernel: `check` and `default-config`.

mod lab;

use lab::SpawnOwned;

use std::process::Command;

fn nflogd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_accepts_the_default_and_points_at_bad_keys() {
    let dir = std::env::temp_dir().join(format!("nflogd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, default) = nflogd(&["default-config"]);
    assert!(ok);
    let good = dir.join("good.toml");
    std::fs::write(&good, &default).unwrap();
    let (ok, msg) = nflogd(&["check", good.to_str().unwrap()]);
    assert!(ok, "{msg}");
    assert!(msg.contains("ok"));

    // Each bad file is the default with one change, which must really be there to change.
    let edited = |from: &str, to: &str| {
        assert!(default.contains(from), "the default has no `{from}`");
        default.replace(from, to)
    };
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        edited("groups = [1]", "groups = [1]\nqthreshhold = 5"),
    )
    .unwrap();
    let (ok, msg) = nflogd(&["check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(msg.contains("qthreshhold") && msg.contains("line"), "{msg}");

    std::fs::write(&bad, edited("schema = \"ecs\"", "schema = \"xml\"")).unwrap();
    let (ok, msg) = nflogd(&["check", bad.to_str().unwrap()]);
    assert!(!ok && msg.contains("xml"), "{msg}");

    std::fs::write(
        &bad,
        edited("groups = [1]", "groups = [1]\nqtimeout = \"soon\""),
    )
    .unwrap();
    let (ok, msg) = nflogd(&["check", bad.to_str().unwrap()]);
    assert!(!ok && msg.contains("soon"), "{msg}");

    let (ok, msg) = nflogd(&["check", dir.join("missing.toml").to_str().unwrap()]);
    assert!(!ok && msg.contains("missing.toml"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A thread that dies is not left unnoticed: the panic is logged with the thread's name and
/// nflogd stops with exit status 1 (so that systemd restarts it), whether a source or a sink
/// died. The fault points exist in test builds only (feature `failpoints`).
#[test]
fn a_thread_that_panics_stops_nflogd_with_status_1() {
    if !cfg!(feature = "failpoints") {
        lab::skip("built without the `failpoints` feature (scripts/test builds with it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-panic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.log");
    std::fs::write(&input, "IPTABLES: DROP IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8\n").unwrap();
    let cfg = dir.join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}/pos\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{}/out.json\"\n",
            input.display(),
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    for (point, thread) in [("file-source-read", "file:f"), ("file-sink-take", "file:o")] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nflogd"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("FAILPOINTS", format!("{point}=panic"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn_owned()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{point}: nflogd went on running with a dead thread");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut log = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        assert_eq!(status.code(), Some(1), "{point}: exit status\n{log}");
        assert!(
            log.contains(&format!("thread `{thread}` died")),
            "{point}: the dead thread is named in the log\n{log}"
        );
        let _ = std::fs::remove_file(dir.join("pos"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
