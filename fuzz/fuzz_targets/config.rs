//! Arbitrary text as a configuration file: parsing and validation give a value or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nflogd::config::Config::parse(text, "fuzz");
    }
});
