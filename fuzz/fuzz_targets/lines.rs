//! Arbitrary text as log lines (with any envelope, journald's export entries included):
//! unwrapping and parsing never panic, and a line that parses renders back to text that parses
//! to the same rendering (the kernel's layout and ulogd2's).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut journal = logline::envelope::JournalExport::default();
    for line in text.split_inclusive('\n') {
        let env = match journal.line(line) {
            logline::envelope::ExportLine::Plain => logline::envelope::open(line),
            logline::envelope::ExportLine::Field => continue,
            logline::envelope::ExportLine::Entry(e) => e,
        };
        check(&env.body);
    }
});

fn check(body: &str) {
    // Any layout: never a panic; ulogd2's, when read fully, renders back stably.
    let _ = logline::parse_any(body);
    // (A prefix past the kernel's 127 bytes, or holding `IN=` itself, is no line a kernel or
    // ulogd2 writes: where its fields start is then a guess.)
    let plausible = |p: &logline::Parsed| {
        !p.event.partial && p.event.prefix.len() <= 127 && !p.event.prefix.contains("IN=")
    };
    if let Some(p) = logline::parse_ulogd(body).ok().filter(plausible) {
        let mut once = Vec::new();
        logline::logemu::render(&p.event, &mut once);
        let once = String::from_utf8(once).expect("rendering is UTF-8");
        let again = logline::parse_ulogd(&once).expect("a rendered ulogd2 line parses");
        let mut twice = Vec::new();
        logline::logemu::render(&again.event, &mut twice);
        assert_eq!(once.as_bytes(), &twice[..], "logemu render/parse not stable");
    }
    if let Ok(p) = logline::parse(body) {
        let mut once = Vec::new();
        logline::render(&p.event, p.flags, &mut once);
        let once = String::from_utf8(once).expect("rendering is UTF-8");
        let again = logline::parse(&once).expect("a rendered line parses");
        let mut twice = Vec::new();
        logline::render(&again.event, again.flags, &mut twice);
        assert_eq!(once.as_bytes(), &twice[..], "render/parse not stable");
    }
}
