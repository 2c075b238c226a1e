//! A syslog byte stream (RFC 6587, both framings) cut into arbitrary pieces: deframing never
//! panics, no message is longer than the limit, and how the stream was cut changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nflogd::sources::syslog::framing::Deframer;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let frames = |chunk: usize| {
        let mut d = Deframer::new(512);
        let mut out = Vec::new();
        for c in stream.chunks(chunk.max(1)) {
            d.feed(c, |m| {
                assert!(m.len() <= 512, "a message over the limit");
                out.push(m.to_vec());
            });
        }
        out
    };
    assert_eq!(frames(stream.len()), frames(cut as usize), "cut at {cut}");
});
