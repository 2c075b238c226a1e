//! Real kernel LOG lines (captured on a lab VM, shared/research/formats.md §2; kernel 6.18):
//! parsing each gives a record that renders back to the same line, byte for byte.

use logline::{parse, render};

#[test]
fn real_kernel_lines_round_trip() {
    let lines = include_str!("kernel-lines.txt");
    let mut failures = Vec::new();
    let mut n = 0;
    for line in lines.lines() {
        n += 1;
        match parse(line) {
            Ok(p) => {
                let mut out = Vec::new();
                render(&p.event, p.flags, &mut out);
                let got = String::from_utf8(out).unwrap();
                if got != line {
                    failures.push(format!("line:   {line:?}\nrender: {got:?}"));
                }
            }
            Err(e) => failures.push(format!("line:   {line:?}\nerror:  {e}")),
        }
    }
    assert!(n > 90, "only {n} lines");
    assert!(
        failures.is_empty(),
        "{} of {n} lines differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
