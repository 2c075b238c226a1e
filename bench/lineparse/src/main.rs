//! Parser throughput alone: reads a log file into memory, then unwraps and parses every line into
//! a packet record (every field), single-threaded, and prints lines per second. No output is
//! written, so this is the cost of extraction itself. usage: lineparse FILE
fn main() {
    let path = std::env::args().nth(1).expect("usage: lineparse FILE");
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let start = std::time::Instant::now();
    let (mut ok, mut bad, mut fields) = (0u64, 0u64, 0u64);
    for l in &lines {
        let env = logline::envelope::open(l);
        match logline::parse(env.body) {
            Ok(p) => {
                ok += 1;
                fields += p
                    .event
                    .headers
                    .ports()
                    .map_or(0, |(a, b)| (a ^ b) as u64 & 1);
            }
            Err(_) => bad += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} lines in {secs:.3} s: {:.0} lines/s ({ok} parsed, {bad} not) [{fields}]",
        lines.len(),
        lines.len() as f64 / secs
    );
}
