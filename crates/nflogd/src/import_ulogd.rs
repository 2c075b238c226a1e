//! `nflogd import-ulogd FILE`: a ulogd.conf's active stacks as an nflogd configuration. Each
//! stack's input becomes a source (named after its instance), each output a sink fed by it;
//! the options carry over with their meaning. What has no counterpart here is named in a
//! comment at its place and in a warning on standard error, never dropped silently.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A ulogd.conf: the `stack=` lines of `[global]` and every section's options.
#[derive(Default)]
struct Conf {
    stacks: Vec<String>,
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// ulogd's config syntax: `[section]`, `key=value` with an optional `"…"`, `#` comments (also
/// after a value, as Debian's file has them).
fn parse(text: &str) -> Conf {
    let mut conf = Conf::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            conf.sections.entry(section.clone()).or_default();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(v) => v.split('"').next().unwrap_or("").to_string(),
            None => value.split('#').next().unwrap_or("").trim().to_string(),
        };
        let key = key.trim().to_string();
        if section == "global" && key == "stack" {
            conf.stacks.push(value);
        } else {
            conf.sections
                .entry(section.clone())
                .or_default()
                .insert(key, value);
        }
    }
    conf
}

/// TOML text for a string.
fn s(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

/// What was made of the stacks.
struct Import<'a> {
    conf: &'a Conf,
    out: String,
    warnings: Vec<String>,
    /// Sink name → (its TOML without `inputs`, its inputs).
    sinks: BTreeMap<String, (String, Vec<String>)>,
    sources: BTreeMap<String, String>,
}

impl<'a> Import<'a> {
    fn opt(&self, section: &str, key: &str) -> Option<&'a str> {
        self.conf
            .sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(String::as_str)
    }

    fn num(&self, section: &str, key: &str) -> Option<u64> {
        self.opt(section, key).and_then(|v| {
            v.strip_prefix("0x")
                .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
    }

    /// ulogd2's netlink buffer options, which nflogd's sources share.
    fn buffers(&self, id: &str, t: &mut String) {
        for (key, ours) in [
            ("netlink_socket_buffer_size", "socket_buffer"),
            ("netlink_socket_buffer_maxsize", "socket_buffer_max"),
        ] {
            if let Some(b) = self.num(id, key).filter(|&b| b > 0) {
                let _ = writeln!(t, "{ours} = {b}");
            }
        }
    }

    fn netns(&self, id: &str, t: &mut String) {
        if let Some(ns) = self
            .opt(id, "network_namespace_path")
            .filter(|n| !n.is_empty())
        {
            let _ = writeln!(t, "netns = {}", s(ns));
        }
    }

    fn warn(&mut self, at: &str, what: String) {
        self.warnings.push(format!("{at}: {what}"));
    }

    /// Options of `section` this import does not read, named so none goes unmentioned.
    fn unread(&mut self, section: &str, read: &[&str]) -> String {
        let mut text = String::new();
        let keys: Vec<(String, String)> = self
            .conf
            .sections
            .get(section)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !read.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in keys {
            let _ = writeln!(text, "# not carried over: {k}={v}");
            self.warn(section, format!("option `{k}` is not carried over"));
        }
        text
    }

    fn source(&mut self, id: &str, plugin: &str) -> Result<(), String> {
        if self.sources.contains_key(id) {
            return Ok(());
        }
        let mut t = format!("[sources.{id}]\n");
        match plugin {
            "NFLOG" => {
                let group = self.num(id, "group").unwrap_or(0);
                let _ = writeln!(t, "type = \"nflog\"\ngroups = [{group}]");
                if group == 0 || self.num(id, "bind") == Some(1) {
                    t.push_str("# ulogd2 binds group 0 as the kernel's own log backend (PF_BIND); nflogd reads\n# it as a plain group: rules must log to it by number.\n");
                    self.warn(id, "group 0 is read as a plain NFLOG group; nflogd does not become the kernel's log backend (bind/unbind)".into());
                }
                if let Some(l) = self.num(id, "numeric_label") {
                    let _ = writeln!(t, "numeric_label = {l}");
                }
                if let Some(q) = self.num(id, "netlink_qthreshold").filter(|&q| q > 0) {
                    let _ = writeln!(t, "qthreshold = {q}");
                }
                if let Some(q) = self.num(id, "netlink_qtimeout").filter(|&q| q > 0) {
                    let _ = writeln!(t, "qtimeout = \"{}ms\"", q * 10);
                }
                self.buffers(id, &mut t);
                let seq =
                    self.num(id, "seq_local") == Some(1) || self.num(id, "seq_global") == Some(1);
                let _ = writeln!(t, "sequence = {seq}");
                if self.num(id, "attach_conntrack") == Some(1) {
                    t.push_str("conntrack = true\n");
                }
                self.netns(id, &mut t);
                // `bufsize` is ulogd2's receive buffer per read: nflogd sizes its own.
                t += &self.unread(
                    id,
                    &[
                        "group",
                        "numeric_label",
                        "netlink_qthreshold",
                        "netlink_qtimeout",
                        "netlink_socket_buffer_size",
                        "netlink_socket_buffer_maxsize",
                        "seq_local",
                        "seq_global",
                        "attach_conntrack",
                        "network_namespace_path",
                        "bind",
                        "unbind",
                        "bufsize",
                    ],
                );
            }
            "NFCT" => {
                t.push_str("type = \"conntrack\"\n");
                // NFCT_T_NEW 1, NFCT_T_UPDATE 2, NFCT_T_DESTROY 4; ulogd2's default 5.
                let mask = self.num(id, "event_mask").unwrap_or(5);
                let events: Vec<&str> = [(1, "new"), (2, "update"), (4, "destroy")]
                    .iter()
                    .filter(|(b, _)| mask & b != 0)
                    .map(|(_, n)| *n)
                    .collect();
                let _ = writeln!(t, "events = {events:?}");
                if self.num(id, "hash_enable") == Some(0) {
                    t.push_str("table_size = 0\n");
                } else if let Some(n) = self.num(id, "hash_max_entries") {
                    let _ = writeln!(t, "table_size = {n}");
                }
                if let Some(p) = self.num(id, "pollinterval").filter(|&p| p > 0) {
                    let _ = writeln!(t, "poll_interval = \"{p}s\"");
                }
                self.buffers(id, &mut t);
                for (key, ours) in [
                    ("accept_src_filter", "accept_src"),
                    ("accept_dst_filter", "accept_dst"),
                ] {
                    if let Some(v) = self.opt(id, key).filter(|v| !v.is_empty()) {
                        let nets: Vec<String> =
                            v.split(',').map(|n| n.trim().to_string()).collect();
                        let _ = writeln!(t, "{ours} = {nets:?}");
                    }
                }
                if let Some(v) = self
                    .opt(id, "accept_proto_filter")
                    .filter(|v| !v.is_empty())
                {
                    let protos: Vec<String> = v.split(',').map(|n| n.trim().to_string()).collect();
                    let _ = writeln!(t, "accept_protocols = {protos:?}");
                }
                self.netns(id, &mut t);
                // Buckets and resync timing are ulogd2's own table's; reliable delivery is
                // nflogd's way anyway (overruns are recovered by a dump).
                t += &self.unread(
                    id,
                    &[
                        "event_mask",
                        "hash_enable",
                        "hash_max_entries",
                        "pollinterval",
                        "netlink_socket_buffer_size",
                        "netlink_socket_buffer_maxsize",
                        "accept_src_filter",
                        "accept_dst_filter",
                        "accept_proto_filter",
                        "network_namespace_path",
                        "hash_buckets",
                        "netlink_resync_timeout",
                        "reliable",
                    ],
                );
            }
            "NFACCT" => {
                t.push_str("type = \"nfacct\"\n");
                if let Some(p) = self.num(id, "pollinterval").filter(|&p| p > 0) {
                    let _ = writeln!(t, "interval = \"{p}s\"");
                }
                if let Some(z) = self.num(id, "zerocounter") {
                    let _ = writeln!(t, "zero = {}", z != 0);
                }
                self.netns(id, &mut t);
                t += &self.unread(
                    id,
                    &[
                        "pollinterval",
                        "zerocounter",
                        "network_namespace_path",
                        "timestamp",
                    ],
                );
            }
            other => return Err(format!("input plugin {other} has no counterpart in nflogd")),
        }
        self.sources.insert(id.to_string(), t);
        Ok(())
    }

    /// The sink for output instance `id`, without its `inputs`.
    fn sink(&mut self, id: &str, plugin: &str, filters: &[&str]) -> Result<String, String> {
        let flush = self.num(id, "sync") == Some(1);
        let mut t = String::new();
        match plugin {
            "LOGEMU" => {
                let path = self.opt(id, "file").unwrap_or("/var/log/ulogd_syslogemu.log");
                let _ = writeln!(t, "type = \"file\"\npath = {}\nschema = \"logemu\"\nflush = {flush}", s(path));
                t += &self.unread(id, &["file", "sync"]);
            }
            "JSON" => {
                let mode = self.opt(id, "mode").unwrap_or("file");
                let host = self.opt(id, "host").unwrap_or("127.0.0.1");
                let port = self.opt(id, "port").unwrap_or("12345");
                let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
                // In unix mode ulogd2 takes the socket's path from `file`.
                let path = match mode {
                    "tcp" => format!("tcp://{host}:{port}"),
                    "udp" => format!("udp://{host}:{port}"),
                    "unix" => format!("unix:{}", self.opt(id, "file").unwrap_or("")),
                    "file" => self.opt(id, "file").unwrap_or("/var/log/ulogd.json").to_string(),
                    other => return Err(format!("JSON mode `{other}` is none of file, tcp, udp, unix")),
                };
                let _ = writeln!(t, "type = \"file\"\npath = {}\nschema = \"ulogd\"\nflush = {flush}", s(&path));
                if let Some(d) = self.opt(id, "device") {
                    let _ = writeln!(t, "device = {}", s(d));
                }
                if self.num(id, "boolean_label") == Some(1) {
                    t.push_str("boolean_label = true\n");
                }
                if self.num(id, "eventv1") == Some(1) {
                    t.push_str("# not carried over: eventv1=1 (Logstash's v1 event layout)\n");
                    self.warn(id, "eventv1 (Logstash's v1 layout) is not carried over; records keep ulogd2's default keys".into());
                }
                if self.num(id, "timestamp") == Some(0) {
                    t.push_str("# note: timestamp=0 in ulogd2; nflogd always writes `timestamp`\n");
                    self.warn(id, "timestamp=0: nflogd's records always carry `timestamp`".into());
                }
                if !filters.contains(&"HWHDR") {
                    t.push_str("# note: without HWHDR ulogd2 writes no mac.* keys; nflogd writes them when known\n");
                }
                t += &self.unread(
                    id,
                    &["file", "sync", "device", "boolean_label", "eventv1", "timestamp", "mode", "host", "port"],
                );
            }
            "PCAP" => {
                let path = self.opt(id, "file").unwrap_or("/var/log/ulogd.pcap");
                let _ = writeln!(t, "type = \"pcap\"\npath = {}\nlinktype = \"raw\"\nflush = {flush}", s(path));
                t += &self.unread(id, &["file", "sync"]);
            }
            "PGSQL" => {
                let url = match self.opt(id, "connstring").filter(|c| !c.is_empty()) {
                    Some(c) => c.to_string(),
                    None => {
                        let mut parts = Vec::new();
                        for (k, ours) in [("host", "host"), ("port", "port"), ("db", "dbname"), ("user", "user"), ("pass", "password")] {
                            if let Some(v) = self.opt(id, k).filter(|v| !v.is_empty() && *v != "0") {
                                parts.push(format!("{ours}={v}"));
                            }
                        }
                        parts.join(" ")
                    }
                };
                let _ = writeln!(t, "type = \"postgres\"\nurl = {}\ntables = \"ulogd\"", s(&url));
                let procedure = self.opt(id, "procedure").unwrap_or("");
                if !matches!(procedure, "INSERT_PACKET_FULL" | "INSERT_CT" | "INSERT_NFACCT") {
                    let _ = writeln!(t, "# note: procedure {procedure} — nflogd writes ulogd2's tables as INSERT_PACKET_FULL, INSERT_CT (a row per event) and INSERT_NFACCT do");
                    self.warn(id, format!("procedure {procedure} is not called; rows are written as INSERT_PACKET_FULL/INSERT_CT/INSERT_NFACCT write them"));
                }
                if self.opt(id, "schema").is_some_and(|s| s != "public") {
                    t.push_str("# not carried over: schema (nflogd uses the connection's search_path)\n");
                    self.warn(id, "schema other than public is not carried over".into());
                }
                t += &self.unread(
                    id,
                    &["connstring", "host", "port", "db", "user", "pass", "procedure", "schema", "table", "reconnect", "connect_timeout", "backlog_memcap", "backlog_oneshot_requests", "ring_buffer_size"],
                );
            }
            "SQLITE3" => {
                let db = self.opt(id, "db").unwrap_or("/var/log/ulog/ulogd.sqlite3db");
                let ours = format!("{}.nflogd.db", db.trim_end_matches(".sqlite3db").trim_end_matches(".db"));
                let table = self.opt(id, "table").unwrap_or("");
                let _ = writeln!(t, "type = \"sqlite\"\npath = {}", s(&ours));
                let _ = writeln!(t, "# note: nflogd's own tables in a file of its own, not ulogd2's table `{table}` in {db}\n# (whose columns were yours to choose); `nflogd query` reads them");
                self.warn(id, format!("SQLITE3 table `{table}` becomes nflogd's own store in {ours}"));
                t += &self.unread(id, &["db", "table"]);
            }
            "SYSLOG" => {
                let facility = self
                    .opt(id, "facility")
                    .unwrap_or("LOG_KERN")
                    .trim_start_matches("LOG_")
                    .to_ascii_lowercase();
                let level = self
                    .opt(id, "level")
                    .unwrap_or("LOG_NOTICE")
                    .trim_start_matches("LOG_")
                    .to_ascii_lowercase();
                let severity = match level.as_str() {
                    "emerg" => "emergency",
                    "crit" => "critical",
                    "err" => "error",
                    "warn" => "warning",
                    l => l,
                };
                let _ = writeln!(
                    t,
                    "type = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransport = \"udp\"\nformat = \"rfc3164\"\nschema = \"logemu\"\napp_name = \"ulogd\"\nfacility = {}\nseverity = {}",
                    s(&facility),
                    s(severity)
                );
                t.push_str("# note: ulogd2 calls syslog(3); nflogd sends to the local syslog daemon's UDP\n# input, which must listen on 127.0.0.1:514 (rsyslog: module(load=\"imudp\"))\n");
                self.warn(id, "SYSLOG goes to 127.0.0.1:514 over UDP: the local syslog daemon must listen there".into());
                t += &self.unread(id, &["facility", "level"]);
            }
            other => {
                return Err(format!(
                    "output plugin {other} has no counterpart in nflogd (JSON, LOGEMU, PCAP, PGSQL, SQLITE3 and SYSLOG do)"
                ))
            }
        }
        Ok(t)
    }

    fn stack(&mut self, line: &str) {
        let parts: Vec<(&str, &str)> = line
            .split(',')
            .filter_map(|p| p.trim().split_once(':'))
            .collect();
        let (Some(&(input_id, input)), Some(&(output_id, output))) = (parts.first(), parts.last())
        else {
            self.warn("stack", format!("`{line}` is not a stack; skipped"));
            return;
        };
        let filters: Vec<&str> = parts[1..parts.len() - 1].iter().map(|(_, p)| *p).collect();
        let comment = |text: String| text.lines().map(|l| format!("# {l}\n")).collect::<String>();
        if let Err(why) = self.source(input_id, input) {
            self.out += &comment(format!("stack={line}\n  not carried over: {why}"));
            self.out.push('\n');
            self.warn(input_id, why);
            return;
        }
        for (id, f) in parts[1..parts.len() - 1].iter() {
            match *f {
                "MARK" => {
                    let mark = self.opt(id, "mark").unwrap_or("0");
                    let mask = self.opt(id, "mask").unwrap_or("0xffffffff");
                    self.out += &comment(format!(
                        "stack={line}\n  not carried over: MARK filter {id} (mark={mark} mask={mask}); this stack's sink takes every packet"
                    ));
                    self.warn(
                        id,
                        "the MARK filter is not carried over: the sink takes every packet".into(),
                    );
                }
                "PWSNIFF" => {
                    self.warn(
                        id,
                        "PWSNIFF is not carried over (it stops every stack it is in)".into(),
                    );
                }
                _ => {}
            }
        }
        match self.sink(output_id, output, &filters) {
            Ok(t) => {
                let entry = self
                    .sinks
                    .entry(output_id.to_string())
                    .or_insert_with(|| (t, Vec::new()));
                if !entry.1.iter().any(|i| i == input_id) {
                    entry.1.push(input_id.to_string());
                }
            }
            Err(why) => {
                self.out += &comment(format!("stack={line}\n  not carried over: {why}"));
                self.out.push('\n');
                self.warn(output_id, why);
            }
        }
    }
}

/// The nflogd configuration for `text` (a ulogd.conf), and the warnings.
pub fn import(text: &str, from: &str) -> (String, Vec<String>) {
    let conf = parse(text);
    let mut im = Import {
        conf: &conf,
        out: String::new(),
        warnings: Vec::new(),
        sinks: BTreeMap::new(),
        sources: BTreeMap::new(),
    };
    for line in &conf.stacks {
        im.stack(line);
    }
    if conf.stacks.is_empty() {
        im.warn(
            "global",
            "no active `stack=` line: nothing to import".into(),
        );
    }
    let mut out = format!(
        "# Imported from {from} by `nflogd import-ulogd`: its active stacks, each input a\n# source and each output a sink. Check it with `nflogd check`.\n\n"
    );
    out += &im.out;
    for t in im.sources.values() {
        out += t;
        out.push('\n');
    }
    for (name, (t, inputs)) in &im.sinks {
        let _ = writeln!(out, "[sinks.{name}]\ninputs = {inputs:?}");
        out += t;
        out.push('\n');
    }
    (out, im.warnings)
}

/// The command: prints the configuration, warns on standard error.
pub fn run(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (toml, warnings) = import(&text, &path.display().to_string());
    print!("{toml}");
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"
[global]
logfile="syslog"
loglevel=3
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
stack=log2:NFLOG,base1:BASE,pcap1:PCAP
stack=log3:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON
stack=ct1:NFCT,ip2str1:IP2STR,pgsql2:PGSQL
stack=ct1:NFCT,xml1:XML
stack=log2:NFLOG,base1:BASE,mark1:MARK,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
[log1]
group=0
[log2]
group=1 # Group has to be different from the one use in log1
netlink_qtimeout=5
[log3]
group=2
numeric_label=1 # you can label the log info based on the packet verdict
[ct2]
hash_enable=0
[emu1]
file="/var/log/ulog/syslogemu.log"
sync=1
[json1]
sync=1
boolean_label=1
[pgsql2]
db="nulog"
host="localhost"
user="nupik"
table="ulog2_ct"
pass="changeme"
procedure="INSERT_CT"
[mark1]
mark = 1
"#;

    #[test]
    fn debians_stacks_become_sources_and_sinks() {
        let (toml, warnings) = import(DEBIAN, "ulogd.conf");
        let cfg: crate::config::Config =
            toml::from_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(cfg.sources.len(), 4, "{toml}");
        assert!(
            toml.contains("[sources.log2]\ntype = \"nflog\"\ngroups = [1]\nqtimeout = \"50ms\""),
            "{toml}"
        );
        assert!(toml.contains("numeric_label = 1"), "{toml}");
        // LOGEMU fed by two stacks is one sink with both inputs.
        assert!(toml.contains("[sinks.emu1]\ninputs = [\"log1\", \"log2\"]\ntype = \"file\"\npath = \"/var/log/ulog/syslogemu.log\"\nschema = \"logemu\"\nflush = true"), "{toml}");
        assert!(toml.contains("linktype = \"raw\""), "{toml}");
        assert!(toml.contains("boolean_label = true"), "{toml}");
        let (socket, _) = import(
            "[global]\nstack=log1:NFLOG,j:JSON\n[log1]\ngroup=3\n[j]\nmode=\"udp\"\nhost=\"192.0.2.9\"\nport=\"5140\"\n",
            "x",
        );
        assert!(
            socket.contains("path = \"udp://192.0.2.9:5140\""),
            "{socket}"
        );
        assert!(toml.contains("url = \"host=localhost dbname=nulog user=nupik password=changeme\"\ntables = \"ulogd\""), "{toml}");
        // What has no counterpart is named, in the file and as a warning.
        assert!(toml.contains("# stack=ct1:NFCT,xml1:XML"), "{toml}");
        for w in ["XML", "MARK filter", "group 0"] {
            assert!(warnings.iter().any(|x| x.contains(w)), "{w}: {warnings:?}");
        }
    }

    #[test]
    fn unknown_options_are_named_not_dropped() {
        let (toml, warnings) = import(
            "[global]\nstack=log1:NFLOG,emu1:LOGEMU\n[log1]\ngroup=5\nfrobnicate=3\nnetlink_socket_buffer_size=8388608\nnetwork_namespace_path=\"/run/netns/fw\"\n",
            "x",
        );
        assert!(toml.contains("# not carried over: frobnicate=3"), "{toml}");
        assert!(toml.contains("socket_buffer = 8388608\n"), "{toml}");
        assert!(toml.contains("netns = \"/run/netns/fw\""), "{toml}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("frobnicate")));
    }
}
