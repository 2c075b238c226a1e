//! Kernel LOG lines as a source: read from /dev/kmsg they become the same records as the NFLOG
//! copy of the same packets; followed in a file they survive rotation, truncation and restarts;
//! `nflogd parse` unwraps every envelope and keeps what it cannot parse.

mod lab;

use lab::SpawnOwned;

use lab::{json_lines, wait_lines, Lab};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    v,
                    out,
                );
            }
        }
        v => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

#[test]
fn kmsg_lines_give_the_same_records_as_nflog() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    let t = lab::tag();
    let p = format!("KL{t} ");
    // Let LOG lines from the lab's namespace reach the kernel log.
    let _netns_log = lab::kernel_log_from_netns();
    lab.nft(
        &lab.b,
        &format!(
            r#"table inet lab {{
  chain pre {{
    type filter hook prerouting priority -450;
    iifname "vb" meta nfproto ipv4 jump logit
    iifname "vb" ip6 saddr fd00:200::/64 jump logit
  }}
  chain logit {{
    log prefix "{p}" flags all log group 7 prefix "{p}"
  }}
}}"#
        ),
    );
    let (kt, ke, ne) = (
        lab.path("kmsg.txt"),
        lab.path("kmsg.json"),
        lab.path("nflog.json"),
    );
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.k]\ntype = \"kmsg\"\n[sources.n]\ntype = \"nflog\"\ngroups = [7]\n\
             [sinks.kt]\ntype = \"file\"\ninputs = [\"k\"]\npath = \"{}\"\nschema = \"text\"\n\
             [sinks.ke]\ntype = \"file\"\ninputs = [\"k\"]\npath = \"{}\"\n\
             [sinks.ne]\ntype = \"file\"\ninputs = [\"n\"]\npath = \"{}\"\n",
            kt.display(),
            ke.display(),
            ne.display()
        ),
    );
    let mut kmsg = lab::Kmsg::open();
    lab.craft();
    lab.traffic();
    std::thread::sleep(Duration::from_millis(500));
    let kernel: Vec<String> = kmsg
        .read()
        .into_iter()
        .filter(|l| l.starts_with(&p))
        .collect();
    let nflog = json_lines(&wait_lines(&ne, kernel.len(), Duration::from_secs(5)));
    lab::ecs::assert_conforms(&nflog);
    let text: Vec<String> = wait_lines(&kt, kernel.len(), Duration::from_secs(5))
        .into_iter()
        .filter(|l| l.starts_with(&p))
        .collect();
    let from_kmsg: Vec<Value> = json_lines(
        &std::fs::read_to_string(&ke)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .filter(|r| r["netfilter"]["prefix"] == p.as_str())
    .collect();
    d.stop();

    assert!(kernel.len() >= 50, "only {} kernel lines", kernel.len());
    // Options decoded from the line's OPT hex (the comparison below then holds them equal).
    let with = |key: &str, v: Value| from_kmsg.iter().any(|r| r["iptables"][key] == v);
    assert!(with(
        "ip_loose_source_route",
        serde_json::json!(["10.200.0.7", "10.200.0.8"])
    ));
    assert!(with("ip_timestamps", serde_json::json!([1000, 2000])));
    assert!(from_kmsg
        .iter()
        .any(|r| r["iptables"]["tcp"]["sack"][1]["right"] == 400));
    // Read from /dev/kmsg, parsed and rendered again: the kernel's own lines.
    assert_eq!(text, kernel, "kmsg → text differs from the kernel's lines");
    // Parsed from the line or decoded from NFLOG: the same values for every field both have.
    assert_eq!(
        from_kmsg.len(),
        nflog.len(),
        "one record per packet from each source"
    );
    let mut diffs = Vec::new();
    for (i, (k, n)) in from_kmsg.iter().zip(&nflog).enumerate() {
        let (mut fk, mut fnl) = (BTreeMap::new(), BTreeMap::new());
        flatten("", k, &mut fk);
        flatten("", n, &mut fnl);
        let common: Vec<_> = fk
            .keys()
            .filter(|key| fnl.contains_key(*key) && *key != "@timestamp")
            .cloned()
            .collect();
        assert!(
            common.len() >= 20,
            "#{i}: only {} common fields: {k}\n{n}",
            common.len()
        );
        for key in common {
            if fk[&key] != fnl[&key] {
                diffs.push(format!(
                    "#{i} {key}: kmsg {} vs nflog {}",
                    fk[&key], fnl[&key]
                ));
            }
        }
        // The instants agree (kmsg stamps are monotonic time placed on the wall clock).
        let ts = |r: &Value| {
            chrono::DateTime::parse_from_rfc3339(r["@timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        if (ts(k) - ts(n)).abs() > 2000 {
            diffs.push(format!(
                "#{i} @timestamp: kmsg {} vs nflog {}",
                k["@timestamp"], n["@timestamp"]
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

fn kernel_lines() -> Vec<String> {
    include_str!("../../logline/tests/kernel-lines.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "Nov 23 10:00:00 fw1 kernel: [12345.678901] {l}").unwrap();
    }
}

#[test]
fn file_source_follows_rotation_truncation_and_restarts() {
    let dir = std::env::temp_dir().join(format!("nflogd-follow-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, out, state) = (dir.join("kern.log"), dir.join("out.txt"), dir.join("pos"));
    let lines = kernel_lines();
    append(&log, &lines[0..10]);
    let cfg = dir.join("f.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}\"\npoll_interval = \"50ms\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{}\"\nschema = \"text\"\n",
            log.display(),
            state.display(),
            out.display()
        ),
    )
    .unwrap();
    let start = || lab::start_nflogd(None, &cfg, &dir.join("nflogd.log"));
    let d = start();
    assert_eq!(wait_lines(&out, 10, Duration::from_secs(5)).len(), 10);
    // logrotate by rename: late writes to the old file, then a new file.
    std::fs::rename(&log, dir.join("kern.log.1")).unwrap();
    append(&dir.join("kern.log.1"), &lines[10..12]);
    append(&log, &lines[12..17]);
    assert_eq!(wait_lines(&out, 17, Duration::from_secs(5)).len(), 17);
    // copytruncate.
    std::fs::copy(&log, dir.join("kern.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(&log, &lines[17..20]);
    assert_eq!(wait_lines(&out, 20, Duration::from_secs(5)).len(), 20);
    d.stop();
    // Written while nflogd is down, read after it restarts, nothing twice.
    append(&log, &lines[20..24]);
    let d = start();
    let got = wait_lines(&out, 24, Duration::from_secs(5));
    d.stop();
    assert_eq!(
        got,
        lines[..24].to_vec(),
        "every line once, in order, rendered back exactly"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parse_command_unwraps_every_envelope_and_keeps_bad_lines() {
    let body = "IPTABLES: DROP IN=eth0 OUT= MAC=b6:2a:bb:9c:87:e1:06:f7:19:19:b5:4a:08:00 SRC=192.0.2.1 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1234 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=65535 RES=0x00 SYN URGP=0 ";
    let input = [
        body.to_string(),
        format!("<4>[  883.782525] {body}"),
        format!("4,456,891228269,-;{body}"),
        format!("Nov 23 10:00:00 fw1 kernel: [16571.459614] {body}"),
        format!(
            "<4>1 2026-11-23T10:00:00.5Z fw1 kernel - LOG [SEKOIA@53288 intake_key=\"x\"] {body}"
        ),
        format!(
            r#"{{"__REALTIME_TIMESTAMP":"1795428000250000","PRIORITY":"4","_TRANSPORT":"kernel","MESSAGE":"{body}","_HOSTNAME":"fw9"}}"#
        ),
        "Nov 23 10:00:01 fw1 sshd[123]: Accepted publickey for root".to_string(),
        "Nov 23 10:00:02 fw1 kernel: IPTABLES: DROP IN=eth0 OUT= SRC=nonsense".to_string(),
    ]
    .join("\n");
    let parse = |input: &str| parse_stdin(&["--schema", "ecs"], input.as_bytes());
    let (recs, err) = parse(&input);
    lab::ecs::assert_conforms(&recs);
    assert_eq!(
        recs.len(),
        7,
        "six packets and one raw record; the sshd line is not netfilter"
    );
    for r in &recs[..6] {
        assert_eq!(r["source"]["ip"], "192.0.2.1");
        assert_eq!(r["destination"]["port"], 443);
        assert_eq!(r["event"]["action"], "drop");
        assert_eq!(r["source"]["mac"], "06-F7-19-19-B5-4A");
    }
    assert_eq!(recs[3]["observer"]["hostname"], "fw1");
    assert_eq!(recs[4]["@timestamp"], "2026-11-23T10:00:00.500000Z");
    assert_eq!(recs[1]["log"]["syslog"]["severity"]["code"], 4);
    // journalctl -o json: host and time from the record's fields.
    assert_eq!(recs[5]["observer"]["hostname"], "fw9");
    assert_eq!(recs[5]["@timestamp"], "2026-11-23T10:00:00.250000Z");
    let raw: &Map<String, Value> = recs[6].as_object().unwrap();
    assert_eq!(raw["event"]["kind"], "pipeline_error");
    assert!(raw["event"]["original"]
        .as_str()
        .unwrap()
        .contains("SRC=nonsense"));
    assert_eq!(raw["netfilter"]["position"], 8);
    assert_eq!(raw["netfilter"]["origin"], "stdin");
    assert!(raw.get("log").is_none(), "log.file.path only for a file");
    assert!(
        err.contains("1 unparsable") && err.contains("1 other lines skipped"),
        "{err}"
    );

    // journalctl -o export: an entry's fields on lines of their own, the host after the
    // message, a blank line after each entry.
    let export = format!(
        "__CURSOR=s=a;i=1\n__REALTIME_TIMESTAMP=1795428000000007\nPRIORITY=4\n_TRANSPORT=kernel\n\
         MESSAGE={body}\n_BOOT_ID=x\n_HOSTNAME=fw3\n\n\
         __CURSOR=s=a;i=2\n__REALTIME_TIMESTAMP=1795428001000000\nMESSAGE=usb 1-1: new device\n_HOSTNAME=fw3\n\n\
         __CURSOR=s=a;i=3\n__REALTIME_TIMESTAMP=1795428002000000\nMESSAGE={body}\n_HOSTNAME=fw4\n\n"
    );
    let (recs, err) = parse(&export);
    assert_eq!(recs.len(), 2, "{err}");
    assert_eq!(recs[0]["observer"]["hostname"], "fw3");
    assert_eq!(recs[0]["@timestamp"], "2026-11-23T10:00:00.000007Z");
    assert_eq!(recs[1]["observer"]["hostname"], "fw4");
    assert_eq!(recs[1]["destination"]["port"], 443);
    assert!(err.contains("1 other lines skipped"), "{err}");
}

/// A full disk under the file sink: writing stops, the error is counted, and once there is room
/// again every line is written, once and in order.
#[test]
fn a_full_disk_delays_but_loses_nothing() {
    if !lab::available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-full-{}", lab::tag()));
    let mnt = dir.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    lab::sh(&format!(
        "mount -t tmpfs -o size=64k nflogd-test {}",
        mnt.display()
    ));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let lines: Vec<String> = (0..20).flat_map(|_| kernel_lines()).collect();
    let input = dir.join("in.log");
    std::fs::write(
        &input,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = mnt.join("out.txt");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{}\"\nschema = \"text\"\n",
            input.display(),
            dir.join("pos").display(),
            out.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &dir.join("log"));
    d.wait_log("failed", Duration::from_secs(10));
    let stuck = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        stuck < lines.len(),
        "the disk filled up before the end ({stuck} lines)"
    );
    lab::sh(&format!("mount -o remount,size=16m {}", mnt.display()));
    let got = wait_lines(&out, lines.len(), Duration::from_secs(15));
    let log = d.stop();
    assert_eq!(
        got, lines,
        "every line once, in order, after the disk had room again"
    );
    assert!(
        lab::stat(&log, "sink.o", "errors") > 0,
        "the failed writes were counted: {log}"
    );
    assert_eq!(lab::stat(&log, "sink.o", "dropped"), 0);
    drop(_u);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nflogd parse` with `args`, `input` on standard input: the records and the stderr.
fn parse_stdin(args: &[&str], input: &[u8]) -> (Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .arg("parse")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_owned()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (
        json_lines(&lines),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The real kernel lines of logline's tests stored by systemd's own tools (systemd-journal-remote
/// writes a journal file from export-format entries; journalctl reads it back as `-o json` and
/// `-o export`) give, through `nflogd parse`, the records of the bare lines plus the entries'
/// host, time and priority.
#[test]
fn journald_output_of_real_journal_files() {
    let remote = std::path::Path::new("/lib/systemd/systemd-journal-remote");
    let journalctl = Command::new("journalctl").arg("--version").output();
    if !remote.exists() || journalctl.is_err() {
        lab::skip("needs systemd-journal-remote and journalctl (scripts/deps installs them)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../logline/tests/kernel-lines.txt"),
    )
    .unwrap();
    let lines: Vec<&str> = kernel.lines().collect();
    let t0 = 1_795_428_000_000_000u64;
    let mut export = String::new();
    for (i, l) in lines.iter().enumerate() {
        export += &format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _TRANSPORT=kernel\nPRIORITY=4\nSYSLOG_FACILITY=0\nSYSLOG_IDENTIFIER=kernel\n_HOSTNAME=fw9\nMESSAGE={l}\n\n",
            t0 + i as u64 * 1000 + 7,
            1_000_000 + i
        );
        if i == 10 {
            export += "__REALTIME_TIMESTAMP=1795428000010500\n__MONOTONIC_TIMESTAMP=1\n\
                       _BOOT_ID=0123456789abcdef0123456789abcdef\n_TRANSPORT=kernel\n_HOSTNAME=fw9\n\
                       MESSAGE=usb 1-1: new high-speed USB device number 2\n\n";
        }
    }
    let file = dir.join("k.journal");
    let mut w = Command::new(remote)
        .arg("-o")
        .arg(&file)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_owned()
        .unwrap();
    w.stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    let w = w.wait_with_output().unwrap();
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));

    let (bare, _) = parse_stdin(&["--schema", "ecs"], kernel.as_bytes());
    assert_eq!(bare.len(), lines.len());
    // What the journal adds, set aside to compare the rest.
    let strip = |mut r: Value| {
        let o = r.as_object_mut().unwrap();
        let added = (o.remove("@timestamp"), o.remove("log"));
        o["observer"].as_object_mut().unwrap().remove("hostname");
        (r, added)
    };
    for form in ["json", "export"] {
        let out = Command::new("journalctl")
            .arg(format!("--file={}", file.display()))
            .args(["-o", form])
            .output()
            .unwrap();
        assert!(out.status.success());
        let (recs, err) = parse_stdin(&["--schema", "ecs"], &out.stdout);
        assert_eq!(recs.len(), lines.len(), "-o {form}: {err}");
        lab::ecs::assert_conforms(&recs);
        assert!(err.contains("1 other lines skipped"), "-o {form}: {err}");
        for (i, (j, b)) in recs.into_iter().zip(bare.iter().cloned()).enumerate() {
            assert_eq!(j["observer"]["hostname"], "fw9", "-o {form} #{i}");
            assert_eq!(j["log"]["syslog"]["severity"]["code"], 4, "-o {form} #{i}");
            let (j, (time, _)) = strip(j);
            let us = t0 + i as u64 * 1000 + 7;
            let want = chrono::DateTime::from_timestamp_micros(us as i64)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(time, Some(Value::String(want)), "-o {form} #{i}");
            assert_eq!(j, strip(b).0, "-o {form} #{i}: {}", lines[i]);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
