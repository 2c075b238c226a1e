//! A real ClickHouse server (Debian's clickhouse-server) on loopback, with a configuration
//! made for the test run; ended by PID when dropped, or at exit for the shared one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const SERVER: &str = "/usr/sbin/clickhouse-server";

pub fn available() -> bool {
    if std::path::Path::new(SERVER).exists() {
        return true;
    }
    super::skip("ClickHouse test needs the clickhouse-server package");
    false
}

pub struct ClickHouse {
    pub dir: PathBuf,
    pub port: u16,
    child: Mutex<Option<Child>>,
}

impl ClickHouse {
    pub fn start() -> ClickHouse {
        let dir = std::env::temp_dir().join(format!("nflogd-ch-{}", super::tag()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (port, tcp) = (super::free_port(), super::free_port());
        let d = dir.display();
        std::fs::write(
            dir.join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default/></profiles><quotas><default/></quotas>\
             <users><default><password></password><networks><ip>127.0.0.1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users></yandex>\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\
                 <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>\
                 <http_port>{port}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><users_config>{d}/users.xml</users_config>\
                 <default_profile>default</default_profile><default_database>default</default_database>\
                 <mark_cache_size>268435456</mark_cache_size></yandex>\n"
            ),
        )
        .unwrap();
        let ch = ClickHouse {
            dir,
            port,
            child: Mutex::new(None),
        };
        ch.up();
        ch
    }

    /// The server shared by the tests of one binary; ended at exit.
    pub fn shared() -> &'static ClickHouse {
        static CH: OnceLock<ClickHouse> = OnceLock::new();
        CH.get_or_init(|| {
            extern "C" fn stop_at_exit() {
                if let Some(ch) = CH.get() {
                    ch.down();
                    let _ = std::fs::remove_dir_all(&ch.dir);
                }
            }
            unsafe { libc::atexit(stop_at_exit) };
            ClickHouse::start()
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn up(&self) {
        let child = Command::new(SERVER)
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start clickhouse-server");
        // For the next test process, should this one be killed (`lab::sweep_leftovers`).
        let _ = std::fs::write(self.dir.join("server.pid"), child.id().to_string());
        *self.child.lock().unwrap() = Some(child);
        let start = Instant::now();
        while self.try_query("SELECT 1").is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "clickhouse-server did not start: {}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn down(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--data-binary", sql, &self.url()])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr))
        }
    }

    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("clickhouse `{sql}`: {e}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.down();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
