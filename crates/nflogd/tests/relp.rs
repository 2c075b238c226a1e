//! Delivery the receiver confirms, against rsyslog with rsyslog-relp on loopback: the RELP sink
//! and, for plain TCP, resending what the receiver may not have read when its connection
//! broke; the RELP source fed by rsyslog's omrelp, and nflogd to nflogd over RELP with TLS.

mod lab;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn have_relp() -> bool {
    let ok = lab::have("rsyslogd")
        && Path::new(&format!("/usr/lib/{}/rsyslog/imrelp.so", lab::multiarch())).exists();
    if !ok {
        lab::skip("rsyslog or rsyslog-relp missing");
    }
    ok
}

/// A kernel LOG line, distinct for each `i` (IP ID and addresses).
fn line(i: usize) -> String {
    format!(
        "IPTABLES: DROP IN=eth0 OUT= MAC= SRC=10.{}.{}.{} DST=10.1.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID={} PROTO=UDP SPT={} DPT=53 LEN=8",
        i / 65536,
        (i / 256) % 256,
        i % 256,
        i % 65536,
        1024 + i % 60000
    )
}

/// Messages of a receiver's file, in the order first seen, and how many came twice.
fn first_seen(path: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut dups = 0;
    for l in text.lines() {
        let l = l.trim().to_string();
        if seen.insert(l.clone()) {
            order.push(l);
        } else {
            dups += 1;
        }
    }
    (order, dups)
}

/// Waits until every file holds `n` distinct messages.
fn wait_distinct(paths: &[&Path], n: usize, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if paths.iter().all(|p| first_seen(p).0.len() >= n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// rsyslog is frozen and killed (SIGKILL) in the middle of a stream, and started again. Over RELP every
/// event arrives: the sink removes an event from its spool only on rsyslog's answer. Over
/// plain TCP too: what was sent but not known to be read is sent again after the break.
/// Duplicates are possible and counted as `resent`; nothing is lost, and the order holds.
#[test]
fn nothing_is_lost_when_the_receiver_is_killed_mid_stream() {
    if !have_relp() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-relp-kill-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let (pr, pt) = (lab::free_port(), lab::free_port());
    // Direct queues: what rsyslog has read is in its file before it reads on (and, over RELP,
    // before it answers), so a kill loses only what sat unread in its socket.
    let conf = format!(
        "global(workDirectory=\"{d}\")\nmodule(load=\"imrelp\")\nmodule(load=\"imtcp\")\n\
         input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{pr}\" ruleset=\"relp\")\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{pt}\" ruleset=\"tcp\")\n\
         template(name=\"m\" type=\"string\" string=\"%msg%\\n\")\n\
         ruleset(name=\"relp\" queue.type=\"Direct\") {{ action(type=\"omfile\" file=\"{d}/relp.log\" template=\"m\") }}\n\
         ruleset(name=\"tcp\" queue.type=\"Direct\") {{ action(type=\"omfile\" file=\"{d}/tcp.log\" template=\"m\") }}\n"
    );
    let input = dir.join("in.log");
    std::fs::write(&input, "").unwrap();
    let cfg = dir.join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\npoll_interval = \"20ms\"\n\
             [sinks.relp]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{pr}\"\ntransport = \"relp\"\n[sinks.relp.spool]\ndir = \"{d}/spool-relp\"\n\
             [sinks.tcp]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{pt}\"\ntransport = \"tcp\"\n[sinks.tcp.spool]\ndir = \"{d}/spool-tcp\"\n",
            input.display()
        ),
    )
    .unwrap();
    let r = lab::rsyslog(&dir, &conf, &[pr, pt]);
    let n = lab::start_nflogd(None, &cfg, &dir.join("n.log"));
    // The stream: 60 000 lines appended in 120 steps, about 3 s.
    const TOTAL: usize = 60_000;
    const STEP: usize = TOTAL / 120;
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for step in 0..120 {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&input)
                    .unwrap();
                let chunk: String = (step * STEP..(step + 1) * STEP)
                    .map(|i| line(i) + "\n")
                    .collect();
                f.write_all(chunk.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let (relp_log, tcp_log) = (dir.join("relp.log"), dir.join("tcp.log"));
    wait_distinct(&[&relp_log, &tcp_log], 20_000, Duration::from_secs(20));
    // Frozen first, so that the stream goes on into its socket unread (and, over RELP,
    // unanswered), then killed.
    r.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGKILL);
    drop(r);
    let at_kill = (first_seen(&relp_log).0.len(), first_seen(&tcp_log).0.len());
    std::thread::sleep(Duration::from_millis(700));
    let _r = lab::rsyslog(&dir, &conf, &[pr, pt]);
    writer.join().unwrap();
    wait_distinct(&[&relp_log, &tcp_log], TOTAL, Duration::from_secs(60));
    let log = n.stop();
    let want: Vec<String> = (0..TOTAL).map(line).collect();
    for (sink, path) in [("relp", &relp_log), ("tcp", &tcp_log)] {
        let (got, dups) = first_seen(path);
        let resent = lab::stat(&log, &format!("sink.{sink}"), "resent");
        assert!(
            got.len() == TOTAL && got == want,
            "{sink}: {} of {TOTAL} events arrived ({} when rsyslog was killed), in order: {}\n{log}",
            got.len(),
            if sink == "relp" { at_kill.0 } else { at_kill.1 },
            got.iter().zip(&want).all(|(g, w)| g == w)
        );
        assert!(
            dups as u64 <= resent,
            "{sink}: {dups} duplicates, but only {resent} events were sent again"
        );
        assert_eq!(
            lab::stat(&log, &format!("sink.{sink}"), "sent"),
            TOTAL as u64,
            "{sink}: each event confirmed once"
        );
        eprintln!("{sink}: killed at {at_kill:?}; {resent} sent again, {dups} duplicates");
    }
    // A stream cut mid-way leaves events sent and not yet confirmed.
    assert!(lab::stat(&log, "sink.tcp", "resent") > 0);
    assert!(lab::stat(&log, "sink.relp", "resent") > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The RELP source takes what rsyslog's omrelp forwards, every message and in order; and
/// nflogd forwards to nflogd over RELP with TLS, with the receiving nflogd restarted on the way.
#[test]
fn the_relp_source_takes_omrelp_and_nflogd_over_relp_tls() {
    if !have_relp() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-relp-src-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    lab::certificates(&dir);
    let (pin, pr, ptls) = (lab::free_port(), lab::free_port(), lab::free_port());
    // The receiving nflogd: RELP from rsyslog, RELP over TLS from another nflogd.
    let cfg = dir.join("recv.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n\
             [sources.relp]\ntype = \"syslog\"\nmode = \"relp\"\naddress = \"127.0.0.1:{pr}\"\n\
             [sources.relptls]\ntype = \"syslog\"\nmode = \"relp-tls\"\naddress = \"127.0.0.1:{ptls}\"\ncert_file = \"{d}/srv.pem\"\nkey_file = \"{d}/srv.key\"\n\
             [sinks.a]\ntype = \"file\"\ninputs = [\"relp\"]\npath = \"{d}/from-rsyslog.log\"\nschema = \"text\"\n\
             [sinks.b]\ntype = \"file\"\ninputs = [\"relptls\"]\npath = \"{d}/from-nflogd.log\"\nschema = \"text\"\n"
        ),
    )
    .unwrap();
    let recv = lab::start_nflogd(None, &cfg, &dir.join("recv.log"));
    // rsyslog: lines in over TCP, out over RELP.
    let conf = format!(
        "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\nmodule(load=\"omrelp\")\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{pin}\" ruleset=\"fwd\")\n\
         ruleset(name=\"fwd\") {{ action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{pr}\") }}\n"
    );
    let _r = lab::rsyslog(&dir, &conf, &[pin]);
    const N: usize = 2_000;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", pin)).unwrap();
    let frames: String = (0..N)
        .map(|i| format!("<4>Dec  2 10:00:00 fw{} kernel: {}\n", i % 7, line(i)))
        .collect();
    s.write_all(frames.as_bytes()).unwrap();
    drop(s);
    // The sending nflogd: a file over RELP/TLS, checking the receiver's certificate.
    let input = dir.join("in.log");
    let half: String = (0..N / 2).map(|i| line(i) + "\n").collect();
    std::fs::write(&input, half).unwrap();
    let send_cfg = dir.join("send.toml");
    std::fs::write(
        &send_cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\npoll_interval = \"20ms\"\n\
             [sinks.s]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{ptls}\"\ntransport = \"relp-tls\"\nca_file = \"{d}/ca.pem\"\nserver_name = \"localhost\"\n[sinks.s.spool]\ndir = \"{d}/spool\"\n",
            input.display()
        ),
    )
    .unwrap();
    let send = lab::start_nflogd(None, &send_cfg, &dir.join("send.log"));
    let from_nflogd = dir.join("from-nflogd.log");
    let from_rsyslog = dir.join("from-rsyslog.log");
    lab::wait_lines(&from_nflogd, N / 2, Duration::from_secs(20));
    lab::wait_lines(&from_rsyslog, N, Duration::from_secs(20));
    // The receiver restarts; what is logged meanwhile waits in the sender's spool.
    let recv_log = recv.stop();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for i in N / 2..N {
        writeln!(f, "{}", line(i)).unwrap();
    }
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    let recv = lab::start_nflogd(None, &cfg, &dir.join("recv.log"));
    let got_rsyslog = lab::wait_lines(&from_rsyslog, N, Duration::from_secs(20));
    let got_nflogd = lab::wait_lines(&from_nflogd, N, Duration::from_secs(20));
    let send_log = send.stop();
    let recv_log = recv_log + &recv.stop();
    for (what, got) in [("rsyslog", &got_rsyslog), ("nflogd", &got_nflogd)] {
        assert_eq!(
            got.len(),
            N,
            "from {what}: {} of {N}\n{recv_log}",
            got.len()
        );
        for (i, g) in got.iter().enumerate() {
            assert!(
                g.contains(&format!(" ID={} ", i % 65536)) && g.contains("IPTABLES: DROP"),
                "from {what}, line {i} in order: {g}"
            );
        }
    }
    assert_eq!(lab::stat(&send_log, "sink.s", "sent"), N as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}
