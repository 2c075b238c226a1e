//! The kernel lab: network namespaces joined by veth, real nftables rules, real packets, and
//! nflogd (or a peer) running inside. Everything a test creates is removed when it drops.
//!
//! Tests need root, `nft` and `ip`. Outside CI they skip with a message; under CI=true a missing
//! prerequisite fails the test.

#![allow(dead_code)]

pub mod clickhouse;
pub mod ecs;
pub mod nat;
pub mod pg;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const A4: &str = "10.200.0.1";
pub const B4: &str = "10.200.0.2";
pub const A6: &str = "fd00:200::1";
pub const B6: &str = "fd00:200::2";

/// Where scripts/deps installs the Python packages the tests' scripts use that Debian does not
/// package (the Community ID reference implementation, an MMDB writer).
pub const PYTHON_LIBS: &str = "/var/tmp/nflogd-py";

/// Whether this runs under CI (any value of `CI`), where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A test that cannot run here says why: under CI it fails; elsewhere the reason is printed
/// and added to the list of skips that `scripts/test` shows at the end (a skipped test would
/// otherwise show as `ok`).
pub fn skip(why: &str) {
    if under_ci() {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let list = std::env::temp_dir().join("nflogd-test-skips.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
    {
        use std::io::Write;
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// Debian's multiarch directory of this machine (`x86_64-linux-gnu`, `aarch64-linux-gnu`, …),
/// where plugins (ulogd2's, rsyslog's) are installed.
pub fn multiarch() -> String {
    Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-linux-gnu", std::env::consts::ARCH))
}

/// Whether the lab can run here; under CI it must.
pub fn available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["nft", "ip"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if root && tools {
        return true;
    }
    let why = if !root {
        "not running as root"
    } else {
        "`nft` or `ip` missing"
    };
    skip(&format!("kernel-lab test needs root, nft and ip ({why})"));
    false
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    if !out.status.success() {
        panic!(
            "`{cmd}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// In `dir`: a CA (ca.pem), a server certificate for localhost and 127.0.0.1 signed by it
/// (srv.pem, srv.key) and a client certificate (cli.pem, cli.key).
pub fn certificates(dir: &Path) {
    sh(&format!(
        "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=lab-ca -days 1 -keyout ca.key -out ca.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out srv.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj /CN=fw-client -keyout cli.key -out cli.csr 2>/dev/null && \
         printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > cext && \
         openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile cext -out cli.pem 2>/dev/null",
        dir.display()
    ));
}

/// While held, LOG lines from the lab's namespaces reach the kernel log
/// (`net.netfilter.nf_log_all_netns=1`). The first holder sets it, the last one to drop puts
/// back what it was, so tests running side by side do not undo each other.
pub struct KernelLogFromNetns;

static NETNS_LOG: std::sync::Mutex<(u32, String)> = std::sync::Mutex::new((0, String::new()));

pub fn kernel_log_from_netns() -> KernelLogFromNetns {
    let mut g = NETNS_LOG.lock().unwrap_or_else(|e| e.into_inner());
    if g.0 == 0 {
        g.1 = sh("sysctl -n net.netfilter.nf_log_all_netns")
            .trim()
            .to_string();
        sh("sysctl -qw net.netfilter.nf_log_all_netns=1");
    }
    g.0 += 1;
    KernelLogFromNetns
}

impl Drop for KernelLogFromNetns {
    fn drop(&mut self) {
        let mut g = NETNS_LOG.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            let _ = Command::new("sysctl")
                .args(["-qw", &format!("net.netfilter.nf_log_all_netns={}", g.1)])
                .status();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for names, prefixes and files of one test: this process's PID and a
/// counter, so no two live test processes share one, and what a killed one left behind says
/// whose it was (see `sweep_leftovers`).
pub fn tag() -> String {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(sweep_leftovers);
    format!(
        "{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The PID in a name made from `tag()` after `prefix`, if that process is gone.
fn dead_owner(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let Some((pid, _)) = rest.split_once('x') else {
        return false;
    };
    pid.parse::<u32>()
        .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// A test process that was killed never ran its drops: its namespaces, database servers and
/// files stay. The next test process removes those whose owner is gone.
fn sweep_leftovers() {
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for ns in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| dead_owner(ns, "nfl"))
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kind) = name.strip_prefix("nflogd-") else {
            continue;
        };
        let Some((_, owner)) = kind.rsplit_once('-') else {
            continue;
        };
        if !dead_owner(owner, "") {
            continue;
        }
        let dir = e.path();
        // A server it started: PostgreSQL's postmaster.pid, ClickHouse's server.pid. Ended
        // only if that PID still runs a command naming this directory.
        for pid_file in [dir.join("data/postmaster.pid"), dir.join("server.pid")] {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
            let Some(pid) = pid else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // A file system a test mounted there (a small tmpfs to fill up) goes first.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if Path::new(m).starts_with(&dir) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Spawning a process that ends with the thread that started it: a test killed before its
/// drops run does not leave its daemons running.
pub trait SpawnOwned {
    fn spawn_owned(&mut self) -> std::io::Result<Child>;
}

impl SpawnOwned for Command {
    fn spawn_owned(&mut self) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        // Safety: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            self.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.spawn()
    }
}

/// A network namespace of its own (loopback up), removed on drop.
pub struct Netns(pub String);

impl Netns {
    /// `nfl{tag}{suffix}`.
    pub fn new(suffix: &str) -> Netns {
        let ns = format!("nfl{}{suffix}", tag());
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        Netns(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Two namespaces, `a` (sender, 10.200.0.1, fd00:200::1) and `b` (firewall/receiver,
/// 10.200.0.2, fd00:200::2), joined by veth `va`—`vb`.
pub struct Lab {
    pub a: String,
    pub b: String,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new() -> Lab {
        let t = tag();
        let (a, b) = (format!("nfl{t}a"), format!("nfl{t}b"));
        let dir = std::env::temp_dir().join(format!("nflogd-lab-{t}"));
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            a: a.clone(),
            b: b.clone(),
            dir,
        };
        sh(&format!("ip netns add {a} && ip netns add {b}"));
        sh(&format!(
            "ip link add va netns {a} type veth peer vb netns {b}"
        ));
        for (ns, dev, v4, v6) in [(&a, "va", A4, A6), (&b, "vb", B4, B6)] {
            sh(&format!(
                "ip -n {ns} link set lo up && ip -n {ns} addr add {v4}/24 dev {dev} && ip -n {ns} addr add {v6}/64 dev {dev} nodad && ip -n {ns} link set {dev} up"
            ));
        }
        lab
    }

    /// Runs a shell command inside namespace `ns`.
    pub fn exec(&self, ns: &str, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {ns} sh -c '{}'",
            cmd.replace('\'', "'\\''")
        ))
    }

    /// Loads an nft ruleset into namespace `ns`.
    pub fn nft(&self, ns: &str, rules: &str) {
        let f = self.dir.join(format!("rules-{ns}.nft"));
        std::fs::write(&f, rules).unwrap();
        sh(&format!("ip netns exec {ns} nft -f {}", f.display()));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts nflogd inside namespace `ns` with the given config text.
    pub fn nflogd(&self, ns: &str, config: &str) -> Daemon {
        let cfg = self.path(&format!("nflogd-{}.toml", tag()));
        std::fs::write(&cfg, config).unwrap();
        let log = self.path("nflogd.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_nflogd"),
                "run",
                "--config",
            ])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn_owned()
            .expect("start nflogd");
        let d = Daemon {
            child: Some(child),
            log,
        };
        d.wait_log("nflogd running", Duration::from_secs(10));
        d
    }

    /// Sends the crafted packet set (tests/lab/craft.py, scapy) from `a` to `b`.
    pub fn craft(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/craft.py");
        self.exec(
            &self.a,
            &format!("/usr/bin/python3 {} va {B4} {B6}", script.display()),
        );
    }

    /// Ordinary traffic from `a` to `b`: ping, ping6, TCP and UDP through real sockets.
    pub fn traffic(&self) {
        self.exec(
            &self.a,
            &format!("ping -c1 -W1 {B4} >/dev/null; ping -6 -c1 -W1 {B6} >/dev/null; true"),
        );
        self.exec(
            &self.a,
            &format!(
                "bash -c 'echo hi >/dev/udp/{B4}/5353; echo hi >/dev/udp/{B6}/5353; (echo x >/dev/tcp/{B4}/81) 2>/dev/null; (echo x >/dev/tcp/{B6}/81) 2>/dev/null; true'"
            ),
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running process this test started; terminated by PID on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "`{needle}` not in the log after {timeout:?}:\n{}",
            self.log_text()
        );
    }

    /// The process's PID (`ip netns exec` execs the command: it is the command's own).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // `ip netns exec` execs the command, so the child PID is nflogd's own.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGTERM and wait; returns the log.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(
                        st.success(),
                        "nflogd exited with {st}:\n{}",
                        self.log_text()
                    );
                    return self.log_text();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            panic!("nflogd did not stop on SIGTERM:\n{}", self.log_text());
        }
        self.log_text()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Lines of a file, waiting until at least `n` are there or the timeout passes, then a short
/// settle so late lines are not missed.
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    while start.elapsed() < timeout {
        if read().len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    read()
}

/// Reads the kernel log from the moment of creation: /dev/kmsg, sought to its end, drained by
/// a thread every few milliseconds. The kernel's ring is small (128 KiB here) and the tests fill
/// it fast: read only at the end, its first records would be overwritten before being read.
pub struct Kmsg {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    lost: std::sync::Arc<AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Kmsg {
    pub fn open() -> Kmsg {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        file.seek(std::io::SeekFrom::End(0)).unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lost = std::sync::Arc::new(AtomicU32::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (lines, lost, stop) = (lines.clone(), lost.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 8192];
                while !stop.load(Ordering::Relaxed) {
                    loop {
                        match file.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                let rec = String::from_utf8_lossy(&buf[..n]);
                                let first = rec.lines().next().unwrap_or("");
                                if let Some((_, text)) = first.split_once(';') {
                                    lines.lock().unwrap().push(text.to_string());
                                }
                            }
                            // Records overwritten before they were read.
                            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                                lost.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Kmsg {
            lines,
            lost,
            stop,
            thread: Some(thread),
        }
    }

    /// Texts of the records logged since the last call, without the `pri,seq,ts,flags;`
    /// header. Panics if the kernel overwrote records before they were read.
    pub fn read(&mut self) -> Vec<String> {
        // What the thread has not taken yet arrives within its next pass.
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(
            self.lost.load(Ordering::Relaxed),
            0,
            "kernel log records were lost before they were read"
        );
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Kmsg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses JSON lines.
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {e}: {l}")))
        .collect()
}

/// Runs `f` on a new thread that has entered namespace `ns` (only that thread moves).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f_ns = std::fs::File::open(&path).expect("open netns");
        assert_eq!(
            unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        f()
    })
    .join()
    .expect("netns thread")
}

/// Sends `count` UDP datagrams from namespace `ns` to `dst:port` as fast as the socket allows.
pub fn udp_burst(ns: &str, dst: &str, port: u16, count: usize) {
    let dst = format!("{dst}:{port}");
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..count {
            let _ = s.send_to(&(i as u32).to_be_bytes(), &dst);
        }
    })
}

/// The packet counter of the first `counter` in namespace `ns`'s ruleset.
pub fn nft_counter(ns: &str) -> u64 {
    let out = sh(&format!("ip netns exec {ns} nft list ruleset"));
    let i = out
        .find("counter packets ")
        .expect("a counter in the ruleset")
        + "counter packets ".len();
    out[i..].split_whitespace().next().unwrap().parse().unwrap()
}

/// A counter from nflogd's final stats line, e.g. `stat(log, "source.fw", "received")`. The
/// line holds every counter of every component: one not there is a failure, not a zero.
pub fn stat(log: &str, component: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("final stats"))
        .unwrap_or_else(|| panic!("no final stats in:\n{log}"));
    let key = format!("{component}:");
    let part = line
        .split(';')
        .find_map(|p| p.find(&key).map(|i| &p[i..]))
        .unwrap_or("");
    part.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no counter `{name}` of `{component}` in:\n{line}"))
}

/// Starts nflogd with the config file `cfg`, in namespace `netns` or the root one, its log in
/// `log` (appended, so a restart keeps the earlier lines); waits until it runs.
pub fn start_nflogd(netns: Option<&str>, cfg: &Path, log: &Path) -> Daemon {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_nflogd")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_nflogd")),
    };
    let child = cmd
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn_owned()
        .expect("start nflogd");
    let d = Daemon {
        child: Some(child),
        log: log.to_path_buf(),
    };
    d.wait_log("nflogd running", Duration::from_secs(10));
    d
}

/// Starts rsyslogd in the foreground with `conf` (written to `dir`), and waits until each of
/// the TCP `ports` accepts connections.
pub fn rsyslog(dir: &Path, conf: &str, ports: &[u16]) -> Daemon {
    let f = dir.join("rsyslog.conf");
    std::fs::write(&f, conf).unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&f)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsyslog.err")).unwrap())
        .spawn_owned()
        .expect("start rsyslogd");
    let d = Daemon {
        child: Some(child),
        log: dir.join("rsyslog.err"),
    };
    for &p in ports {
        wait_port(p, Duration::from_secs(10));
    }
    d
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port for a server a test starts, free for TCP and UDP. Taken below the kernel's
/// ephemeral range (32768 up), so no socket bound to port 0 or connecting out can be handed it
/// between this check and the server's bind, and from a per-process counter, so tests running
/// side by side never pick the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 15_000;
    const SPAN: u32 = 17_000;
    let start = (std::process::id() % 170) * 100;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left for this test process");
        let port = (LOW + (start + n) % SPAN) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
}

/// Whether a program is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("which")
        .arg(tool)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// Waits until process `pid` listens to conntrack events: one of its netfilter netlink sockets
/// has joined multicast groups (`/proc/PID/net/netlink`, in the process's own namespace).
/// What `conntrack -E` and ulogd2's NFCT print nothing to show it.
pub fn wait_ct_subscribed(pid: u32, timeout: Duration) {
    let start = Instant::now();
    loop {
        let inodes = socket_inodes(pid);
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap_or_default();
        // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        let joined = table.lines().skip(1).any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c.len() >= 10
                && c[1] == "12"
                && !c[3].trim_start_matches('0').is_empty()
                && inodes.iter().any(|i| i == c[9])
        });
        if joined {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "process {pid} never subscribed to conntrack events"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until NFLOG `group` is bound in the namespace of process `pid` (ulogd2 ready to log).
pub fn wait_nflog_bound(pid: u32, group: u16, timeout: Duration) {
    let start = Instant::now();
    loop {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/netfilter/nfnetlink_log"))
            .unwrap_or_default();
        if table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&group.to_string()))
        {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "NFLOG group {group} never bound by process {pid}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
