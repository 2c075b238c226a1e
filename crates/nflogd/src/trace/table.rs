//! The tracer's own table: a chain at prerouting and one at output, hooked before everything
//! else, that set the trace flag on the packets a filter picks, at a bounded rate.

use anyhow::{bail, Context, Result};
use std::io::Write;

pub const NAME: &str = "nflogd_trace";

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
        .context("nft's standard input")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Removes the table (ours, or one a killed tracer left); nothing if there is none.
pub fn remove() {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", NAME])
        .stderr(std::process::Stdio::null())
        .status();
}

pub fn add(filter: &str, rate: u32) -> Result<()> {
    // Priority -2147483648 hooks before raw, conntrack and every other chain, so that they are
    // all traced; `limit` keeps a broad filter from flooding.
    let rate = rate.max(1);
    let chain = |name: &str, hook: &str| {
        format!(
            "  chain {name} {{\n    type filter hook {hook} priority -2147483648;\n    {filter} limit rate {rate}/second meta nftrace set 1\n  }}\n"
        )
    };
    nft(&format!(
        "table inet {NAME} {{\n{}{}}}\n",
        chain("pre", "prerouting"),
        chain("out", "output")
    ))
    .context("adding the trace table (is the filter an nft match?)")
}
