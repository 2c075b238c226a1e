//! nflogd: a logging, shipping and response daemon for Linux Netfilter.

use anyhow::Result;
use clap::{Parser, Subcommand};
use nflogd::{config, guard_cmd, parse_cmd, query_cmd, schema, signals, store, topology};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nflogd",
    version,
    about = "Logging, shipping and response daemon for Linux Netfilter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (with the embedded default configuration when no --config is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file without starting anything.
    Check { config: PathBuf },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Parse kernel LOG lines (files, or standard input) into one record per line.
    Parse {
        /// Output schema: ecs, ulogd, text or logemu (ulogd2's line).
        #[arg(long, default_value = "ecs")]
        schema: String,
        files: Vec<PathBuf>,
    },
    /// Query the SQLite or PostgreSQL store: filters, the NAT question, top summaries.
    Query(Box<query_cmd::QueryArgs>),
    /// A running guard: `list` its bans, `ban ADDR [--for D]`, `unban ADDR`.
    Guard(guard_cmd::GuardArgs),
    /// Look for what silently breaks firewall logging here: one finding a line with its fix;
    /// exit status 1 when there is any.
    Doctor {
        /// The configuration to check against (default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// A live terminal view of the running daemon (its http_address): rates, queues, top
    /// sources and ports, the last events; `/` types a filter.
    Top(nflogd::top_cmd::TopArgs),
    /// Trace packets through the ruleset: which rule did what to them.
    Trace(nflogd::trace::cmd::TraceArgs),
    /// Print an nflogd configuration equivalent to a ulogd.conf's active stacks.
    ImportUlogd {
        /// The ulogd2 configuration, e.g. /etc/ulogd.conf.
        file: PathBuf,
    },
    /// Print a shell completion script: bash, zsh or fish.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages nflogd.8 and nflogd.toml.5 into a directory (for packaging).
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Print the database schema nflogd creates: sqlite, postgres or clickhouse.
    Schema {
        dialect: String,
        /// ClickHouse database name.
        #[arg(long, default_value = "nflogd")]
        database: String,
    },
}

/// glibc hands heap back to the kernel as soon as 128 KiB at its top are free, and a database
/// sink frees a whole unit of rows (megabytes) at a time: faulting those pages in again was a
/// tenth of the SQLite sink's time per row. Freed heap up to 64 MiB is kept for reuse.
fn keep_freed_heap() {
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NFLOGD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    if let Command::Doctor { config } = &cli.command {
        return match nflogd::doctor::run(config.as_deref()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let r: Result<()> = match cli.command {
        Command::Doctor { .. } => unreachable!("handled above"),
        Command::Run { config } => run(config),
        Command::Check { config } => config::Config::load(&config).map(|c| {
            for w in &c.warnings {
                eprintln!("{}: warning: {w}", config.display());
            }
            println!("{}: ok", config.display());
        }),
        Command::Parse { schema, files } => {
            parse_schema(&schema).and_then(|k| parse_cmd::run(k, topology::hostname(), &files))
        }
        Command::Query(args) => query_cmd::run(*args),
        Command::Guard(args) => guard_cmd::run(args),
        Command::ImportUlogd { file } => nflogd::import_ulogd::run(&file),
        Command::Trace(args) => nflogd::trace::cmd::run(args),
        Command::Top(args) => nflogd::top_cmd::run(args),
        Command::Schema { dialect, database } => schema_script(&dialect, &database),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "nflogd", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { dir } => manpages(&dir),
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nflogd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// nflogd.8 and a page per command (nflogd-run.8, …, as git and cargo do), and nflogd.toml.5
/// (the configuration reference).
fn manpages(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command().name("nflogd");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)?;
    page.extend_from_slice(
        b".SH FILES\n/etc/nflogd/nflogd.toml, /var/lib/nflogd, /var/log/nflogd\n.SH SEE ALSO\nnflogd.toml(5), nft(8), ulogd(8)\n",
    );
    std::fs::write(dir.join("nflogd.8"), page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let mut page = Vec::new();
        clap_mangen::Man::new(
            sub.clone()
                .name(format!("nflogd-{name}"))
                .bin_name(format!("nflogd {name}")),
        )
        .section("8")
        .render(&mut page)?;
        std::fs::write(dir.join(format!("nflogd-{name}.8")), page)?;
    }
    std::fs::write(
        dir.join("nflogd.toml.5"),
        nflogd::manpage::roff(
            "nflogd.toml",
            "5",
            "the nflogd configuration file",
            nflogd::manpage::CONFIGURATION_MD,
        ),
    )?;
    Ok(())
}

fn schema_script(dialect: &str, database: &str) -> Result<()> {
    use store::ddl::Dialect;
    let d = match dialect {
        "sqlite" => Dialect::Sqlite,
        "postgres" | "postgresql" => Dialect::Postgres,
        "clickhouse" => Dialect::ClickHouse,
        other => anyhow::bail!("unknown database `{other}` (sqlite, postgres, clickhouse)"),
    };
    print!("{}", store::ddl::script(d, database));
    Ok(())
}

fn parse_schema(s: &str) -> Result<schema::SchemaKind> {
    Ok(match s {
        "ecs" => schema::SchemaKind::Ecs,
        "ulogd" => schema::SchemaKind::Ulogd,
        "text" => schema::SchemaKind::Text,
        "logemu" => schema::SchemaKind::Logemu,
        other => anyhow::bail!("unknown schema `{other}` (ecs, ulogd, text, logemu)"),
    })
}

fn run(path: Option<PathBuf>) -> Result<()> {
    keep_freed_heap();
    signals::fail_on_panic();
    // Test builds only (feature `failpoints`): the FAILPOINTS variable arms fault points.
    let _faults = fail::FailScenario::setup();
    let cfg = match &path {
        Some(p) => config::Config::load(p)?,
        None => {
            tracing::info!(
                "no --config given: running the embedded default (see `nflogd default-config`)"
            );
            tracing::info!(
                "log packets to it with, e.g.: nft add rule inet filter input ct state new log group 1 prefix \"IPTABLES: ACCEPT \""
            );
            config::Config::parse(config::DEFAULT_CONFIG, "embedded default")?
        }
    };
    nflogd::privileges::settle(&nflogd::privileges::needs(&cfg))?;
    signals::install()?;
    topology::run(cfg, path.as_deref())
}
