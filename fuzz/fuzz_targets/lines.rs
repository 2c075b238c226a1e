//! Arbitrary text as log lines (with any envelope, journald's export entries included):
//! unwrapping and parsing never panic, and a line that parses renders back to text that parses
//! to the same rendering.
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
