//! `nflogd trace [--json] [--netns PATH] [--rate N] FILTER…`: sets nf_tables' trace flag on
//! the packets FILTER (an nft match) picks, in a table of its own that hooks prerouting and
//! output before everything else, prints each packet's path, and removes the table on exit. A
//! table a killed run left is removed at start; one flushed away mid-trace is put back.

use super::listen::{Listener, Notes, Scope};
use super::tree;
use crate::schema::{Renderer, SchemaKind, SchemaOptions};
use anyhow::Result;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// One ECS JSON document per packet instead of a tree.
    #[arg(long)]
    pub json: bool,
    /// Trace in another network namespace (`/run/netns/NAME`, `/proc/PID/ns/net`).
    #[arg(long)]
    pub netns: Option<String>,
    /// Most packets traced per second.
    #[arg(long, default_value_t = 10)]
    pub rate: u32,
    /// Stop after this many packets.
    #[arg(long)]
    pub count: Option<u64>,
    /// An nft match selecting the packets, e.g. `tcp dport { 80, 443 }` or `ip saddr 192.0.2.7`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub filter: Vec<String>,
}

pub fn run(args: TraceArgs) -> Result<()> {
    if let Some(ns) = &args.netns {
        // This thread, and the nft processes it starts, work in that namespace.
        crate::sources::thread::enter_netns(ns)?;
    }
    let scope = Scope {
        filter: args.filter.join(" "),
        rate: args.rate.max(1),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut listener = Listener::open(Some(scope.clone()), Duration::from_millis(250))?;
    eprintln!(
        "tracing `{}` (at most {}/s); Ctrl-C ends and removes the trace table",
        scope.filter, scope.rate
    );
    let result = print_paths(&args, &mut listener, &stop);
    let rest = listener.close();
    if result.is_ok() && args.count.is_none() {
        // Interrupted: what was still being gathered is shown too.
        let mut printer = Printer::new(args.json);
        for p in rest {
            printer.print(&p)?;
        }
    }
    result
}

struct Printer {
    ecs: Option<Renderer>,
    line: Vec<u8>,
    out: std::io::StdoutLock<'static>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            ecs: json.then(|| {
                Renderer::new(SchemaOptions {
                    kind: SchemaKind::Ecs,
                    device: "Netfilter".into(),
                    boolean_label: false,
                    log_flags: logline::LogFlags::default(),
                    hostname: crate::topology::hostname(),
                    community_id: Some(0),
                    line_header: false,
                })
            }),
            line: Vec::new(),
            out: std::io::stdout().lock(),
        }
    }

    fn print(&mut self, p: &event::PacketEvent) -> Result<()> {
        match &mut self.ecs {
            Some(r) => {
                self.line.clear();
                r.render(&event::Event::Packet(p.clone()), &mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
            }
            None => write!(self.out, "{}", tree(p))?,
        }
        self.out.flush()?;
        Ok(())
    }
}

fn print_paths(args: &TraceArgs, listener: &mut Listener, stop: &AtomicBool) -> Result<()> {
    let mut printer = Printer::new(args.json);
    let mut printed = 0u64;
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|c| printed < c) {
        let mut notes = Notes::default();
        let done = listener.poll(Duration::from_millis(100), &mut notes)?;
        if notes.malformed > 0 {
            eprintln!("{} trace messages that do not parse", notes.malformed);
        }
        if notes.overrun {
            eprintln!(
                "the kernel dropped trace events (socket buffer full); some paths are incomplete"
            );
        }
        if notes.table_restored {
            eprintln!("the trace table was removed (ruleset flushed?); added it again");
        }
        for p in done {
            printer.print(&p)?;
            printed += 1;
            if args.count.is_some_and(|c| printed >= c) {
                break;
            }
        }
    }
    Ok(())
}
