//! A real PostgreSQL server on loopback, made for the test run: initdb in a temporary
//! directory, trust authentication, TLS with a certificate made here. Stopped by PID file when
//! dropped, or at exit for the shared one.

use super::sh;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// The network namespace it listens in (its loopback), when not the test's own.
    netns: Option<String>,
}

/// Debian's server binaries, if installed.
pub fn bin_dir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    v.sort();
    v.pop()
}

/// Whether PostgreSQL tests can run (root to run the server as `postgres`); under CI they must.
pub fn available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    if root && bin_dir().is_some() {
        return true;
    }
    super::skip("PostgreSQL test needs root and the postgresql package");
    false
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_in(None)
    }

    /// A server on the loopback of namespace `netns`, for daemons that run inside it.
    pub fn start_in(netns: Option<&str>) -> Postgres {
        let bin = bin_dir().expect("postgresql installed");
        let dir = std::env::temp_dir().join(format!("nflogd-pg-{}", super::tag()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        super::certificates(&dir);
        sh(&format!("chmod 600 {d}/srv.key && chown -R postgres {d}"));
        sh(&format!(
            "runuser -u postgres -- {}/initdb -D {d}/data -U postgres --auth=trust -E UTF8 >/dev/null",
            bin.display()
        ));
        let pg = Postgres {
            dir,
            port: super::free_port(),
            bin,
            netns: netns.map(str::to_string),
        };
        pg.up();
        pg
    }

    /// The server shared by the tests of one binary; stopped at exit.
    pub fn shared() -> &'static Postgres {
        static PG: OnceLock<Postgres> = OnceLock::new();
        PG.get_or_init(|| {
            extern "C" fn stop_at_exit() {
                if let Some(pg) = PG.get() {
                    pg.down();
                    let _ = std::fs::remove_dir_all(&pg.dir);
                }
            }
            unsafe { libc::atexit(stop_at_exit) };
            Postgres::start()
        })
    }

    pub fn up(&self) {
        let d = self.dir.display();
        let ns = self
            .netns
            .as_ref()
            .map_or(String::new(), |n| format!("ip netns exec {n} "));
        sh(&format!(
            "{ns}runuser -u postgres -- {}/pg_ctl -D {d}/data -l {d}/server.log -w -t 30 start \
             -o \"-p {} -k {d} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={d}/srv.pem \
             -c ssl_key_file={d}/srv.key -c max_connections=50\" >/dev/null",
            self.bin.display(),
            self.port
        ));
    }

    pub fn down(&self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A new database for one test.
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=disable",
            self.port
        )
    }

    /// Runs SQL with psql; rows as lines, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql `{sql}`: {e}"))
    }

    /// Like `psql`, with the error as a value (a table not made yet, say).
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = match &self.netns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n, "psql"]);
                c
            }
            None => Command::new("psql"),
        };
        let out = cmd
            .args(["-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("psql");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.down();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
