//! `nflogd top`: a terminal view of a running daemon, read from its HTTP API (`http_address`):
//! events per second of every source and sink with their queues and losses, the top sources
//! and ports of the last events, and the last events themselves, narrowed by a filter typed at
//! the keyboard.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use ratatui::crossterm::event::{self, Event as Key, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TopArgs {
    /// The configuration the daemon runs: its http_address (and user, password, certificate).
    #[arg(long, short, default_value = "/etc/nflogd/nflogd.toml")]
    config: PathBuf,
    /// The daemon's address instead (`http://127.0.0.1:9177`).
    #[arg(long)]
    url: Option<String>,
    /// How often to ask the daemon.
    #[arg(long, default_value = "1s")]
    interval: crate::units::Duration,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

impl Client {
    fn from(args: &TopArgs) -> Result<Client> {
        let cfg = match &args.url {
            Some(_) if !args.config.exists() => None,
            _ => Some(Config::load(&args.config)?),
        };
        let tls_cert = cfg.as_ref().and_then(|c| c.http_cert_file.clone());
        let base = match (&args.url, cfg.as_ref().and_then(|c| c.http_address.as_ref())) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(a)) => {
                let a = crate::http::listen_address(a)?;
                // A server listening on every address is reached on loopback.
                let host = match a.ip() {
                    ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
                    ip if ip.is_unspecified() => "[::1]".to_string(),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                };
                let scheme = if tls_cert.is_some() { "https" } else { "http" };
                format!("{scheme}://{host}:{}", a.port())
            }
            (None, None) => bail!(
                "{} has no http_address: nflogd top reads the daemon's API (set http_address, or give --url)",
                args.config.display()
            ),
        };
        let authorization = cfg.as_ref().and_then(|c| {
            use base64::Engine;
            let (u, p) = (c.http_user.as_ref()?, c.http_password.as_ref()?);
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            ))
        });
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(3)))
            .http_status_as_error(false);
        if let Some(cert) = &tls_cert {
            // The daemon's own certificate is what it is checked against.
            builder = builder.tls_config(crate::tls::http_client_config(Some(cert), None, None)?);
        }
        Ok(Client {
            agent: builder.build().new_agent(),
            base,
            authorization,
        })
    }

    fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}/api/{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().with_context(|| format!("asking {url}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading {url}"))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("reading {url}"))?;
        if status != 200 {
            bail!(
                "{url}: {status} {}",
                v["error"].as_str().unwrap_or("(no reason given)")
            );
        }
        Ok(v)
    }
}

struct Component {
    label: String,
    rate: Option<f64>,
    queued: u64,
    spool: u64,
    lost: u64,
    errors: u64,
}

struct LiveEvent {
    seq: u64,
    time: String,
    action: String,
    line: String,
}

#[derive(Default)]
struct View {
    host: String,
    components: Vec<Component>,
    before: HashMap<String, (u64, Instant)>,
    sources: Vec<(String, u64)>,
    ports: Vec<(String, u64)>,
    of_events: u64,
    events: VecDeque<LiveEvent>,
    last_seq: u64,
    filter: String,
    typing: bool,
    error: Option<String>,
}

const KEPT_EVENTS: usize = 500;

impl View {
    fn refresh(&mut self, c: &Client) -> Result<()> {
        let status = c.get("status")?;
        self.host = format!(
            "{} · nflogd {} · up {}s",
            status["host"].as_str().unwrap_or("?"),
            status["version"].as_str().unwrap_or("?"),
            status["uptime_seconds"].as_u64().unwrap_or(0)
        );
        let now = Instant::now();
        let comps = c.get("components")?;
        self.components.clear();
        for comp in comps.as_array().into_iter().flatten() {
            let kind = comp["kind"].as_str().unwrap_or("");
            let label = format!("{kind} {}", comp["name"].as_str().unwrap_or(""));
            let x = &comp["counters"];
            let n = |k: &str| x[k].as_u64().unwrap_or(0);
            let moved = if kind == "sink" {
                n("sent")
            } else {
                n("received")
            };
            let rate = self.before.get(&label).map(|(m, t)| {
                moved.saturating_sub(*m) as f64 / now.duration_since(*t).as_secs_f64().max(0.001)
            });
            self.before.insert(label.clone(), (moved, now));
            self.components.push(Component {
                label,
                rate,
                queued: n("queued"),
                spool: n("spool_pending"),
                lost: n("dropped") + n("kernel_lost"),
                errors: n("errors"),
            });
        }
        let q = self.query();
        let top = |by: &str| -> Result<(Vec<(String, u64)>, u64)> {
            let v = c.get(&format!("live/top?by={by}&limit=10{q}"))?;
            let rows = v["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["key"].as_str().unwrap_or("").to_string(),
                        r["packets"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            Ok((rows, v["of_events"].as_u64().unwrap_or(0)))
        };
        (self.sources, self.of_events) = top("sources")?;
        self.ports = top("ports")?.0;
        let live = c.get(&format!(
            "live?after={}&limit={KEPT_EVENTS}&record=false{q}",
            self.last_seq
        ))?;
        for e in live["events"].as_array().into_iter().flatten() {
            self.events.push_front(LiveEvent {
                seq: e["seq"].as_u64().unwrap_or(0),
                time: e["time"]
                    .as_str()
                    .unwrap_or("")
                    .get(11..19)
                    .unwrap_or("")
                    .into(),
                action: e["action"].as_str().unwrap_or("").into(),
                line: e["line"].as_str().unwrap_or("").into(),
            });
        }
        self.events.truncate(KEPT_EVENTS);
        self.last_seq = live["last_seq"].as_u64().unwrap_or(self.last_seq);
        Ok(())
    }

    fn query(&self) -> String {
        if self.filter.is_empty() {
            return String::new();
        }
        let q: String = form_urlencoded::byte_serialize(self.filter.as_bytes()).collect();
        format!("&q={q}")
    }

    /// A new filter: what was shown is asked again with it.
    fn refilter(&mut self) {
        self.events.clear();
        self.last_seq = 0;
    }

    fn draw(&self, f: &mut ratatui::Frame) {
        let [head, comps, tops, events, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(self.components.len().min(12) as u16 + 3),
            Constraint::Length(12),
            Constraint::Min(5),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let total: f64 = self
            .components
            .iter()
            .filter(|c| c.label.starts_with("source "))
            .filter_map(|c| c.rate)
            .sum();
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("nflogd top ", Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!("{}  ·  {total:.0} events/s in", self.host)),
            ])),
            head,
        );
        let header = Row::new(["component", "events/s", "queued", "spool", "lost", "errors"])
            .style(Style::new().fg(Color::DarkGray));
        let rows = self.components.iter().map(|c| {
            let style = if c.lost > 0 || c.errors > 0 {
                Style::new().fg(Color::Red)
            } else if c.spool > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            Row::new(vec![
                c.label.clone(),
                c.rate
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "…".into()),
                c.queued.to_string(),
                c.spool.to_string(),
                c.lost.to_string(),
                c.errors.to_string(),
            ])
            .style(style)
        });
        let widths = [
            Constraint::Min(24),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(8),
        ];
        f.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(Block::bordered().title(" sources, transforms and sinks ")),
            comps,
        );
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(tops);
        let top_table = |title: String, rows: &[(String, u64)]| {
            Table::new(
                rows.iter()
                    .map(|(k, n)| Row::new(vec![k.clone(), n.to_string()])),
                [Constraint::Min(20), Constraint::Length(10)],
            )
            .header(Row::new(["", "packets"]).style(Style::new().fg(Color::DarkGray)))
            .block(Block::bordered().title(title))
        };
        f.render_widget(
            top_table(
                format!(" top sources (last {} events) ", self.of_events),
                &self.sources,
            ),
            left,
        );
        f.render_widget(top_table(" top ports ".into(), &self.ports), right);
        let lines: Vec<Line> = self
            .events
            .iter()
            .take(events.height.saturating_sub(2) as usize)
            .map(|e| {
                let colour = match e.action.as_str() {
                    "drop" | "reject" => Color::Red,
                    "accept" => Color::Green,
                    "ban" => Color::Magenta,
                    "new" | "destroy" | "update" => Color::Cyan,
                    _ => Color::Reset,
                };
                Line::from(vec![
                    Span::styled(format!("{} ", e.time), Style::new().fg(Color::DarkGray)),
                    Span::styled(e.line.clone(), Style::new().fg(colour)),
                ])
            })
            .collect();
        let title = match self.events.front() {
            Some(e) => format!(" last events (#{}) ", e.seq),
            None => " last events ".into(),
        };
        f.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            events,
        );
        let footer = if let Some(e) = &self.error {
            Line::styled(format!("error: {e}"), Style::new().fg(Color::Red))
        } else if self.typing {
            Line::from(format!(
                "filter: {}_   (Enter keeps it, Esc clears)",
                self.filter
            ))
        } else if self.filter.is_empty() {
            Line::from("/ filter   q quit")
        } else {
            Line::from(format!(
                "filter: {}   / change   Esc clear   q quit",
                self.filter
            ))
        };
        f.render_widget(Paragraph::new(footer), foot);
    }

    /// A key: false to quit.
    fn key(&mut self, code: KeyCode, mods: KeyModifiers) -> bool {
        if mods.contains(KeyModifiers::CONTROL) && code == KeyCode::Char('c') {
            return false;
        }
        if self.typing {
            match code {
                KeyCode::Enter => self.typing = false,
                KeyCode::Esc => {
                    self.typing = false;
                    self.filter.clear();
                    self.refilter();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                    self.refilter();
                }
                KeyCode::Char(ch) => {
                    self.filter.push(ch);
                    self.refilter();
                }
                _ => {}
            }
            return true;
        }
        match code {
            KeyCode::Char('q') => return false,
            KeyCode::Char('/') => self.typing = true,
            KeyCode::Esc => {
                self.filter.clear();
                self.refilter();
            }
            _ => {}
        }
        true
    }
}

pub fn run(args: TopArgs) -> Result<()> {
    let client = Client::from(&args)?;
    // Fail before taking the terminal when the daemon is not there.
    client.get("status").with_context(|| {
        format!(
            "is nflogd running with http_address? ({} did not answer)",
            client.base
        )
    })?;
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        let mut view = View::default();
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                view.error = view.refresh(&client).err().map(|e| format!("{e:#}"));
                next = Instant::now() + args.interval.0;
            }
            terminal.draw(|f| view.draw(f))?;
            let wait = next.saturating_duration_since(Instant::now());
            let mut timeout = wait.min(Duration::from_millis(250));
            // Every key typed so far, then one refresh.
            while event::poll(timeout)? {
                timeout = Duration::ZERO;
                if let Key::Key(k) = event::read()? {
                    if k.kind == KeyEventKind::Press && !view.key(k.code, k.modifiers) {
                        return Ok(());
                    }
                    if view.last_seq == 0 {
                        next = Instant::now(); // a new filter: ask again at once
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}
