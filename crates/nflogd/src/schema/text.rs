//! `text`: the kernel's LOG line, as `logline` renders it.

use super::SchemaOptions;
use event::PacketEvent;

pub fn packet(p: &PacketEvent, opts: &SchemaOptions, out: &mut Vec<u8>) {
    logline::render(p, opts.log_flags, out);
}
