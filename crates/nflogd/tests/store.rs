//! The database sinks against real databases: packets from the kernel lab and conntrack flows
//! through a NAT router go into SQLite and a PostgreSQL server started here; what is read back
//! equals what was logged, with the right types; the open-connections table follows NEW and
//! DESTROY; `nflogd query` answers the NAT question; a database restart loses nothing.

mod lab;

use lab::SpawnOwned;

use lab::clickhouse::ClickHouse;
use lab::nat::{masquerade, tcp_hello};
use lab::pg::Postgres;
use lab::{json_lines, sh, wait_lines, Lab};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn nflogd_query(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .arg("query")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nflogd query {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// nflogd with a `stdin` source named `in` and the sink(s) `sinks` (TOML), fed `input` until it
/// ends; returns whether it exited well and its log.
fn nflogd_stdin(dir: &Path, sinks: &str, input: &[u8]) -> (bool, String) {
    use std::io::Write;
    let cfg = dir.join("stdin.toml");
    std::fs::write(
        &cfg,
        format!("stats_interval = \"0s\"\n[sources.in]\ntype = \"stdin\"\n{sinks}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nflogd"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn_owned()
        .unwrap();
    // A start that fails has closed its end: the write may fail then.
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// For a test of the shared PostgreSQL server: a database (name, URL) and a directory of its
/// own; None when the test is skipped.
fn pg_fixture(what: &str) -> Option<(&'static Postgres, std::path::PathBuf, String, String)> {
    if !lab::pg::available() {
        return None;
    }
    let pg = Postgres::shared();
    let t = lab::tag();
    let dir = std::env::temp_dir().join(format!("nflogd-store-{what}-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("{what}{t}");
    let url = pg.create_db(&db);
    Some((pg, dir, db, url))
}

/// Polls until `f` is true (or panics after `secs`).
fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sqlite_count(db: &Path, sql: &str) -> u64 {
    // A reader may meet the writer's lock for a moment; wait for it as `nflogd query` does.
    sh(&format!(
        "sqlite3 -cmd \".timeout 5000\" {} \"{sql}\"",
        db.display()
    ))
    .trim()
    .parse()
    .unwrap_or(0)
}

fn ecs_mac(v: &Value) -> String {
    v.as_str().unwrap_or("").replace('-', ":").to_lowercase()
}

#[test]
fn kernel_packets_are_stored_typed_and_equal_the_ecs_records() {
    if !lab::available() || !lab::pg::available() || !lab::clickhouse::available() {
        return;
    }
    let pg = Postgres::shared();
    let ch = ClickHouse::shared();
    let t = lab::tag();
    let db = format!("pkts{t}");
    let url = pg
        .create_db(&db)
        .replace("sslmode=disable", "sslmode=require");
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    iifname "vb" meta l4proto { tcp, udp, icmp, ipv6-icmp } log group 7 prefix "STORE: DROP "
  }
}"#,
    );
    let (ecs, sqlite) = (lab.path("ecs.json"), lab.path("store.db"));
    let cfg = lab.path("c.toml");
    // PostgreSQL over TLS, the server's certificate checked against the CA file.
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [7]\nnetns = \"/run/netns/{}\"\n\
             [sinks.e]\ntype = \"file\"\ninputs = [\"fw\"]\npath = \"{}\"\n\
             [sinks.lite]\ntype = \"sqlite\"\ninputs = [\"fw\"]\npath = \"{}\"\n\
             [sinks.pg]\ntype = \"postgres\"\ninputs = [\"fw\"]\nurl = \"{url}\"\nca_file = \"{}\"\nspool.dir = \"{}\"\n\
             [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"fw\"]\nurl = \"{}\"\ndatabase = \"{db}\"\nspool.dir = \"{}\"\n",
            lab.b,
            ecs.display(),
            sqlite.display(),
            pg.ca_file().display(),
            lab.path("spool").display(),
            ch.url(),
            lab.path("chspool").display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &lab.path("log"));
    lab.traffic();
    let recs = json_lines(&wait_lines(&ecs, 6, Duration::from_secs(5)));
    wait_until(
        10,
        &format!("rows in PostgreSQL; log:\n{}", d.log_text()),
        || {
            pg.try_psql(&db, "SELECT count(*) FROM packets")
                .is_ok_and(|n| n.trim() == recs.len().to_string())
        },
    );
    wait_until(10, "rows in SQLite", || {
        sqlite_count(&sqlite, "SELECT count(*) FROM packets") == recs.len() as u64
    });
    wait_until(10, "rows in ClickHouse", || {
        ch.try_query(&format!("SELECT count() FROM {db}.packets"))
            .is_ok_and(|n| n.trim() == recs.len().to_string())
    });
    assert_eq!(
        pg.psql(&db, "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE datname = current_database() AND pid <> pg_backend_pid()").trim(),
        "t",
        "nflogd's connection is TLS"
    );
    d.stop();

    // Typed columns.
    let types = pg.psql(
        &db,
        "SELECT column_name || ':' || data_type FROM information_schema.columns \
         WHERE table_name = 'packets' AND column_name IN ('time', 'src_ip', 'mac_src', 'dst_port', 'protocol') ORDER BY 1",
    );
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "dst_port:integer",
            "mac_src:macaddr",
            "protocol:smallint",
            "src_ip:inet",
            "time:timestamp with time zone"
        ]
    );
    // Every record, read back from both stores through `nflogd query`, equals the ECS record.
    let pg_rows = nflogd_query(&["--db", &pg.url(&db), "--limit", "1000"]);
    let lite_rows = nflogd_query(&["--db", sqlite.to_str().unwrap(), "--limit", "1000"]);
    // (Rows of the same microsecond may come in either order.)
    let sorted = |rows: &[Value]| {
        let mut v: Vec<String> = rows.iter().map(Value::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&pg_rows),
        sorted(&lite_rows),
        "SQLite and PostgreSQL hold the same rows"
    );
    assert_eq!(pg_rows.len(), recs.len());
    let mut protocols = std::collections::BTreeSet::new();
    // Each record's fields as the ECS record has them and as the row has them: equal as
    // multisets (two packets may share a microsecond).
    let n = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or(v.as_i64())
    };
    let mut expected: Vec<String> = recs
        .iter()
        .map(|rec| {
            format!(
                "{} {} {} {:?} {:?} {:?} {} {:?} STORE: DROP drop input vb 7",
                rec["@timestamp"].as_str().unwrap(),
                rec["source"]["ip"],
                rec["destination"]["ip"],
                n(&rec["network"]["iana_number"]),
                rec["source"]["port"].as_i64(),
                rec["destination"]["port"].as_i64(),
                ecs_mac(&rec["source"]["mac"]),
                rec["network"]["bytes"].as_i64(),
            )
        })
        .collect();
    let mut stored: Vec<String> = pg_rows
        .iter()
        .map(|row| {
            protocols.insert(row["protocol"].as_i64().unwrap());
            format!(
                "{} {} {} {:?} {:?} {:?} {} {:?} {} {} {} {} {}",
                row["time"].as_str().unwrap(),
                row["src_ip"],
                row["dst_ip"],
                n(&row["protocol"]),
                row.get("src_port").and_then(Value::as_i64),
                row.get("dst_port").and_then(Value::as_i64),
                row["mac_src"].as_str().unwrap(),
                row["length"].as_i64(),
                row["prefix"].as_str().unwrap(),
                row["action"].as_str().unwrap(),
                row["hook"].as_str().unwrap(),
                row["in_iface"].as_str().unwrap(),
                row["nflog_group"],
            )
        })
        .collect();
    expected.sort();
    stored.sort();
    assert_eq!(stored, expected);
    assert_eq!(
        protocols.into_iter().collect::<Vec<_>>(),
        [1, 6, 17, 58],
        "ICMP, TCP, UDP and ICMPv6 all stored"
    );
    // ClickHouse holds the same rows (addresses as IPv4-mapped 16 bytes, time in µs).
    let mut in_ch: Vec<String> = ch
        .query(&format!(
            "SELECT time, replaceOne(IPv6NumToString(src_ip), '::ffff:', ''), \
             replaceOne(IPv6NumToString(dst_ip), '::ffff:', ''), protocol, src_port, dst_port, \
             lower(MACNumToString(mac_src)), prefix, action, in_iface, nflog_group FROM {db}.packets"
        ))
        .lines()
        .map(str::to_string)
        .collect();
    let mut in_pg: Vec<String> = pg_rows
        .iter()
        .map(|r| {
            let t = chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap();
            let f = |k: &str| match &r[k] {
                Value::Null => "\\N".to_string(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            [
                t.timestamp_micros().to_string(),
                f("src_ip"),
                f("dst_ip"),
                f("protocol"),
                f("src_port"),
                f("dst_port"),
                f("mac_src"),
                f("prefix"),
                f("action"),
                f("in_iface"),
                f("nflog_group"),
            ]
            .join("\t")
        })
        .collect();
    in_ch.sort();
    in_pg.sort();
    assert_eq!(in_ch, in_pg);

    // Filters: CIDR, port, protocol, action, prefix, and a summary.
    let v6 = nflogd_query(&[
        "--db",
        &pg.url(&db),
        "--src",
        "fd00:200::/64",
        "--proto",
        "udp",
    ]);
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(v6[0]["dst_port"], 5353);
    let lite_v6 = nflogd_query(&[
        "--db",
        sqlite.to_str().unwrap(),
        "--src",
        "fd00:200::/64",
        "--proto",
        "udp",
    ]);
    assert_eq!(v6, lite_v6);
    let top = nflogd_query(&["--db", &pg.url(&db), "--top", "sources"]);
    let counts: Vec<u64> = top.iter().map(|r| r["packets"].as_u64().unwrap()).collect();
    assert_eq!(counts.iter().sum::<u64>(), recs.len() as u64, "{top:?}");
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{top:?}");
    for a in [lab::A4, lab::A6] {
        let want = recs.iter().filter(|r| r["source"]["ip"] == a).count() as u64;
        assert!(
            top.iter().any(|r| r["src_ip"] == a && r["packets"] == want),
            "{a}: {top:?}"
        );
    }
    let ports = nflogd_query(&[
        "--db",
        sqlite.to_str().unwrap(),
        "--top",
        "dropped-ports",
        "--prefix",
        "store: drop",
    ]);
    assert!(
        ports
            .iter()
            .any(|p| p["dst_port"] == 81 && p["protocol"] == 6),
        "{ports:?}"
    );
}

#[test]
fn nat_flows_keep_open_connections_and_answer_the_nat_question() {
    if !lab::available() || !lab::pg::available() || !lab::clickhouse::available() {
        return;
    }
    let pg = Postgres::shared();
    let ch = ClickHouse::shared();
    let m = masquerade();
    let db = format!("nat{}", m.t);
    let url = pg.create_db(&db);
    // A second database with ulogd2's schema, for a sink with `tables = "ulogd"`.
    let ulogd_db = format!("natulogd{}", m.t);
    let ulogd_url = pg.create_db(&ulogd_db);
    pg.psql(
        &ulogd_db,
        &sh("zcat /usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz"),
    );
    let dir = std::env::temp_dir().join(format!("nflogd-store-nat-{}", m.t));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = dir.join("store.db");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.ct]\ntype = \"conntrack\"\nnetns = \"/run/netns/{}\"\n\
             [sinks.lite]\ntype = \"sqlite\"\ninputs = [\"ct\"]\npath = \"{}\"\n\
             [sinks.pg]\ntype = \"postgres\"\ninputs = [\"ct\"]\nurl = \"{url}\"\nspool.dir = \"{}\"\n\
             [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"ct\"]\nurl = \"{}\"\ndatabase = \"{db}\"\nspool.dir = \"{}\"\n\
             [sinks.ulogd]\ntype = \"postgres\"\ninputs = [\"ct\"]\nurl = \"{ulogd_url}\"\ntables = \"ulogd\"\nspool.dir = \"{}\"\n",
            m.r,
            sqlite.display(),
            dir.join("spool").display(),
            ch.url(),
            dir.join("chspool").display(),
            dir.join("ulogdspool").display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &dir.join("log"));
    let before = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));

    // A connection held open for 3 s: its row is in open_flows meanwhile.
    let open_sql =
        "SELECT count(*) FROM open_flows WHERE src_ip = '10.210.1.2' AND dst_port = 8443";
    let (during, open_pg, (peer, _, sport)) = std::thread::scope(|s| {
        let conn = s.spawn(|| tcp_hello(&m, 8443, Duration::from_secs(3)));
        wait_until(5, "the open connection in PostgreSQL", || {
            pg.psql(&db, open_sql).trim() == "1"
        });
        wait_until(5, "the open connection in SQLite", || {
            sqlite_count(&sqlite, open_sql) == 1
        });
        let during = chrono::Utc::now();
        let open_pg = nflogd_query(&["--db", &pg.url(&db), "--table", "open-flows"]);
        (during, open_pg, conn.join().unwrap())
    });
    assert_eq!(open_pg.len(), 1, "{open_pg:?}");
    assert_eq!(open_pg[0]["nat_src_ip"], "10.210.2.1");
    // End the connection's tracking: DESTROY.
    sh(&format!("ip netns exec {} conntrack -F 2>/dev/null", m.r));
    wait_until(5, "the DESTROY in PostgreSQL", || {
        pg.psql(&db, open_sql).trim() == "0"
            && pg
                .psql(
                    &db,
                    "SELECT count(*) FROM flows WHERE event = 'destroy' AND dst_port = 8443",
                )
                .trim()
                == "1"
    });
    wait_until(5, "the DESTROY in SQLite", || {
        sqlite_count(&sqlite, open_sql) == 0
    });
    // ulogd2's ulog2_ct: the NEW and the DESTROY, NAT in the reply tuple, as INSERT_CT writes.
    let ct_sql = "SELECT ct_event, host(orig_ip_saddr_str), orig_l4_sport, host(reply_ip_daddr_str), reply_l4_dport, \
                  orig_raw_pktcount > 0 FROM ulog2_ct WHERE orig_l4_dport = 8443 ORDER BY ct_event";
    wait_until(5, "the flow in ulog2_ct", || {
        pg.psql(&ulogd_db, ct_sql).lines().count() == 2
    });
    assert_eq!(
        pg.psql(&ulogd_db, ct_sql).lines().collect::<Vec<_>>(),
        [
            format!("1|10.210.1.2|{sport}|10.210.2.1|{}|f", peer.port()),
            format!("4|10.210.1.2|{sport}|10.210.2.1|{}|t", peer.port())
        ]
    );
    std::thread::sleep(Duration::from_millis(1100));
    let after = chrono::Utc::now();
    d.stop();

    // The talkers summary: bytes of ended connections by source.
    let talkers = nflogd_query(&["--db", &pg.url(&db), "--top", "talkers"]);
    let bytes: i64 = pg
        .psql(
            &db,
            "SELECT sum(orig_bytes + reply_bytes) FROM flows WHERE event = 'destroy' AND src_ip = '10.210.1.2'",
        )
        .trim()
        .parse()
        .unwrap();
    assert_eq!(talkers[0]["src_ip"], "10.210.1.2", "{talkers:?}");
    assert_eq!(talkers[0]["bytes"], bytes, "{talkers:?}");
    assert!(bytes > 5, "{talkers:?}");
    // The longest flows: the connection, with its source NAT address and how long it lasted,
    // the same from both stores.
    let lasted = |store: &str| {
        let rows = nflogd_query(&["--db", store, "--top", "longest-flows", "--proto", "tcp"]);
        let r = rows
            .iter()
            .find(|r| r["dst_port"] == 8443)
            .unwrap_or_else(|| panic!("{store}: {rows:?}"))
            .clone();
        assert_eq!(r["src_ip"], "10.210.1.2", "{r}");
        assert_eq!(r["nat_src_ip"], "10.210.2.1", "{r}");
        assert!(r["bytes"].as_i64().unwrap() > 5, "{r}");
        r["seconds"].as_i64().unwrap()
    };
    let (pg_secs, lite_secs) = (lasted(&pg.url(&db)), lasted(&sqlite.display().to_string()));
    assert!((0..60).contains(&pg_secs), "{pg_secs}");
    assert!(
        (pg_secs - lite_secs).abs() <= 1,
        "{pg_secs} and {lite_secs}"
    );
    let nat = format!("10.210.2.1:{}", peer.port());
    for store in [pg.url(&db), sqlite.display().to_string()] {
        let at = during.to_rfc3339();
        let who = nflogd_query(&["--db", &store, "--nat", &nat, "--at", &at]);
        assert_eq!(who.len(), 1, "{store}: {who:?}");
        assert_eq!(who[0]["src_ip"], "10.210.1.2", "the inside host");
        assert_eq!(who[0]["src_port"], sport);
        assert_eq!(who[0]["dst_ip"], "10.210.2.2");
        assert_eq!(who[0]["dst_port"], 8443);
        assert_eq!(who[0]["open"], false);
        assert!(who[0]["flow_end"].is_string(), "{who:?}");
        // Before the connection and after its end nobody was behind that port.
        for t in [before, after] {
            let none = nflogd_query(&["--db", &store, "--nat", &nat, "--at", &t.to_rfc3339()]);
            assert!(none.is_empty(), "{store} at {t}: {none:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_restart_in_mid_stream_loses_nothing() {
    if !lab::available() || !lab::pg::available() {
        return;
    }
    if !lab::clickhouse::available() {
        return;
    }
    // Servers of this test's own: the others keep theirs running.
    let pg = Postgres::start();
    let ch = ClickHouse::start();
    let url = pg.create_db("restart");
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    udp dport 7000 counter log group 8 prefix "RESTART "
  }
}"#,
    );
    let cfg = lab.path("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [8]\nnetns = \"/run/netns/{}\"\n\
             [sinks.pg]\ntype = \"postgres\"\ninputs = [\"fw\"]\nurl = \"{url}\"\nspool.dir = \"{}\"\n\
             [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"fw\"]\nurl = \"{}\"\nspool.dir = \"{}\"\n",
            lab.b,
            lab.path("spool").display(),
            ch.url(),
            lab.path("chspool").display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &lab.path("log"));
    let mut sent = 0;
    for round in 0..30 {
        if round == 10 {
            pg.down();
            ch.down();
        }
        if round == 20 {
            pg.up();
            ch.up();
        }
        lab::udp_burst(&lab.a, lab::B4, 7000, 100);
        sent += 100;
        std::thread::sleep(Duration::from_millis(100));
    }
    let counted = lab::nft_counter(&lab.b);
    assert_eq!(counted, sent as u64);
    wait_until(30, "every packet in PostgreSQL", || {
        pg.psql("restart", "SELECT count(*) FROM packets").trim() == sent.to_string()
    });
    wait_until(30, "every packet in ClickHouse", || {
        ch.try_query("SELECT count() FROM nflogd.packets")
            .is_ok_and(|n| n.trim() == sent.to_string())
    });
    let log = d.stop();
    for sink in ["sink.pg", "sink.ch"] {
        assert!(
            lab::stat(&log, sink, "errors") > 0,
            "{sink}: the outage was seen: {log}"
        );
        assert_eq!(lab::stat(&log, sink, "dropped"), 0, "{sink}: {log}");
    }
    // Each once: no two rows of the same packet (time and source port tell them apart).
    assert_eq!(
        pg.psql(
            "restart",
            "SELECT count(DISTINCT (time, src_port)) FROM packets"
        )
        .trim(),
        sent.to_string()
    );
    assert_eq!(
        ch.try_query("SELECT uniqExact(time, src_port) FROM nflogd.packets")
            .unwrap()
            .trim(),
        sent.to_string()
    );
    // In order: PostgreSQL's heap keeps rows in the order they were written (nothing is
    // deleted here), and no row was written before one logged earlier.
    assert_eq!(
        pg.psql(
            "restart",
            "SELECT count(*) FROM (SELECT time < lag(time) OVER (ORDER BY tableoid, ctid) AS back FROM packets) s WHERE back"
        )
        .trim(),
        "0",
        "rows written out of order"
    );
}

#[test]
fn a_foreign_schema_is_refused_and_values_that_do_not_fit_are_kept() {
    // A database whose `flows` table is someone else's.
    let Some((pg, dir, db, url)) = pg_fixture("foreign") else {
        return;
    };
    pg.psql(&db, "CREATE TABLE flows (id serial, note text)");
    let (ok, err) = nflogd_stdin(
        &dir,
        &format!(
            "[sinks.pg]\ntype = \"postgres\"\ninputs = [\"in\"]\nurl = \"{url}\"\nspool.dir = \"{}\"\n",
            dir.join("spool1").display()
        ),
        b"",
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("the table `flows` exists but was not made by nflogd"),
        "{err}"
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM flows").trim(), "0");

    // A line with a NUL byte cannot be PostgreSQL text: it is kept with U+FFFD, and counted.
    let db = format!("{db}_misfit");
    let url = pg.create_db(&db);
    let (ok, log) = nflogd_stdin(
        &dir,
        &format!(
            "[sinks.pg]\ntype = \"postgres\"\ninputs = [\"in\"]\nurl = \"{url}\"\nspool.dir = \"{}\"\n",
            dir.join("spool2").display()
        ),
        b"IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 SYN URGP=0 \n\
          garbage\0 IN=x OUT= nope\n",
    );
    assert!(ok, "{log}");
    assert_eq!(lab::stat(&log, "sink.pg", "coerced"), 1, "{log}");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM packets").trim(), "1");
    assert_eq!(
        pg.psql(&db, "SELECT line FROM raw_lines").trim(),
        "garbage\u{FFFD} IN=x OUT= nope"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sqlite_retention_deletes_by_age_and_by_size() {
    let dir = std::env::temp_dir().join(format!("nflogd-store-ret-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.db");
    let line = |when: &str, i: u32| {
        format!("{when} fw kernel: [1.0] DROP IN=eth0 OUT= MAC= SRC=10.0.{}.{} DST=10.9.9.9 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID={i} PROTO=TCP SPT=1000 DPT=22 WINDOW=0 RES=0x00 SYN URGP=0 \n", i / 250, i % 250)
    };
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    let recent = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&line(&old.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(), i));
    }
    for i in 0..50 {
        input.push_str(&line(
            &recent.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            i,
        ));
    }
    let run = |input: &str, extra: &str| {
        let (ok, log) = nflogd_stdin(
            &dir,
            &format!(
                "[sinks.lite]\ntype = \"sqlite\"\ninputs = [\"in\"]\npath = \"{}\"\n{extra}",
                db.display()
            ),
            input.as_bytes(),
        );
        assert!(ok, "{log}");
        log
    };
    run(&input, "retention = \"0s\"\n");
    assert_eq!(sqlite_count(&db, "SELECT count(*) FROM packets"), 100);
    // The next start's upkeep removes the 40-day-old rows and keeps the recent ones.
    let log = run("", "retention = \"30d\"\n");
    assert!(
        log.contains("retention deleted 50 rows from packets"),
        "{log}"
    );
    assert_eq!(sqlite_count(&db, "SELECT count(*) FROM packets"), 50);
    assert_eq!(
        sqlite_count(
            &db,
            &format!(
                "SELECT count(*) FROM packets WHERE time < '{}'",
                (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%d")
            )
        ),
        0
    );
    // Size: 20 000 more rows, then a cap far below what they take.
    let mut big = String::new();
    for i in 0..20_000 {
        big.push_str(&line(
            &recent.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            i,
        ));
    }
    run(&big, "retention = \"30d\"\n");
    let all = sqlite_count(&db, "SELECT count(*) FROM packets");
    assert_eq!(all, 20_050);
    let log = run("", "max_size = \"1MiB\"\n");
    assert!(log.contains("over max_size"), "{log}");
    let left = sqlite_count(&db, "SELECT count(*) FROM packets");
    let used = sqlite_count(
        &db,
        "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
    );
    assert!(left > 0 && left < all, "{left} of {all} left");
    assert!(used <= 1 << 20, "{used} bytes in use");
    // What is left is the newest.
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(*) FROM packets WHERE rowid > (SELECT max(rowid) FROM packets) - 10"
        ),
        10
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ulogd_tables_hold_what_ulogd2_itself_writes() {
    if !lab::available() || !lab::pg::available() {
        return;
    }
    let lab = Lab::new();
    // ulogd2 and nflogd run in the lab's namespace; so does their database server.
    let pg = Postgres::start_in(Some(&lab.b));
    let schema = sh("zcat /usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz");
    for db in ["by_ulogd", "by_nflogd"] {
        pg.create_db(db);
        pg.psql(db, &schema);
    }
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    iifname "vb" meta l4proto { tcp, udp, icmp, ipv6-icmp } log group 11 prefix "ULOGDB " log group 12 prefix "ULOGDB "
  }
}"#,
    );
    let plugins: String = [
        "inppkt_NFLOG",
        "raw2packet_BASE",
        "filter_IFINDEX",
        "filter_IP2STR",
        "filter_HWHDR",
        "output_PGSQL",
    ]
    .iter()
    .map(|p| {
        format!(
            "plugin=\"/usr/lib/{}/ulogd/ulogd_{p}.so\"\n",
            lab::multiarch()
        )
    })
    .collect();
    let conf = lab.path("ulogd.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nlogfile=\"{}\"\nloglevel=3\n{plugins}stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,pgsql1:PGSQL\n\n\
             [log1]\ngroup=11\nnetlink_qthreshold=1\n\n\
             [pgsql1]\ndb=\"by_ulogd\"\nhost=\"127.0.0.1\"\nport={}\nuser=\"postgres\"\npass=\"\"\ntable=\"ulog\"\nprocedure=\"INSERT_PACKET_FULL\"\n",
            lab.path("ulogd.log").display(),
            pg.port
        ),
    )
    .unwrap();
    let ulogd = lab::Daemon {
        child: Some(
            Command::new("ip")
                .args(["netns", "exec", &lab.b, "ulogd", "-c"])
                .arg(&conf)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn_owned()
                .unwrap(),
        ),
        log: lab.path("ulogd.log"),
    };
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.fw]\ntype = \"nflog\"\ngroups = [12]\n\
             [sinks.pg]\ntype = \"postgres\"\ninputs = [\"fw\"]\nurl = \"{}\"\ntables = \"ulogd\"\nspool.dir = \"{}\"\n",
            pg.url("by_nflogd"),
            lab.path("spool").display()
        ),
    );
    lab::wait_nflog_bound(ulogd.pid(), 11, Duration::from_secs(10));
    lab.traffic();
    let count = |db: &str| pg.psql(db, "SELECT count(*) FROM ulog2").trim().to_string();
    wait_until(10, "ulogd2's rows", || count("by_ulogd") != "0");
    std::thread::sleep(Duration::from_millis(500));
    wait_until(10, "as many rows from nflogd", || {
        count("by_nflogd") == count("by_ulogd")
    });
    d.stop();
    // Every column of ulogd2's own `ulog` view but the row id.
    let rows = |db: &str| -> Vec<Value> {
        pg.psql(
            db,
            "SELECT row_to_json(u) FROM ulog u ORDER BY oob_time_sec, oob_time_usec",
        )
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("_id");
            v
        })
        .collect()
    };
    let (theirs, ours) = (rows("by_ulogd"), rows("by_nflogd"));
    assert!(theirs.len() >= 6, "{theirs:?}");
    assert_eq!(ours.len(), theirs.len());
    // The two log statements stamp a packet one after the other (microseconds apart), and
    // ulogd2 byte-swaps the ICMPv6 checksum (docs/ulogd-schema.md; nflogd keeps the packet's):
    // rows are paired on every other column, the time within a millisecond.
    let us = |v: &Value| {
        v["oob_time_sec"].as_i64().unwrap() * 1_000_000 + v["oob_time_usec"].as_i64().unwrap()
    };
    let rest = |v: &Value, swap: bool| {
        let mut v = v.clone();
        let m = v.as_object_mut().unwrap();
        m.remove("oob_time_sec");
        m.remove("oob_time_usec");
        if swap {
            if let Some(c) = m.get("icmpv6_csum").and_then(Value::as_u64) {
                m.insert(
                    "icmpv6_csum".into(),
                    ((c as u16).swap_bytes() as u64).into(),
                );
            }
        }
        v
    };
    let mut unpaired: Vec<&Value> = ours.iter().collect();
    for t in &theirs {
        let want = rest(t, false);
        let at = unpaired
            .iter()
            .position(|o| rest(o, true) == want && (us(o) - us(t)).abs() < 1000)
            .unwrap_or_else(|| panic!("no nflogd row like ulogd2's {t}\namong {unpaired:#?}"));
        unpaired.remove(at);
    }
    // The MAC rows are shared, not one per packet.
    assert_eq!(
        pg.psql("by_nflogd", "SELECT count(*) FROM mac").trim(),
        pg.psql("by_ulogd", "SELECT count(*) FROM mac").trim()
    );
}

#[test]
fn a_refused_row_is_counted_and_a_stalled_database_only_delays() {
    let Some((pg, dir, db, url)) = pg_fixture("stall") else {
        return;
    };
    let input = dir.join("kern.log");
    std::fs::write(&input, "").unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.f]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}\"\npoll_interval = \"50ms\"\n\
             [sinks.pg]\ntype = \"postgres\"\ninputs = [\"f\"]\nurl = \"{url}\"\nspool.dir = \"{}\"\n",
            input.display(),
            dir.join("pos").display(),
            dir.join("spool").display()
        ),
    )
    .unwrap();
    let d = lab::start_nflogd(None, &cfg, &dir.join("log"));
    // The user's own rule on the table: no packets to port 9.
    pg.psql(
        &db,
        "ALTER TABLE packets ADD CONSTRAINT no_discard CHECK (dst_port <> 9)",
    );
    let line = |port: u16, id: u32| {
        format!("IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID={id} PROTO=TCP SPT=1000 DPT={port} WINDOW=0 RES=0x00 SYN URGP=0 \n")
    };
    let append = |text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    let batch: String = (0..20)
        .map(|i| line(if i == 7 { 9 } else { 22 }, i))
        .collect();
    append(&batch);
    wait_until(10, "the 19 acceptable rows", || {
        pg.psql(&db, "SELECT count(*) FROM packets").trim() == "19"
    });
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM packets WHERE dst_port = 9")
            .trim(),
        "0"
    );
    // A stalled database: the table locked for 3 s while 50 more lines arrive.
    let locker = {
        let port = pg.port;
        let locked_db = db.clone();
        std::thread::spawn(move || {
            Command::new("psql")
                .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(["-d", &locked_db])
                .args(["-c", "BEGIN; LOCK TABLE packets IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let more: String = (100..150).map(|i| line(22, i)).collect();
    append(&more);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").trim(),
        "1",
        "nflogd's COPY waits on the lock"
    );
    assert!(locker.join().unwrap().status.success());
    wait_until(10, "the rows written once the lock is gone", || {
        pg.psql(&db, "SELECT count(*) FROM packets").trim() == "69"
    });
    let log = d.stop();
    assert_eq!(
        lab::stat(&log, "sink.pg", "dropped"),
        1,
        "the refused row: {log}"
    );
    assert!(log.contains("row refused"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_retention_drops_old_days() {
    let Some((pg, dir, db, url)) = pg_fixture("retention") else {
        return;
    };
    let at = |ago: chrono::Duration| {
        (chrono::Utc::now() - ago)
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    };
    let line = |when: &str| {
        format!("{when} fw kernel: [1.0] DROP IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=22 WINDOW=0 RES=0x00 SYN URGP=0 \n")
    };
    // Rows of now, of three days ago (a partition of their own) and of a year ago (outside the
    // days that get partitions: the default partition).
    let input: String = [
        at(chrono::Duration::zero()),
        at(chrono::Duration::days(3)),
        at(chrono::Duration::days(365)),
    ]
    .iter()
    .map(|w| line(w))
    .collect();
    let run = |input: &str, retention: &str| {
        let (ok, log) = nflogd_stdin(
            &dir,
            &format!(
                "[sinks.pg]\ntype = \"postgres\"\ninputs = [\"in\"]\nurl = \"{url}\"\nretention = \"{retention}\"\nspool.dir = \"{}\"\n",
                dir.join("spool").display()
            ),
            input.as_bytes(),
        );
        assert!(ok, "{log}");
        log
    };
    run(&input, "0s");
    let per_partition = "SELECT tableoid::regclass::text FROM packets ORDER BY time";
    let parts = pg.psql(&db, per_partition);
    let parts: Vec<&str> = parts.lines().collect();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(parts[0], "packets_default", "a year ago: {parts:?}");
    assert!(
        parts[1].starts_with("packets_p") && parts[2].starts_with("packets_p"),
        "{parts:?}"
    );
    let old_partition = parts[1].to_string();
    // Kept two days: the next start drops the three-day-old partition and deletes the old row.
    let log = run("", "2d");
    assert!(
        log.contains(&format!("retention dropped partition {old_partition}")),
        "{log}"
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM packets").trim(), "1");
    assert_eq!(
        pg.psql(
            &db,
            &format!("SELECT to_regclass('{old_partition}') IS NULL")
        )
        .trim(),
        "t"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` kernel LOG lines in kern.log form with a firewall's diversity: addresses, ports,
/// interfaces and prefixes vary from line to line (a fixed generator, so runs are alike).
fn diverse_kernel_lines(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut out = String::with_capacity(n * 200);
    for i in 0..n {
        let s = i / 1000;
        let (proto, l4) = match next(3) {
            0 => (
                "TCP",
                format!(
                    "SPT={} DPT={} WINDOW={} RES=0x00 SYN URGP=0 ",
                    1024 + next(64000),
                    1 + next(65000),
                    next(65535)
                ),
            ),
            1 => (
                "UDP",
                format!(
                    "SPT={} DPT={} LEN={} ",
                    1024 + next(64000),
                    1 + next(65000),
                    8 + next(1000)
                ),
            ),
            _ => (
                "ICMP",
                format!("TYPE=8 CODE=0 ID={} SEQ={} ", next(65535), next(65535)),
            ),
        };
        out.push_str(&format!(
            "Nov 23 {:02}:{:02}:{:02} fw{} kernel: [{}.{:06}] rule{:02}: IN=eth{} OUT= MAC=52:54:00:{:02x}:{:02x}:{:02x}:52:54:00:00:00:01:08:00 SRC={}.{}.{}.{} DST=10.0.{}.{} LEN={} TOS=0x00 PREC=0x00 TTL={} ID={} DF PROTO={proto} {l4}\n",
            s / 3600 % 24,
            s / 60 % 60,
            s % 60,
            next(8),
            1000 + s,
            i % 1_000_000,
            next(40),
            next(16),
            next(256),
            next(256),
            next(256),
            1 + next(223),
            next(256),
            next(256),
            1 + next(254),
            next(256),
            1 + next(254),
            28 + next(1400),
            1 + next(255),
            next(65535),
        ));
    }
    out
}

/// A log read from its beginning waits for the store instead of dropping what its queue
/// cannot hold: with a queue of 2 000 events, 200 000 lines all reach SQLite. The position it
/// saved is the end of what was stored, so a restart stores nothing twice, and lines appended
/// while it was down are stored once.
#[test]
fn a_whole_log_file_reaches_sqlite_and_a_restart_resumes_after_it() {
    let dir = std::env::temp_dir().join(format!("nflogd-store-file-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, db, pos) = (
        dir.join("kern.log"),
        dir.join("store.db"),
        dir.join("kern.position"),
    );
    const N: usize = 200_000;
    let text = diverse_kernel_lines(N + 1_000);
    let cut = text.match_indices('\n').nth(N - 1).unwrap().0 + 1;
    std::fs::write(&log, &text[..cut]).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "stats_interval = \"0s\"\n[sources.k]\ntype = \"file\"\npath = \"{}\"\nstart = \"beginning\"\nstate_file = \"{}\"\npoll_interval = \"50ms\"\n\
             [sinks.lite]\ntype = \"sqlite\"\ninputs = [\"k\"]\npath = \"{}\"\nqueue_max_events = 2000\n",
            log.display(),
            pos.display(),
            db.display()
        ),
    )
    .unwrap();
    let count = || sqlite_count(&db, "SELECT count(*) FROM packets");
    let d = lab::start_nflogd(None, &cfg, &dir.join("nflogd.log"));
    wait_until(180, "every line in SQLite", || count() >= N as u64);
    let out = d.stop();
    assert_eq!(count(), N as u64, "{out}");
    assert_eq!(lab::stat(&out, "sink.lite", "dropped"), 0, "{out}");
    assert!(out.contains("sink.lite: received=200000"), "{out}");
    let saved = std::fs::read_to_string(&pos).unwrap();
    assert_eq!(
        saved.split_whitespace().nth(2),
        Some(cut.to_string().as_str()),
        "the position is the end of the file"
    );
    // Lines appended while nflogd was down: stored once, after the others.
    std::fs::write(&log, &text).unwrap();
    let d = lab::start_nflogd(None, &cfg, &dir.join("nflogd.log"));
    wait_until(60, "the appended lines", || count() >= N as u64 + 1_000);
    d.stop();
    assert_eq!(count(), N as u64 + 1_000);
    let distinct = sqlite_count(
        &db,
        "SELECT count(*) FROM (SELECT DISTINCT time, host, src_ip, dst_ip, src_port, dst_port, length, ttl FROM packets)",
    );
    assert_eq!(distinct, N as u64 + 1_000, "no line stored twice");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What nflogd creates is not world-readable (files 0640 under the default umask), and a
/// symbolic link planted at a log path is refused, not written through.
#[test]
fn files_are_created_0640_and_links_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("nflogd-store-modes-{}", lab::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let (events, db) = (dir.join("events.json"), dir.join("store.db"));
    let line = "Nov 23 10:00:00 fw kernel: [1.0] DROP IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.9.9.9 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1000 DPT=22 WINDOW=0 RES=0x00 SYN URGP=0 \n";
    let sinks = format!(
        "[sinks.e]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\n\
         [sinks.lite]\ntype = \"sqlite\"\ninputs = [\"in\"]\npath = \"{}\"\n",
        events.display(),
        db.display()
    );
    let (ok, log) = nflogd_stdin(&dir, &sinks, line.as_bytes());
    assert!(ok, "{log}");
    for f in [&events, &db] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", f.display());
    }
    // A link at the log path: the start fails and names the path; the target is untouched.
    let target = dir.join("precious");
    std::fs::write(&target, b"keep\n").unwrap();
    std::fs::remove_file(&events).unwrap();
    std::os::unix::fs::symlink(&target, &events).unwrap();
    let (ok, log) = nflogd_stdin(&dir, &sinks, line.as_bytes());
    assert!(!ok, "{log}");
    assert!(log.contains(&events.display().to_string()), "{log}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedded default's shape (NFLOG → ECS file and SQLite, default queues) under a flood of
/// several seconds: SQLite stores every packet nflogd received, as the file does; what the
/// store could not take at once waited in its spool, nothing was dropped.
#[test]
fn the_default_shape_stores_every_packet_of_a_flood() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    lab.nft(
        &lab.b,
        r#"table inet lab {
  chain in {
    type filter hook input priority 0;
    udp dport 7100 counter log group 9 prefix "FLOOD "
  }
}"#,
    );
    let (ecs, db) = (lab.path("events.json"), lab.path("nflogd.db"));
    let d = lab.nflogd(
        &lab.b,
        &format!(
            "stats_interval = \"0s\"\n[sources.nflog]\ntype = \"nflog\"\ngroups = [9]\n\
             [sinks.events]\ntype = \"file\"\ninputs = [\"nflog\"]\npath = \"{}\"\nschema = \"ecs\"\n\
             [sinks.store]\ntype = \"sqlite\"\ninputs = [\"nflog\"]\npath = \"{}\"\nspool.dir = \"{}\"\n",
            ecs.display(),
            db.display(),
            lab.path("spool").display()
        ),
    );
    // 400 000 datagrams at about 130 000 a second.
    const N: u64 = 400_000;
    let dst = format!("{}:7100", lab::B4);
    lab::in_netns(&lab.a, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let start = std::time::Instant::now();
        for i in 0..N {
            let _ = s.send_to(&(i as u32).to_be_bytes(), &dst);
            if i % 1000 == 999 {
                let due = Duration::from_micros(i * 1_000_000 / 130_000);
                std::thread::sleep(due.saturating_sub(start.elapsed()));
            }
        }
    });
    let lines = || {
        std::fs::read(&ecs)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .unwrap_or(0)
    };
    let mut last = (u64::MAX, u64::MAX);
    wait_until(180, "the store to catch up", || {
        std::thread::sleep(Duration::from_millis(1000));
        let now = (lines(), sqlite_count(&db, "SELECT count(*) FROM packets"));
        let settled = now == last && now.0 == now.1;
        last = now;
        settled
    });
    let log = d.stop();
    let received = lab::stat(&log, "source.nflog", "received");
    assert!(received > N / 4, "{log}");
    assert_eq!(lines(), received, "{log}");
    assert_eq!(
        sqlite_count(&db, "SELECT count(*) FROM packets"),
        received,
        "{log}"
    );
    assert_eq!(lab::stat(&log, "sink.store", "dropped"), 0, "{log}");
    assert_eq!(lab::stat(&log, "sink.events", "dropped"), 0, "{log}");
    assert_eq!(
        received + lab::stat(&log, "source.nflog", "kernel_lost"),
        lab::nft_counter(&lab.b),
        "every packet the rule logged was received or counted lost: {log}"
    );
}

/// PostgreSQL is reached over TLS unless the URL says `sslmode=disable`, and the server must
/// prove who it is: `sslmode=prefer` (libpq's default) no longer falls back to plaintext or
/// accepts any certificate, and `nflogd query --config` uses the sink's CA file.
#[test]
fn postgres_tls_is_verified_and_never_silently_dropped() {
    let Some((pg, dir, _db, url)) = pg_fixture("tlsq") else {
        return;
    };
    let query = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nflogd"))
            .arg("query")
            .args(args)
            .arg("--json")
            .output()
            .unwrap()
    };
    let prefer = url.replace("sslmode=disable", "sslmode=prefer");
    // No CA file: the lab's server certificate is not signed by a system CA, so no connection.
    let out = query(&["--db", &prefer]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "connected without checking the server"
    );
    assert!(
        err.contains("certificate") || err.contains("Unknown"),
        "{err}"
    );
    // The sink's CA file, through --config: the same URL connects.
    let cfg = dir.join("q.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sources.s]\ntype = \"stdin\"\n[sinks.pg]\ntype = \"postgres\"\ninputs = [\"s\"]\nurl = \"{prefer}\"\nca_file = \"{}\"\n",
            pg.ca_file().display()
        ),
    )
    .unwrap();
    // The database is empty but has no tables yet: any answer other than a TLS error will do.
    let out = query(&["--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("certificate") && !err.contains("TLS"),
        "{err}"
    );
    // Plaintext when the URL says so.
    let out = query(&["--db", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("certificate") && !err.contains("TLS"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
