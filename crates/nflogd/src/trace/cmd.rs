//! `nflogd trace [--json] [--netns PATH] [--rate N] FILTER…`: sets nf_tables' trace flag on
//! the packets FILTER (an nft match) picks, in a table of its own that hooks prerouting and
//! output before everything else, prints each packet's path, and removes the table on exit. A
//! table a killed run left is removed at start; one flushed away mid-trace is put back.

use super::rules::RuleTexts;
use super::{ecs, tree, Gatherer};
use anyhow::{bail, Context, Result};
use nfnetlink::socket::NetlinkSocket;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tracer's own table.
pub const TABLE: &str = "nflogd_trace";

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

fn nft(script: &str) -> Result<()> {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (is nftables installed?)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn remove_table() {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", TABLE])
        .stderr(std::process::Stdio::null())
        .status();
}

fn add_table(filter: &str, rate: u32) -> Result<()> {
    // Priority -2147483648 hooks before raw, conntrack and every other chain, so that they are
    // all traced; `limit` keeps a broad filter from flooding.
    let chain = |name: &str, hook: &str| {
        format!(
            "  chain {name} {{\n    type filter hook {hook} priority -2147483648;\n    {filter} limit rate {rate}/second meta nftrace set 1\n  }}\n"
        )
    };
    nft(&format!(
        "table inet {TABLE} {{\n{}{}}}\n",
        chain("pre", "prerouting"),
        chain("out", "output")
    ))
    .context("adding the trace table (is the filter an nft match?)")
}

pub fn run(args: TraceArgs) -> Result<()> {
    if let Some(ns) = &args.netns {
        // This thread, and the nft processes it starts, work in that namespace.
        crate::sources::thread::enter_netns(ns)?;
    }
    let filter = args.filter.join(" ");
    remove_table();
    add_table(&filter, args.rate.max(1))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let result = trace_loop(&args, &filter, &stop);
    remove_table();
    result
}

fn trace_loop(args: &TraceArgs, filter: &str, stop: &AtomicBool) -> Result<()> {
    let sock = NetlinkSocket::open(libc::NETLINK_NETFILTER).context("opening netlink")?;
    sock.add_membership(nfnetlink::trace::NFNLGRP_NFTRACE)?;
    sock.add_membership(nfnetlink::nftables::NFNLGRP_NFTABLES)?;
    let _ = sock.set_recv_buffer(8 << 20);
    let mut rules = RuleTexts::default();
    let mut gather = Gatherer::new(Duration::from_millis(250));
    gather.skip_table = Some((1, TABLE.to_string()));
    let mut names = crate::sources::nflog::ifnames::IfNames::new();
    let mut ifname = move |i: u32| {
        let n = names.get(i).name;
        if n.is_empty() {
            i.to_string()
        } else {
            n.to_string()
        }
    };
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 1 << 16];
    let mut check_table = false;
    let mut last_check = Instant::now();
    eprintln!(
        "tracing `{filter}` (at most {}/s); Ctrl-C ends and removes the trace table",
        args.rate
    );
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|c| printed < c) {
        let mut done = Vec::new();
        if sock.wait_readable(Duration::from_millis(100))? {
            match sock.recv(&mut buf, true) {
                Ok(nfnetlink::Recv::Data { len, .. }) => {
                    for m in nfnetlink::Messages::new(&buf[..len]).flatten() {
                        match nfnetlink::trace::parse(&m) {
                            Some(Ok(ev)) => done.extend(gather.add(ev, &mut rules)),
                            Some(Err(e)) => eprintln!("a trace event that does not parse: {e}"),
                            None if nfnetlink::nftables::change(&m).is_some() => {
                                rules.invalidate();
                                check_table = true;
                            }
                            None => {}
                        }
                    }
                }
                Ok(nfnetlink::Recv::Overrun) => {
                    eprintln!("the kernel dropped trace events (socket buffer full); some paths are incomplete");
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading trace events"),
            }
        }
        done.extend(gather.expired());
        // A ruleset flushed under us: the trace table goes back.
        if check_table && last_check.elapsed() >= Duration::from_millis(200) {
            check_table = false;
            last_check = Instant::now();
            rules.reload();
            if !rules.tables.iter().any(|t| t == &format!("inet {TABLE}")) {
                add_table(filter, args.rate.max(1))?;
                eprintln!("the trace table was removed (ruleset flushed?); added it again");
            }
        }
        for t in done {
            if t.steps.is_empty() {
                continue;
            }
            if args.json {
                writeln!(out, "{}", ecs(&t, &mut ifname))?;
            } else {
                write!(out, "{}", tree(&t, &mut ifname))?;
            }
            out.flush()?;
            printed += 1;
        }
    }
    Ok(())
}
