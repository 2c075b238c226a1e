//! The syslog sink against a real receiver: rsyslog on loopback with imudp, imtcp and imtcp over
//! TLS (gtls; certificates made for the test). Messages arrive in order, parseable, with their
//! header fields and the structured data escaped as RFC 5424 requires; a receiver that stops
//! and comes back gets the rest.

mod lab;

use lab::SpawnOwned;

use lab::{wait_lines, Daemon};
use std::process::Command;
use std::time::Duration;

#[test]
fn rsyslog_receives_udp_tcp_and_tls_in_order_with_escaped_sd() {
    let have = |t: &str| {
        Command::new("which")
            .arg(t)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("rsyslogd")
        || !std::path::Path::new(&format!(
            "/usr/lib/{}/rsyslog/lmnsd_gtls.so",
            lab::multiarch()
        ))
        .exists()
    {
        lab::skip("rsyslog or rsyslog-gnutls missing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-sink-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    lab::certificates(&dir);
    let (pu, pt, ps, pm) = (
        lab::free_port(),
        lab::free_port(),
        lab::free_port(),
        lab::free_port(),
    );
    let conf = format!(
        r#"global(workDirectory="{d}" defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/srv.pem" defaultNetstreamDriverKeyFile="{d}/srv.key")
module(load="imudp")
module(load="imtcp" maxSessions="10")
input(type="imudp" address="127.0.0.1" port="{pu}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{pt}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{ps}" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{pm}" ruleset="mtls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
template(name="fields" type="string" string="%hostname%|%app-name%|%msgid%|%syslogfacility-text%|%syslogseverity%|%structured-data%|%msg%\n")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="fields") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="fields") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="fields") }}
ruleset(name="mtls") {{ action(type="omfile" file="{d}/mtls.log" template="fields") }}
"#
    );
    let r = lab::rsyslog(&dir, &conf, &[pt, ps, pm]);
    let lines: Vec<String> = include_str!("../../logline/tests/kernel-lines.txt")
        .lines()
        .map(str::to_string)
        .collect();
    let input = dir.join("in.log");
    std::fs::write(
        &input,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    // "sekoia": the preset alone chooses TLS, octet counting, RFC 5424 and the MSGID.
    let sink = |name: &str, transport: &str, port: u16, extra: &str| {
        let how = match transport {
            "sekoia" => "preset = \"sekoia\"\n".to_string(),
            t => format!("transport = \"{t}\"\nmsgid = \"LOG\"\n"),
        };
        format!(
            "[sinks.{name}]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{port}\"\n{how}hostname = \"fw-{name}\"\n{extra}\n[sinks.{name}.spool]\ndir = \"{d}/spool-{name}\"\n[sinks.{name}.structured_data.\"SEKOIA@53288\"]\nintake_key = 'a\"b\\c]d'\n"
        )
    };
    let cfg = dir.join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\n{}{}{}{}",
            input.display(),
            sink("udp", "udp", pu, ""),
            sink("tcp", "tcp", pt, "framing = \"lf\""),
            sink("tls", "sekoia", ps, &format!("ca_file = \"{d}/ca.pem\"\nserver_name = \"localhost\"")),
            // The receiver requires a client certificate signed by its CA.
            sink("mtls", "tls", pm, &format!("ca_file = \"{d}/ca.pem\"\nserver_name = \"localhost\"\ncert_file = \"{d}/cli.pem\"\nkey_file = \"{d}/cli.key\"")),
        ),
    )
    .unwrap();
    let n = lab::start_nflogd(None, &cfg, &dir.join("n.log"));
    for t in ["udp", "tcp", "tls", "mtls"] {
        let got = wait_lines(
            &dir.join(format!("{t}.log")),
            lines.len(),
            Duration::from_secs(10),
        );
        assert_eq!(
            got.len(),
            lines.len(),
            "{t}: {} of {} messages arrived\n{}",
            got.len(),
            lines.len(),
            r.log_text()
        );
        for (g, want) in got.iter().zip(&lines) {
            let f: Vec<&str> = g.splitn(7, '|').collect();
            // Severity from the verdict: warning for drop, notice for accept, info for none.
            let sev = if want.starts_with("IPTABLES: ACCEPT") {
                "5"
            } else if want.starts_with("IPTABLES: DROP") || want.starts_with("IPTables/Dropped") {
                "4"
            } else {
                "6"
            };
            assert_eq!(
                &f[..6],
                &[
                    format!("fw-{t}").as_str(),
                    "kernel",
                    "LOG",
                    "kern",
                    sev,
                    r#"[SEKOIA@53288 intake_key="a\"b\\c\]d"]"#
                ],
                "{t}: {g}"
            );
            // rsyslog may drop the kernel line's trailing space; the text is otherwise the same.
            assert_eq!(f[6].trim_end(), want.trim_end(), "{t}: order and content");
        }
    }
    // The receiver goes away and comes back: what is logged meanwhile arrives once it is back.
    // What it had read well before (more than the sink's second of settling) is not sent
    // again: each message arrives once.
    std::thread::sleep(Duration::from_millis(1500));
    drop(r);
    std::thread::sleep(Duration::from_millis(300));
    let more: Vec<String> = lines[..10].to_vec();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    use std::io::Write;
    for l in &more {
        writeln!(f, "{l}").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let _r = lab::rsyslog(&dir, &conf, &[pt, ps, pm]);
    for t in ["tcp", "tls"] {
        let got = wait_lines(
            &dir.join(format!("{t}.log")),
            lines.len() + more.len(),
            Duration::from_secs(20),
        );
        assert_eq!(
            got.len(),
            lines.len() + more.len(),
            "{t}: messages logged during the outage\n{}",
            n.log_text()
        );
        let tail: Vec<&str> = got[lines.len()..]
            .iter()
            .map(|g| g.splitn(7, '|').nth(6).unwrap().trim_end())
            .collect();
        assert_eq!(
            tail,
            more.iter().map(|l| l.trim_end()).collect::<Vec<_>>(),
            "{t}: after the outage, in order, once"
        );
    }
    n.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// nflogd is killed with SIGKILL while its receiver is down and events wait in the spool; after
/// a restart and with the receiver back, every event arrives (a few may arrive twice).
/// An intake key, to look for where it must not be.
const SECRET: &str = "NEVER-IN-THE-SPOOL-7f3a";

#[test]
fn sigkill_while_spooling_loses_nothing() {
    let have = |t: &str| {
        Command::new("which")
            .arg(t)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("rsyslogd") {
        lab::skip("rsyslog missing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-crash-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let pt = lab::free_port();
    let conf = format!(
        "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{pt}\" ruleset=\"r\")\n\
         template(name=\"m\" type=\"string\" string=\"%msg%\\n\")\ntemplate(name=\"sd\" type=\"string\" string=\"%structured-data%\\n\")\n\
         ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{d}/got.log\" template=\"m\") action(type=\"omfile\" file=\"{d}/sd.log\" template=\"sd\") }}\n"
    );
    let input = dir.join("in.log");
    let line = |i: usize| {
        format!("IPTABLES: DROP IN=eth0 OUT= MAC= SRC=10.0.{}.{} DST=10.1.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID={i} PROTO=UDP SPT=1 DPT=2 LEN=8", i / 250, i % 250)
    };
    let append = |from: usize, to: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&input)
            .unwrap();
        for i in from..to {
            writeln!(f, "{}", line(i)).unwrap();
        }
    };
    append(0, 300);
    let cfg = dir.join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\npoll_interval = \"50ms\"\n\
             [sinks.s]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{pt}\"\ntransport = \"tcp\"\n[sinks.s.spool]\ndir = \"{d}/spool\"\n\
             [sinks.s.structured_data.\"SEKOIA@53288\"]\nintake_key = \"{SECRET}\"\n",
            input.display()
        ),
    )
    .unwrap();
    let start = || {
        let child = Command::new(env!("CARGO_BIN_EXE_nflogd"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("n.log"))
                    .unwrap(),
            )
            .spawn_owned()
            .unwrap();
        Daemon {
            child: Some(child),
            log: dir.join("n.log"),
        }
    };
    let n = start();
    n.wait_log("cannot reach", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    n.signal(libc::SIGKILL);
    drop(n);
    let spooled: u64 = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(spooled > 0, "events were spooled before the kill");
    // The intake key is put in as messages leave: it never rests in the spool.
    for e in std::fs::read_dir(dir.join("spool")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the intake key is in the spool"
        );
    }
    append(300, 400);
    let _r = lab::rsyslog(&dir, &conf, &[pt]);
    let n = start();
    let got = wait_lines(&dir.join("got.log"), 400, Duration::from_secs(20));
    let log = n.stop();
    assert!(
        log.contains("wait in"),
        "the restart found the spooled events:\n{log}"
    );
    let want: Vec<String> = (0..400).map(line).collect();
    let mut first_seen = Vec::new();
    for g in &got {
        let g = g.trim().to_string();
        if !first_seen.contains(&g) {
            first_seen.push(g);
        }
    }
    assert_eq!(
        first_seen,
        want,
        "every event, in order (got {} messages for 400 events)",
        got.len()
    );
    let sd = std::fs::read_to_string(dir.join("sd.log")).unwrap();
    assert_eq!(sd.lines().count(), got.len());
    for l in sd.lines() {
        assert_eq!(l, format!("[SEKOIA@53288 intake_key=\"{SECRET}\"]"));
    }
    assert!(!log.contains(SECRET), "the intake key is not logged");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sink whose receiver is gone and whose spool is full with `drop-oldest` neither slows the
/// source nor another sink: the file sink writes everything while the stuck sink counts what
/// it had to drop. (With `block`, a source that can wait, as this file is, would wait for it:
/// see `a_whole_log_file_reaches_sqlite_and_a_restart_resumes_after_it` in store.rs.)
#[test]
fn a_stuck_sink_slows_nothing_else() {
    let dir = std::env::temp_dir().join(format!("nflogd-stuck-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let lines: Vec<String> = (0..30)
        .flat_map(|_| {
            include_str!("../../logline/tests/kernel-lines.txt")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    std::fs::write(
        dir.join("in.log"),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let closed = lab::free_port();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{d}/in.log\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\n\
             [sinks.fast]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{d}/out.txt\"\nschema = \"text\"\n\
             [sinks.stuck]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{closed}\"\nqueue_max_events = 200\n\
             [sinks.stuck.spool]\ndir = \"{d}/spool\"\nmax_size = \"16KiB\"\nwhen_full = \"drop-oldest\"\n"
        ),
    )
    .unwrap();
    let n = lab::start_nflogd(None, &cfg, &dir.join("log"));
    let got = wait_lines(&dir.join("out.txt"), lines.len(), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let log = n.stop();
    assert_eq!(got, lines, "the file sink got everything, in order");
    let dropped = lab::stat(&log, "sink.stuck", "dropped");
    let spooled = lab::stat(&log, "sink.stuck", "spooled");
    assert!(
        dropped > 0 && spooled > 0,
        "the stuck sink spooled what fit and counted the rest: {log}"
    );
    // Every event went into the spool (the queue drains into it at the stop); what the spool
    // deleted to stay near its size is counted, the rest waits for the receiver.
    assert_eq!(spooled, lines.len() as u64, "{log}");
    let pending = lab::stat(&log, "sink.stuck", "spool_pending");
    assert!(dropped > 0 && pending > 0, "{log}");
    assert_eq!(dropped + pending, spooled, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A receiver that answers garbage and then stops reading for a while (its socket buffers fill
/// and nflogd's writes block), then reads again: every event arrives, in order, none lost.
#[test]
fn a_stalled_receiver_that_answers_garbage_loses_nothing() {
    use std::io::{Read, Write};
    // About 20 MB: more than loopback socket buffers hold, so writes block during the stall.
    const N: usize = 100_000;
    let dir = std::env::temp_dir().join(format!("nflogd-stall-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Every connection gets garbage first; the first one is then not read for 3 s.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let got = received.clone();
    // Bytes waiting unread in the first connection when its stall ended: the proof that nflogd
    // kept writing until the socket buffers were full, and then had to wait.
    let unread = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let unread_seen = unread.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let got = got.clone();
            let unread = unread_seen.clone();
            std::thread::spawn(move || {
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff garbage \n");
                if i == 0 {
                    std::thread::sleep(Duration::from_secs(3));
                    use std::os::fd::AsRawFd;
                    let mut n: libc::c_int = 0;
                    unsafe { libc::ioctl(conn.as_raw_fd(), libc::FIONREAD, &mut n) };
                    unread.store(n as usize, std::sync::atomic::Ordering::SeqCst);
                }
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let input = dir.join("in.log");
    let line = |i: usize| {
        format!("IPTABLES: DROP IN=eth0 OUT= MAC= SRC=10.0.{}.{} DST=10.1.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID={i} PROTO=UDP SPT=1 DPT=2 LEN=8", i / 250 % 250, i % 250)
    };
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..N {
            writeln!(f, "{}", line(i)).unwrap();
        }
    }
    let cfg = dir.join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{d}/pos\"\n\
             [sinks.s]\ntype = \"syslog\"\ninputs = [\"f\"]\naddress = \"127.0.0.1:{port}\"\ntransport = \"tcp\"\nschema = \"text\"\n[sinks.s.spool]\ndir = \"{d}/spool\"\n",
            input.display()
        ),
    )
    .unwrap();
    let n = lab::start_nflogd(None, &cfg, &dir.join("n.log"));
    let last = format!("ID={} PROTO", N - 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while std::time::Instant::now() < deadline
        && !String::from_utf8_lossy(&received.lock().unwrap()).contains(&last)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = n.stop();
    let waiting = unread.load(std::sync::atomic::Ordering::SeqCst);
    // The receive window (half of the default 128 KiB buffer) full: with 20 MB still to send,
    // nflogd could only wait.
    assert!(
        waiting >= 32 << 10,
        "only {waiting} bytes waited unread after the stall: nflogd's writes never filled the window"
    );
    let bytes = received.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&bytes);
    // Messages are octet-counted (`LEN SP MSG`); the LOG line is the message's tail.
    let mut seen = std::collections::HashSet::new();
    let mut order = Vec::new();
    let mut rest: &str = &text;
    while let Some(sp) = rest.find(' ') {
        let Ok(len) = rest[..sp].parse::<usize>() else {
            break;
        };
        let end = (sp + 1 + len).min(rest.len());
        let msg = &rest[sp + 1..end];
        if let Some(at) = msg.find("IPTABLES: DROP") {
            let l = msg[at..].trim_end().to_string();
            if seen.insert(l.clone()) {
                order.push(l);
            }
        }
        rest = &rest[end..];
    }
    assert_eq!(order.len(), N, "distinct events received; log:\n{log}");
    let want: Vec<String> = (0..N).map(line).collect();
    let first = order.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        first.is_none(),
        "events out of order from #{first:?}: {:?} where {:?}",
        first.map(|i| &order[i]),
        first.map(|i| &want[i])
    );
    assert_eq!(lab::stat(&log, "sink.s", "dropped"), 0, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
