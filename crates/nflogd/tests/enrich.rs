//! Enrichment transforms end to end: GeoIP from databases the test writes (City and ASN, in
//! MaxMind's format), a database replaced on disk while nflogd runs, and a damaged one refused.

mod lab;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn mmdb(out: &Path, kind: &str, spec: &Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/mmdb.py");
    let status = std::process::Command::new("/usr/bin/python3")
        .env("PYTHONPATH", lab::PYTHON_LIBS)
        .arg(script)
        .arg(out)
        .arg(kind)
        .arg(spec.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "writing {}", out.display());
}

fn city(name: &str) -> Value {
    json!({
        "81.2.0.0/16": {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "city": {"names": {"en": "Britain"}}
        },
        "81.2.69.0/24": {
            "continent": {"code": "EU", "names": {"en": "Europe", "de": "Europa"}},
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": name}},
            "postal": {"code": "EC2V"},
            "location": {"latitude": 51.5142, "longitude": -0.0931, "time_zone": "Europe/London"}
        },
        "2a02:ec80::/32": {
            "continent": {"code": "EU", "names": {"en": "Europe"}},
            "country": {"iso_code": "SE", "names": {"en": "Sweden"}}
        }
    })
}

/// A kernel LOG line from `src` to `dst` (UDP), named by its IP ID.
fn line(src: &str, dst: &str, id: u32) -> String {
    if src.contains(':') {
        format!("DROP IN=eth0 OUT= MAC= SRC={src} DST={dst} LEN=48 TC=0 HOPLIMIT=64 FLOWLBL={id} PROTO=UDP SPT=1 DPT=53 LEN=8 \n")
    } else {
        format!("DROP IN=eth0 OUT= MAC= SRC={src} DST={dst} LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID={id} PROTO=UDP SPT=1 DPT=53 LEN=8 \n")
    }
}

/// Appends lines to the followed file and returns the records nflogd wrote for them.
fn feed(input: &Path, out: &Path, lines: &[String]) -> Vec<Value> {
    use std::io::Write;
    let before = lab::wait_lines(out, 0, Duration::ZERO).len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(input)
        .unwrap();
    f.write_all(lines.concat().as_bytes()).unwrap();
    let recs = lab::json_lines(&lab::wait_lines(
        out,
        before + lines.len(),
        Duration::from_secs(10),
    ));
    recs[before..].to_vec()
}

#[test]
fn geoip_from_city_and_asn_databases_reloaded_when_replaced() {
    if !Path::new(lab::PYTHON_LIBS).join("mmdb_writer").exists() {
        lab::skip("mmdb-writer (PyPI) is not installed: scripts/deps installs it");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-geoip-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let (city_db, asn_db) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    mmdb(&city_db, "GeoLite2-City", &city("London"));
    mmdb(
        &asn_db,
        "GeoLite2-ASN",
        &json!({"81.2.69.0/24": {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"},
                "89.160.20.0/24": {"autonomous_system_number": 4200000001u64, "autonomous_system_organization": "Big AS"}}),
    );
    let input = dir.join("kern.log");
    std::fs::write(&input, "").unwrap();
    let out = dir.join("out.json");
    let cfg = format!(
        "stats_interval = \"0s\"\n\
         [sources.f]\ntype = \"file\"\npath = \"{d}/kern.log\"\nstate_file = \"{d}/pos\"\npoll_interval = \"20ms\"\n\
         [transforms.geo]\ntype = \"geoip\"\ninputs = [\"f\"]\ndatabases = [\"{d}/city.mmdb\", \"{d}/asn.mmdb\"]\nreload_interval = \"1s\"\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"geo\"]\npath = \"{d}/out.json\"\n"
    );
    std::fs::write(dir.join("c.toml"), &cfg).unwrap();
    let n = lab::start_nflogd(None, &dir.join("c.toml"), &dir.join("log"));
    // An address of the /16 outside the /24 inside it comes first: the answer for its network
    // must not be taken for the /24's.
    let mut recs = feed(
        &input,
        &out,
        &[
            line("81.2.1.1", "81.2.70.1", 0),
            line("81.2.69.160", "89.160.20.112", 1),
            line("10.0.0.1", "192.168.1.1", 2),
            line("2a02:ec80::1", "fd00::1", 3),
        ],
    );
    let nested = recs.remove(0);
    for side in ["source", "destination"] {
        assert_eq!(nested[side]["geo"]["city_name"], "Britain", "{nested}");
    }
    lab::ecs::assert_conforms(&recs);
    let (a, private, v6) = (&recs[0], &recs[1], &recs[2]);
    assert_eq!(
        a["source"]["geo"],
        json!({"continent_code": "EU", "continent_name": "Europe", "country_iso_code": "GB",
               "country_name": "United Kingdom", "region_iso_code": "GB-ENG", "region_name": "England",
               "city_name": "London", "postal_code": "EC2V", "timezone": "Europe/London",
               "location": {"lat": 51.5142, "lon": -0.0931}}),
        "{a}"
    );
    assert_eq!(
        a["source"]["as"],
        json!({"number": 64500, "organization": {"name": "Example Transit"}})
    );
    // The destination: in the ASN database only, with a 32-bit AS number.
    assert!(a["destination"]["geo"].is_null(), "{a}");
    assert_eq!(a["destination"]["as"]["number"], 4200000001u64);
    for side in ["source", "destination"] {
        assert!(
            private[side]["geo"].is_null() && private[side]["as"].is_null(),
            "{private}"
        );
    }
    assert_eq!(v6["source"]["geo"]["country_iso_code"], "SE");
    assert!(
        v6["destination"]["geo"].is_null(),
        "a unique local address is not looked up"
    );

    // Replaced the way updaters do it: written aside, renamed over.
    mmdb(&dir.join("city.new"), "GeoLite2-City", &city("Manchester"));
    std::fs::rename(dir.join("city.new"), &city_db).unwrap();
    let start = Instant::now();
    let mut id = 10;
    loop {
        let r = feed(&input, &out, &[line("81.2.69.160", "10.0.0.1", id)]);
        if r[0]["source"]["geo"]["city_name"] == "Manchester" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new database was never used: {}",
            n.log_text()
        );
        id += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    // A damaged file in its place: refused, and the database in use stays.
    let good = std::fs::read(&city_db).unwrap();
    std::fs::write(dir.join("city.bad"), &good[..good.len() / 3]).unwrap();
    std::fs::rename(dir.join("city.bad"), &city_db).unwrap();
    let start = Instant::now();
    while !n.log_text().contains("keeping the database loaded before") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no word of the damaged file: {}",
            n.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = feed(&input, &out, &[line("81.2.69.160", "10.0.0.1", 99)]);
    assert_eq!(r[0]["source"]["geo"]["city_name"], "Manchester");
    let log = n.stop();
    assert!(lab::stat(&log, "transform.geo", "errors") >= 1, "{log}");

    // `check` refuses a damaged database and a file that is not one.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .arg("check")
        .arg(dir.join("c.toml"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success() && msg.contains("city.mmdb"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// dnsmasq on loopback answering PTR queries for two addresses (and nothing else).
fn dnsmasq(dir: &Path, port: u16) -> lab::Daemon {
    use lab::SpawnOwned;
    let log = dir.join("dnsmasq.log");
    let child = std::process::Command::new("dnsmasq")
        .args(["--no-daemon", "--bind-interfaces", "--listen-address=127.0.0.1", "--no-resolv", "--no-hosts"])
        .arg(format!("--port={port}"))
        .arg("--ptr-record=160.69.2.81.in-addr.arpa,gw.example.net")
        .arg("--ptr-record=1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.c.e.2.0.a.2.ip6.arpa,v6.example.net")
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .arg("--log-queries")
        .arg(format!("--log-facility={}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn_owned()
        .expect("start dnsmasq");
    let d = lab::Daemon {
        child: Some(child),
        log,
    };
    d.wait_log("started", Duration::from_secs(10));
    d
}

/// Names from a real resolver (dnsmasq on loopback): records get them once known, without
/// waiting; and a resolver that never answers holds nothing up.
#[test]
fn rdns_names_come_from_the_resolver_and_never_hold_records_up() {
    if !lab::have("dnsmasq") {
        lab::skip("dnsmasq is not installed (scripts/deps installs dnsmasq-base)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nflogd-rdns-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let port = lab::free_port();
    let _dns = dnsmasq(&dir, port);
    // A resolver that never answers: a socket the test holds and never reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let input = dir.join("kern.log");
    std::fs::write(&input, "").unwrap();
    let (out, out_silent) = (dir.join("out.json"), dir.join("silent.json"));
    let cfg = format!(
        "stats_interval = \"0s\"\n\
         [sources.f]\ntype = \"file\"\npath = \"{d}/kern.log\"\nstate_file = \"{d}/pos\"\npoll_interval = \"20ms\"\n\
         [transforms.names]\ntype = \"rdns\"\ninputs = [\"f\"]\nservers = [\"127.0.0.1:{port}\"]\ntimeout = \"1s\"\n\
         [transforms.silent]\ntype = \"rdns\"\ninputs = [\"f\"]\nservers = [\"127.0.0.1:{silent_port}\"]\ntimeout = \"30s\"\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"names\"]\npath = \"{d}/out.json\"\n\
         [sinks.s]\ntype = \"file\"\ninputs = [\"silent\"]\npath = \"{d}/silent.json\"\n"
    );
    std::fs::write(dir.join("c.toml"), &cfg).unwrap();
    let n = lab::start_nflogd(None, &dir.join("c.toml"), &dir.join("log"));
    let start = Instant::now();
    let mut id = 1;
    let named = loop {
        let r = feed(
            &input,
            &out,
            &[
                line("81.2.69.160", "203.0.113.9", id),
                line("2a02:ec80::1", "2001:db8::9", id + 1),
            ],
        );
        if r[0]["source"]["domain"] == "gw.example.net"
            && r[1]["source"]["domain"] == "v6.example.net"
        {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no names after 10 s: {r:?}\n{}",
            n.log_text()
        );
        id += 2;
        std::thread::sleep(Duration::from_millis(100));
    };
    lab::ecs::assert_conforms(&named);
    // An address with no PTR record gets no name.
    assert!(named[1]["destination"]["domain"].is_null(), "{}", named[1]);
    // Every record reached the sink behind the silent resolver too, none with a name.
    let behind = lab::json_lines(&lab::wait_lines(
        &out_silent,
        id as usize + 1,
        Duration::from_secs(10),
    ));
    assert_eq!(behind.len(), id as usize + 1);
    assert!(behind.iter().all(|r| r["source"]["domain"].is_null()));
    let log = n.stop();
    assert!(lab::stat(&log, "transform.names", "received") >= 2, "{log}");
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}
