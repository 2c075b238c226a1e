//! `text`: the kernel's LOG line, as `logline` renders it.

use super::SchemaOptions;
use event::PacketEvent;

/// Packets parsed from a LOG line render with the flags that line showed, so the text comes back
/// as it was; NFLOG packets with the sink's `log_flags`.
pub fn packet(p: &PacketEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    let flags = p.log_flags.map(logline::LogFlags).unwrap_or(opts.log_flags);
    logline::render(p, flags, out);
}
