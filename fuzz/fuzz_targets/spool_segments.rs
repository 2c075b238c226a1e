//! Arbitrary bytes as a spool segment and position file left by a crash: opening and reading
//! the spool never panics, and what it hands out stays within what the segment holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nflogd::spool::{Spool, WhenFull};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("nflogd-fuzz-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ack, seg) = data.split_at(data.len().min(16));
    std::fs::write(dir.join("ack"), ack).unwrap();
    std::fs::write(dir.join("0000000000.seg"), seg).unwrap();
    if let Ok(mut s) = Spool::open(&dir, 1 << 20, WhenFull::Block) {
        let mut total = 0;
        while let Ok(Some(msgs)) = s.peek() {
            total += msgs.iter().map(|m| m.len()).sum::<usize>();
            assert!(total <= seg.len(), "more handed out than the segment holds");
            s.ack();
        }
        let _ = s.append(&[b"after"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
