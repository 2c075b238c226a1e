//! Parser throughput alone: reads a log file into memory, then unwraps and parses every line into
//! a packet record (every field), single-threaded, and prints lines per second. No output is
//! written, so this is the cost of extraction itself. The file is parsed PASSES times; the best
//! and the median pass are printed, as this VM's neighbours make single passes vary by ±30 %.
//! usage: lineparse FILE [PASSES]
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: lineparse FILE [PASSES]");
    let passes: usize = args.next().map_or(5, |p| p.parse().expect("PASSES"));
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let mut secs = Vec::new();
    let (mut ok, mut bad, mut fields) = (0u64, 0u64, 0u64);
    for _ in 0..passes.max(1) {
        (ok, bad, fields) = (0, 0, 0);
        let start = std::time::Instant::now();
        for l in &lines {
            let env = logline::envelope::open(l);
            match logline::parse(&env.body) {
                Ok(p) => {
                    ok += 1;
                    // Read a field, so that the parse is not optimised away.
                    fields += p
                        .event
                        .headers
                        .ports()
                        .map_or(0, |(a, b)| (a ^ b) as u64 & 1);
                }
                Err(_) => bad += 1,
            }
        }
        secs.push(start.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let rate = |s: f64| lines.len() as f64 / s;
    println!(
        "{} lines, {} passes: best {:.0} lines/s, median {:.0} lines/s ({ok} parsed, {bad} not) [{fields}]",
        lines.len(),
        secs.len(),
        rate(secs[0]),
        rate(secs[secs.len() / 2]),
    );
}
