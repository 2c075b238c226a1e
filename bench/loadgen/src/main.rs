//! A paced UDP sender for the benchmarks: from inside a network namespace (by name), send COUNT
//! datagrams of SIZE bytes to ADDR:PORT at RATE packets per second, then stop. Bounded by
//! construction: it sends COUNT packets and exits, and gives up after 60 s whatever happens.
//!
//! With FLOWS, each datagram is a new conntrack flow: destination ports PORT..PORT+FLOWS-1 in
//! turn, from a new source socket after each round.
//!
//! usage: loadgen NETNS ADDR:PORT RATE COUNT [SIZE [FLOWS]]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen NETNS ADDR:PORT RATE COUNT [SIZE]");
        std::process::exit(2);
    }
    let ns = std::fs::File::open(format!("/run/netns/{}", args[1])).expect("netns");
    // SAFETY: setns on a valid namespace fd; this process is single-threaded here.
    assert_eq!(
        unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
        0,
        "setns"
    );
    let dst = &args[2];
    let rate: f64 = args[3].parse().expect("rate");
    let count: u64 = args[4].parse().expect("count");
    let size: usize = args.get(5).map(|s| s.parse().expect("size")).unwrap_or(18);
    let flows: u64 = args.get(6).map(|s| s.parse().expect("flows")).unwrap_or(0);
    let base: std::net::SocketAddr = dst.parse().expect("ADDR:PORT");
    let mut sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect(dst).expect("connect");
    let payload = vec![0x5au8; size];
    let start = Instant::now();
    let deadline = Duration::from_secs(60);
    let mut sent = 0u64;
    while sent < count && start.elapsed() < deadline {
        let due = Duration::from_secs_f64(sent as f64 / rate);
        let now = start.elapsed();
        if due > now + Duration::from_micros(200) {
            std::thread::sleep(due - now);
        }
        for _ in 0..16.min(count - sent) {
            if flows == 0 {
                let _ = sock.send(&payload);
            } else {
                if sent > 0 && sent.is_multiple_of(flows) {
                    sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
                }
                let mut to = base;
                to.set_port(base.port() + (sent % flows) as u16);
                let _ = sock.send_to(&payload, to);
            }
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{sent} {secs:.3} {:.0}", sent as f64 / secs);
}
