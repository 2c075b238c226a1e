//! `nflogd parse`: kernel LOG lines in (files or stdin, any wrapper), one record per line out.
//! The drop-in replacement for grok patterns and syslog-ng's iptables-parser() in scripts.

use crate::metrics;
use crate::schema::{Renderer, SchemaKind, SchemaOptions};
use crate::sources::lines::LineDecoder;
use crate::transforms::action::ActionConfig;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub fn run(schema: SchemaKind, hostname: String, files: &[PathBuf]) -> Result<()> {
    let counters = metrics::register("parse", "lines");
    let actions = Arc::new(ActionConfig::default());
    let mut renderer = Renderer::new(SchemaOptions {
        kind: schema,
        device: "Netfilter".into(),
        boolean_label: false,
        log_flags: logline::LogFlags::default(),
        hostname,
        community_id: Some(0),
        line_header: true,
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut buf = Vec::with_capacity(1 << 16);
    let mut records = 0u64;
    let inputs: Vec<Option<&PathBuf>> = if files.is_empty() {
        vec![None]
    } else {
        files.iter().map(Some).collect()
    };
    for input in inputs {
        let (name, reader): (String, Box<dyn Read>) = match input {
            Some(p) => (
                p.display().to_string(),
                Box::new(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                ),
            ),
            None => ("stdin".into(), Box::new(std::io::stdin())),
        };
        // The user's own files: journald's export form is recognised by its first field.
        let mut dec =
            LineDecoder::new(&name, actions.clone(), counters.clone()).reading_journal_export();
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut raw = Vec::new();
        let mut n = 0u64;
        loop {
            raw.clear();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            n += 1;
            let line = match std::str::from_utf8(&raw) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(&raw),
            };
            if let Some(ev) = dec.decode(&line, Some(n)) {
                renderer.render(&ev, &mut buf);
                buf.push(b'\n');
                records += 1;
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    let unparsed = counters.malformed.load(Relaxed);
    let ignored = counters.ignored.load(Relaxed);
    if unparsed > 0 || ignored > 0 {
        eprintln!("nflogd parse: {records} records ({unparsed} unparsable netfilter lines, kept partial or raw), {ignored} other lines skipped");
    }
    Ok(())
}
