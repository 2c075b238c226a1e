//! The syslog listener with real clients on loopback: util-linux `logger` over UDP and TCP (LF
//! and octet-counted framing, RFC 3164 and RFC 5424), and OpenSSL's `s_client` over TLS.

mod lab;

use lab::{json_lines, wait_lines};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const BODY: &str = "IN=vb OUT= MAC=b6:2a:bb:9c:87:e1:06:f7:19:19:b5:4a:08:00 SRC=10.77.0.1 DST=10.77.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=52759 DF PROTO=TCP SPT=48312 DPT=81 WINDOW=64240 RES=0x00 SYN URGP=0";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tool(t: &str) -> bool {
    let ok = Command::new("which")
        .arg(t)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{t} must be installed under CI");
    }
    ok
}

#[test]
fn logger_and_openssl_clients_over_udp_tcp_and_tls() {
    if !tool("logger") || !tool("openssl") {
        eprintln!("SKIPPED: logger or openssl missing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-syslog-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, out) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("out.json"));
    lab::sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout {} -out {} 2>/dev/null",
        key.display(),
        cert.display()
    ));
    let (pu, pt, ps) = (free_port(), free_port(), free_port());
    let cfg = dir.join("s.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n\
             [sources.udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{pu}\"\n\
             [sources.tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{pt}\"\n\
             [sources.tls]\ntype = \"syslog\"\nmode = \"tls\"\naddress = \"127.0.0.1:{ps}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"udp\", \"tcp\", \"tls\"]\npath = \"{}\"\n",
            cert.display(),
            key.display(),
            out.display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &dir.join("log"));

    // Each client's lines carry their own prefix, so each path is seen to arrive.
    let logger = |args: &str, tag: &str| {
        lab::sh(&format!(
            "logger {args} --server 127.0.0.1 -t kernel -p kern.warning '{tag} DROP: {BODY}'"
        ));
    };
    logger(&format!("--udp --port {pu} --rfc3164"), "fw-udp3164");
    logger(&format!("--udp --port {pu} --rfc5424"), "fw-udp5424");
    logger(&format!("--tcp --port {pt} --rfc3164"), "fw-tcplf");
    logger(
        &format!("--tcp --port {pt} --rfc5424 --octet-count"),
        "fw-tcpoctet",
    );
    // TLS: RFC 5425 frames (octet counting) written by a real TLS client.
    let frames: String = ["fw-tls1", "fw-tls2"]
        .iter()
        .map(|h| {
            let m = format!("<4>1 2026-11-23T10:00:00Z {h} kernel - - [SEKOIA@53288 intake_key=\"k\\]\"] {h} DROP: {BODY}");
            format!("{} {m}", m.len())
        })
        .collect();
    let mut s = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{ps}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.stdin
        .as_mut()
        .unwrap()
        .write_all(frames.as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let _ = s.kill();
    let _ = s.wait();

    let recs = json_lines(&wait_lines(&out, 6, Duration::from_secs(5)));
    d.stop();
    let mut rules: Vec<&str> = recs
        .iter()
        .map(|r| r["rule"]["name"].as_str().unwrap())
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "fw-tcplf DROP:",
            "fw-tcpoctet DROP:",
            "fw-tls1 DROP:",
            "fw-tls2 DROP:",
            "fw-udp3164 DROP:",
            "fw-udp5424 DROP:"
        ]
    );
    let here = lab::sh("hostname").trim().to_string();
    for r in &recs {
        let tls = r["rule"]["name"].as_str().unwrap().starts_with("fw-tls");
        let want = if tls {
            r["rule"]["name"]
                .as_str()
                .unwrap()
                .trim_end_matches(" DROP:")
                .to_string()
        } else {
            here.clone()
        };
        assert_eq!(
            r["observer"]["hostname"],
            want.as_str(),
            "host from the syslog header: {r}"
        );
    }
    for r in &recs {
        assert_eq!(r["source"]["ip"], "10.77.0.1", "{r}");
        assert_eq!(r["destination"]["port"], 81);
        assert_eq!(r["event"]["action"], "drop");
        assert_eq!(r["log"]["syslog"]["severity"]["code"], 4, "{r}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
