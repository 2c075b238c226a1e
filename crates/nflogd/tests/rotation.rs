//! The file sink's built-in rotation, under a steady stream of records: every record is in
//! exactly one file, whole (the current file, the rotated and compressed ones — gzip and zstd —
//! and one logrotate moved aside before a SIGHUP), at most `keep` rotated files remain, and a
//! follower reading the live path (nflogd's own file source) gets every record once.

mod lab;

use lab::Daemon;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LINES: usize = 12_000;

/// Kernel LOG line number `i`: its source address and port tell it apart.
fn log_line(i: usize) -> String {
    format!(
        "ROT IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.{}.{}.{} DST=192.0.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID={} DF PROTO=TCP SPT={} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 \n",
        i / 65536,
        (i / 256) % 256,
        i % 256,
        i % 65536,
        1024 + i % 60000
    )
}

fn key(doc: &Value) -> (String, u64) {
    (
        doc["source"]["ip"].as_str().unwrap_or_default().to_string(),
        doc["source"]["port"].as_u64().unwrap_or(0),
    )
}

/// Every line of `files`, decompressed by their names; each file ends with a whole line.
fn lines(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let raw = std::fs::read(f).unwrap();
        let name = f.to_string_lossy();
        let text = if name.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            s
        } else if name.ends_with(".zst") {
            String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap()
        } else {
            String::from_utf8(raw).unwrap()
        };
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends inside a record"
        );
        out.extend(text.lines().map(str::to_string));
    }
    out
}

/// Every JSON record of `files`.
fn records(files: &[PathBuf]) -> Vec<Value> {
    lines(files)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a cut record ({e}): {l}")))
        .collect()
}

fn files_of(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(stem) && !n.ends_with(".tmp")
        })
        .collect();
    v.sort();
    v
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotation_loses_cuts_and_doubles_nothing() {
    let dir = std::env::temp_dir().join(format!("nflogd-rotation-{}", lab::tag()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.log");
    std::fs::write(&input, "").unwrap();
    let (gz, zst, follow) = (
        dir.join("gz.json"),
        dir.join("zst.json"),
        dir.join("follow.json"),
    );
    let cfg = dir.join("nflogd.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n\
             [sources.in]\ntype = \"file\"\npath = \"{in_}\"\nstart = \"beginning\"\nstate_file = \"{dir}/in.position\"\npoll_interval = \"50ms\"\n\
             [sources.follow]\ntype = \"file\"\npath = \"{gz}\"\nstart = \"beginning\"\nstate_file = \"{dir}/follow.position\"\npoll_interval = \"50ms\"\n\
             [sinks.gz]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{gz}\"\nschema = \"text\"\nrotate_size = \"64KiB\"\ncompress = \"gzip\"\nkeep = 500\n\
             [sinks.zst]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{zst}\"\nrotate_size = \"256KiB\"\ncompress = \"zstd\"\nkeep = 3\n\
             [sinks.follow]\ntype = \"file\"\ninputs = [\"follow\"]\npath = \"{follow}\"\n",
            in_ = input.display(),
            dir = dir.display(),
            gz = gz.display(),
            zst = zst.display(),
            follow = follow.display(),
        ),
    )
    .unwrap();
    let log = dir.join("nflogd.log");
    let d: Daemon = lab::start_nflogd(None, &cfg, &log);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    // Lines arrive in steps, so that rotations fall between and inside batches.
    for step in 0..12 {
        let chunk: String = (step * LINES / 12..(step + 1) * LINES / 12)
            .map(log_line)
            .collect();
        f.write_all(chunk.as_bytes()).unwrap();
        if step == 6 {
            // logrotate's way, meanwhile: the file moved aside, then SIGHUP.
            std::fs::rename(&zst, dir.join("zst.json.logrotate")).unwrap();
            d.signal(libc::SIGHUP);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_for("the gzip sink's records", Duration::from_secs(30), || {
        lines(&files_of(&dir, "gz.json")).len() >= LINES
    });
    wait_for("the follower's records", Duration::from_secs(30), || {
        lines(&files_of(&dir, "follow.json")).len() >= LINES
    });
    std::thread::sleep(Duration::from_millis(500));
    let log_text = d.stop();

    // gzip: every record once, in whole files, rotated ones compressed.
    let gz_files = files_of(&dir, "gz.json");
    assert!(
        gz_files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".gz"))
            .count()
            >= 10,
        "rotations: {gz_files:?}"
    );
    assert!(
        !gz_files.iter().any(|p| p
            .extension()
            .is_some_and(|e| e.to_string_lossy().parse::<u32>().is_ok())),
        "an uncompressed rotated file is left: {gz_files:?}"
    );
    let text_lines = lines(&gz_files);
    let expected: BTreeSet<String> = (0..LINES)
        .map(|i| log_line(i).trim_end().to_string())
        .collect();
    let got: BTreeSet<String> = text_lines
        .iter()
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(
        text_lines.len(),
        LINES,
        "records written across rotations (doubles?)"
    );
    assert_eq!(got, expected, "the text records are the input lines");

    // zstd with keep = 3: the three newest rotated files, the current one and logrotate's.
    let zst_files = files_of(&dir, "zst.json");
    let rotated: Vec<&PathBuf> = zst_files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".zst"))
        .collect();
    assert!(rotated.len() <= 3, "{zst_files:?}");
    let moved = records(&[dir.join("zst.json.logrotate")]);
    assert!(!moved.is_empty(), "records before logrotate's move");
    // After the SIGHUP the sink wrote to a new file, not on into the moved one.
    assert!(zst.exists(), "SIGHUP opened a new file");
    assert!(
        moved.len() < LINES / 2 + LINES / 12,
        "{} records in the moved file",
        moved.len()
    );
    let zst_docs = records(&zst_files);
    let keys: BTreeSet<(String, u64)> = zst_docs.iter().map(key).collect();
    assert_eq!(
        keys.len(),
        zst_docs.len(),
        "a record twice in the zstd files"
    );

    // The follower read the live gzip-sink path through its rotations: each record once.
    let followed = records(&files_of(&dir, "follow.json"));
    assert_eq!(followed.len(), LINES, "{log_text}");
    let keys: BTreeSet<(String, u64)> = followed.iter().map(key).collect();
    assert_eq!(keys.len(), LINES, "the follower read a record twice");
    std::fs::remove_dir_all(&dir).unwrap();
}
