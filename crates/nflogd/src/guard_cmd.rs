//! `nflogd guard [--config F] [--name G] list | ban ADDR [--for D] | unban ADDR`: talks to a
//! running guard over its control socket.

use crate::config::Config;
use crate::transforms::guard::control::{self, Request};
use crate::transforms::TransformConfig;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct GuardArgs {
    /// The configuration the daemon runs (to find the guard's socket).
    #[arg(long, short, default_value = "/etc/nflogd/nflogd.toml")]
    pub config: PathBuf,
    /// Which guard, when the configuration has several.
    #[arg(long)]
    pub name: Option<String>,
    /// The control socket itself, instead of reading the configuration.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// The bans in force, with their time left.
    List,
    /// Ban an address or a prefix now.
    Ban {
        address: String,
        /// How long (`90s`, `10m`, `2h`, `1d`); the guard's ban_time by default.
        #[arg(long = "for")]
        duration: Option<crate::units::Duration>,
    },
    /// Lift the ban on an address or prefix.
    Unban { address: String },
}

fn socket(args: &GuardArgs) -> Result<PathBuf> {
    if let Some(s) = &args.socket {
        return Ok(s.clone());
    }
    let cfg = Config::load(&args.config)?;
    let guards: Vec<(&String, PathBuf)> = cfg
        .transforms
        .iter()
        .filter_map(|(n, t)| match t {
            TransformConfig::Guard(g) => Some((n, g.socket_path(n))),
            _ => None,
        })
        .collect();
    match (&args.name, guards.as_slice()) {
        (_, []) => bail!("{} has no guard", args.config.display()),
        (None, [(_, p)]) => Ok(p.clone()),
        (None, _) => bail!(
            "{} has several guards: say which with --name ({})",
            args.config.display(),
            guards
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Some(want), _) => guards
            .iter()
            .find(|(n, _)| *n == want)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| anyhow::anyhow!("no guard `{want}` in {}", args.config.display())),
    }
}

pub fn run(args: GuardArgs) -> Result<()> {
    let path = socket(&args)?;
    let req = match &args.action {
        Action::List => Request::List,
        Action::Ban { address, duration } => Request::Ban {
            address: address.clone(),
            seconds: duration.map(|d| d.0.as_secs().max(1)),
        },
        Action::Unban { address } => Request::Unban {
            address: address.clone(),
        },
    };
    let answer = control::call(Path::new(&path), &req)?;
    match args.action {
        Action::List => {
            let bans = answer["bans"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<44} {:>10} {:>7}  detector",
                "prefix", "remaining", "offense"
            );
            for b in &bans {
                println!(
                    "{:<44} {:>9}s {:>7}  {}",
                    b["prefix"].as_str().unwrap_or(""),
                    b["remaining"].as_u64().unwrap_or(0),
                    b["offense"].as_u64().unwrap_or(0),
                    b["detector"].as_str().unwrap_or("")
                );
            }
            let dry = if answer["dry_run"] == true {
                " (dry run: not in the kernel)"
            } else {
                ""
            };
            println!("{} ban(s){dry}", bans.len());
        }
        Action::Ban { .. } => println!(
            "banned {} for {}s",
            answer["banned"].as_str().unwrap_or(""),
            answer["seconds"].as_u64().unwrap_or(0)
        ),
        Action::Unban { .. } => {
            let gone: Vec<&str> = answer["unbanned"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
                .unwrap_or_default();
            println!("unbanned {}", gone.join(", "));
        }
    }
    Ok(())
}
