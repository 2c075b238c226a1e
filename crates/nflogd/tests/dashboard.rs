//! The dashboard, its API and `nflogd top`, against a daemon fed by the kernel lab: packets
//! dropped and accepted by real nftables rules in a lab namespace reach nflogd over NFLOG; the
//! API's summaries, Chromium's rendering of the page (driven by ChromeDriver), its live tail,
//! and `nflogd top` in tmux all show them. Screenshots and the terminal capture are kept in
//! target/tmp/dashboard/.

mod lab;

use lab::{Lab, SpawnOwned, A4, B4};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A second sender address in namespace `a`.
const A4_OTHER: &str = "10.200.0.3";

fn output_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// GET `url`: status and body.
fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().expect(url);
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Polls `f` until it gives Some, or fails after `timeout` saying what was waited for.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `count` UDP datagrams from `from` (an address of namespace `ns`) to `to`.
fn udp_from(ns: &str, from: &'static str, to: String, count: usize) {
    lab::in_netns(ns, move || {
        let s = std::net::UdpSocket::bind((from, 0)).unwrap();
        for i in 0..count {
            s.send_to(&(i as u32).to_be_bytes(), &to).unwrap();
            // NFLOG batches by time too; a short pause keeps this a handful of batches.
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// A ChromeDriver session on headless Chromium (Debian's packages), spoken to over the W3C
/// WebDriver protocol.
struct Browser {
    driver: lab::Daemon,
    base: String,
    session: String,
}

impl Browser {
    fn start(dir: &std::path::Path) -> Browser {
        let port = lab::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("chromedriver.log")).unwrap())
            .spawn_owned()
            .expect("start chromedriver");
        let driver = lab::Daemon {
            child: Some(child),
            log: dir.join("chromedriver.log"),
        };
        lab::wait_port(port, Duration::from_secs(20));
        let base = format!("http://127.0.0.1:{port}");
        let profile = dir.join("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1400,1900",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = Self::call(&base, "POST", "/session", Some(caps));
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
        }
    }

    fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{base}{path}");
        let a = agent();
        let mut r = match (method, body) {
            ("POST", Some(b)) => a
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            ("DELETE", _) => a.delete(&url).call(),
            _ => a.get(&url).call(),
        }
        .expect(&url);
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        Self::call(&self.base, method, &p, body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` in the page; its return value.
    fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a screenshot"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let p = output_dir().join(name);
        std::fs::write(&p, png).unwrap();
        eprintln!("screenshot: {}", p.display());
        p
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Self::call(
            &self.base,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = &self.driver; // ChromeDriver is ended by its PID when this drops
    }
}

/// The rows of a table on the page: each row's `data-key` and cell texts.
fn page_rows(b: &Browser, table: &str) -> Vec<Value> {
    let v = b.eval(&format!(
        "return [...document.querySelectorAll('{table} tbody tr')].map(r => ({{key: r.dataset.key || null, seq: Number(r.dataset.seq || 0), cells: [...r.cells].map(c => c.innerText)}}))"
    ));
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn the_dashboard_api_and_top_show_what_the_kernel_logged() {
    if !lab::available() {
        return lab::skip("the dashboard test needs root, nft and ip");
    }
    for tool in ["chromium", "chromedriver", "tmux"] {
        if !lab::have(tool) {
            return lab::skip(&format!(
                "the dashboard test needs {tool} (scripts/deps installs it)"
            ));
        }
    }
    let lab = Lab::new();
    lab.exec(&lab.a, &format!("ip addr add {A4_OTHER}/24 dev va"));
    lab.nft(
        &lab.b,
        r#"table inet dash {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport { 4444, 4445, 4446 } log group 7 prefix "DASH DROP " drop
    udp dport 5353 log group 7 prefix "DASH ACCEPT " accept
  }
}"#,
    );
    let port = lab::free_port();
    let db = lab.path("dash.db");
    let cfg = lab.path("dash.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"http_address = "127.0.0.1:{port}"
[sources.fw]
type = "nflog"
groups = [7]
netns = "/run/netns/{b}"
[sinks.store]
type = "sqlite"
inputs = ["fw"]
path = "{db}"
"#,
            b = lab.b,
            db = db.display()
        ),
    )
    .unwrap();
    let daemon = lab::start_nflogd(None, &cfg, &lab.path("nflogd.log"));
    wait_for(
        "NFLOG group 7 bound in the lab",
        Duration::from_secs(10),
        || {
            lab.exec(&lab.b, "cat /proc/net/netfilter/nfnetlink_log")
                .lines()
                .any(|l| l.split_whitespace().next() == Some("7"))
                .then_some(())
        },
    );
    let base = format!("http://127.0.0.1:{port}");

    // 30 dropped from A4, 20 dropped from A4_OTHER (12 to 4444, 8 to 4445), 10 accepted from it.
    udp_from(&lab.a, A4, format!("{B4}:4444"), 30);
    udp_from(&lab.a, A4_OTHER, format!("{B4}:4444"), 12);
    udp_from(&lab.a, A4_OTHER, format!("{B4}:4445"), 8);
    udp_from(&lab.a, A4_OTHER, format!("{B4}:5353"), 10);

    // The store has them all (the summaries read it).
    wait_for(
        "all 60 packets in the store",
        Duration::from_secs(20),
        || {
            let v = get_json(&format!("{base}/api/top/sources?since=1h"));
            let total: u64 = v["rows"]
                .as_array()?
                .iter()
                .map(|r| r["packets"].as_u64().unwrap_or(0))
                .sum();
            (total == 60).then_some(())
        },
    );
    let v = get_json(&format!(
        "{base}/api/top/sources?since=1h&action=drop,reject"
    ));
    let sources = v["rows"].as_array().unwrap().clone();
    assert_eq!(sources[0], json!({"src_ip": A4, "packets": 30}));
    assert_eq!(sources[1], json!({"src_ip": A4_OTHER, "packets": 20}));
    let ports = get_json(&format!("{base}/api/top/dropped-ports?since=1h"));
    assert_eq!(
        ports["rows"],
        json!([{"protocol": 17, "dst_port": 4444, "packets": 42}, {"protocol": 17, "dst_port": 4445, "packets": 8}])
    );
    let all = get_json(&format!("{base}/api/top/sources?since=1h"));
    assert_eq!(all["rows"][0]["packets"], 30, "{all}");
    let timeline = get_json(&format!("{base}/api/timeline?since=1h"));
    let sum = |k: &str| -> u64 {
        timeline["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (sum("drop"), sum("accept"), sum("reject")),
        (50, 10, 0),
        "{timeline}"
    );
    assert_eq!(timeline["from"], "store");
    let accepted = get_json(&format!(
        "{base}/api/events?table=packets&dport=5353&limit=50"
    ));
    let rows = accepted["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|r| r["action"] == "accept"
            && r["src_ip"] == A4_OTHER
            && r["prefix"] == "DASH ACCEPT"),
        "{rows:?}"
    );
    // The live view holds the same 60 packets, rendered as ECS records.
    let live = get_json(&format!("{base}/api/live?limit=1000"));
    let events = live["events"].as_array().unwrap();
    assert_eq!(events.len(), 60, "{live}");
    let last = events.last().unwrap();
    assert_eq!(last["record"]["source"]["ip"], A4_OTHER);
    assert_eq!(last["record"]["destination"]["port"], 5353);
    assert_eq!(last["record"]["event"]["action"], "accept");
    let live_top = get_json(&format!("{base}/api/live/top?by=ports&action=drop"));
    assert_eq!(
        live_top["rows"][0],
        json!({"key": "4444/udp", "packets": 42})
    );
    // Bad parameters are a 400 that says why; the server only reads.
    let (status, body) = get(&format!("{base}/api/top/sources?since=yesterday-ish"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("since"), "{body}");
    assert_eq!(get(&format!("{base}/api/nope")).0, 404);
    let post = agent()
        .post(&format!("{base}/api/status"))
        .send("x")
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    // Metrics on the same address, counting what the source received.
    let (status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"nflogd_received_total{component_kind="source",component="fw"} 60"#),
        "{metrics}"
    );

    // The page, in Chromium.
    let browser = Browser::start(&lab.dir);
    browser.open(&format!("{base}/"));
    let top = wait_for("the page's top sources", Duration::from_secs(30), || {
        let rows = page_rows(&browser, "#top-sources");
        (rows.len() == 2 && rows[0]["key"] == A4).then_some(rows)
    });
    assert_eq!(top[0]["cells"][1], "30");
    assert_eq!(top[1]["key"], A4_OTHER);
    assert_eq!(top[1]["cells"][1], "20");
    let ports = page_rows(&browser, "#top-ports");
    assert_eq!(ports[0]["key"], "4444", "{ports:?}");
    assert_eq!(ports[0]["cells"][2], "42");
    let bars = browser.eval(
        "return [...document.querySelectorAll('#timeline rect[data-action]')].reduce((s, r) => { s[r.dataset.action] = (s[r.dataset.action] || 0) + Number(r.dataset.count); return s; }, {})",
    );
    assert_eq!(bars, json!({"drop": 50, "accept": 10}));
    let health = page_rows(&browser, "#health");
    assert!(
        health
            .iter()
            .any(|r| r["cells"][0].as_str().unwrap_or("").contains("store")),
        "{health:?}"
    );
    let tail = wait_for("the recent events", Duration::from_secs(10), || {
        let rows = page_rows(&browser, "#tail");
        (rows.len() == 50).then_some(rows)
    });
    let seen = tail
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(seen, 60);
    wait_for("the live tail to connect", Duration::from_secs(10), || {
        (browser.eval("return document.querySelector('#tail-state').textContent") == "live")
            .then_some(())
    });
    browser.screenshot("dashboard.png");

    // Three more drops: the open page shows them without a reload.
    udp_from(&lab.a, A4, format!("{B4}:4446"), 3);
    let fresh = wait_for(
        "the live tail to show new events",
        Duration::from_secs(15),
        || {
            let rows: Vec<Value> = page_rows(&browser, "#tail")
                .into_iter()
                .filter(|r| r["seq"].as_u64().unwrap_or(0) > seen)
                .collect();
            (rows.len() == 3).then_some(rows)
        },
    );
    for r in &fresh {
        assert_eq!(r["cells"][1], "drop");
        assert_eq!(r["cells"][5], format!("{B4}:4446"));
    }
    // A filter typed in the page narrows the list to what matches.
    browser.eval(&format!(
        "const q = document.querySelector('#tail-q'); q.value = '{A4_OTHER}'; q.dispatchEvent(new Event('input'));"
    ));
    let filtered = wait_for("the filtered tail", Duration::from_secs(10), || {
        let rows = page_rows(&browser, "#tail");
        (rows.len() == 30).then_some(rows)
    });
    assert!(filtered
        .iter()
        .all(|r| r["cells"][4].as_str().unwrap_or("").starts_with(A4_OTHER)));
    browser.screenshot("dashboard-live.png");
    drop(browser);

    // `nflogd top` in tmux: live rates and the top source of the last events.
    let session = format!("nflogd-top-{}", lab::tag());
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "120", "-y", "45"])
        .arg(format!(
            "{} top --config {}",
            env!("CARGO_BIN_EXE_nflogd"),
            cfg.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let capture = || -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let screen = wait_for("nflogd top's screen", Duration::from_secs(15), || {
        let s = capture();
        (s.contains("top sources") && s.contains("4446")).then_some(s)
    });
    std::fs::write(output_dir().join("top.txt"), &screen).unwrap();
    let after_header = screen
        .lines()
        .skip_while(|l| !l.contains("top sources"))
        .nth(2)
        .unwrap_or("");
    assert!(
        after_header.contains(A4) && after_header.contains("33"),
        "the top source row: {after_header}\n{screen}"
    );
    assert!(screen.contains("source fw"), "{screen}");
    // Typing a filter narrows the last events.
    Command::new("tmux")
        .args(["send-keys", "-t", &session, "/"])
        .status()
        .unwrap();
    Command::new("tmux")
        .args(["send-keys", "-t", &session, "-l", "accept"])
        .status()
        .unwrap();
    let filtered = wait_for(
        "nflogd top's filtered screen",
        Duration::from_secs(10),
        || {
            let s = capture();
            s.contains("filter: accept").then_some(s)
        },
    );
    std::fs::write(output_dir().join("top-filtered.txt"), &filtered).unwrap();
    let event_lines: Vec<&str> = filtered
        .lines()
        .skip_while(|l| !l.contains("last events"))
        .skip(1)
        .filter(|l| l.contains(" -> "))
        .collect();
    assert_eq!(event_lines.len(), 10, "{filtered}");
    assert!(
        event_lines
            .iter()
            .all(|l| l.contains(&format!("{A4_OTHER}:")) && l.contains(&format!("-> {B4}:5353"))),
        "{filtered}"
    );
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    daemon.stop();
}

/// Basic authentication and TLS: without the password nothing is served, with it everything;
/// plain HTTP does not reach a TLS listener. No kernel needed: a file source on an empty file.
#[test]
fn the_http_server_asks_for_the_password_over_tls() {
    let dir = std::env::temp_dir().join(format!("nflogd-http-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    if !lab::have("openssl") {
        return lab::skip("the TLS test needs openssl");
    }
    lab::certificates(&dir);
    std::fs::write(dir.join("empty.log"), "").unwrap();
    let port = lab::free_port();
    let cfg = dir.join("http.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"http_address = "{port}"
http_user = "ops"
http_password = "s3cret"
http_cert_file = "{d}/srv.pem"
http_key_file = "{d}/srv.key"
[sources.log]
type = "file"
path = "{d}/empty.log"
state_file = "{d}/pos"
[sinks.out]
type = "file"
inputs = ["log"]
path = "{d}/out.json"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let daemon = lab::start_nflogd(None, &cfg, &dir.join("nflogd.log"));
    let pem = std::fs::read(dir.join("ca.pem")).unwrap();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    let client = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    // A bare port listens on loopback.
    let url = format!("https://127.0.0.1:{port}");
    let r = client.get(&format!("{url}/api/status")).call().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = client
        .get(&format!("{url}/api/status"))
        .header("Authorization", "Basic b3BzOndyb25n") // ops:wrong
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let mut r = client
        .get(&format!("{url}/"))
        .header("Authorization", "Basic b3BzOnMzY3JldA==") // ops:s3cret
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.body_mut().read_to_string().unwrap();
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    // Plain HTTP to the TLS port gets no page.
    assert!(agent()
        .get(&format!("http://127.0.0.1:{port}/"))
        .call()
        .map(|r| r.status().as_u16() != 200)
        .unwrap_or(true));
    daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
