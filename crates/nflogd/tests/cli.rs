//! The command line without the kernel: `check` and `default-config`.

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
