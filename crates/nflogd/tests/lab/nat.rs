//! A NAT router between two hosts, for conntrack and NAT-query tests.

use super::sh;
use std::time::Duration;

/// Client (10.210.1.2, fd10:210:1::2) → router (masquerade out of v2: 10.210.2.1, fd10:210:2::1)
/// → server (10.210.2.2, fd10:210:2::2), in three namespaces removed on drop.
pub struct Masquerade {
    pub c: String,
    pub r: String,
    pub s: String,
    pub t: String,
}

impl Drop for Masquerade {
    fn drop(&mut self) {
        for ns in [&self.c, &self.r, &self.s] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

pub fn masquerade() -> Masquerade {
    let t = super::tag();
    let m = Masquerade {
        c: format!("nfl{t}cc"),
        r: format!("nfl{t}cr"),
        s: format!("nfl{t}cs"),
        t,
    };
    let (c, r, s, t) = (&m.c, &m.r, &m.s, &m.t);
    for ns in [c, r, s] {
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    }
    sh(&format!(
        "ip link add v0 netns {c} type veth peer v1 netns {r}"
    ));
    sh(&format!(
        "ip link add v2 netns {r} type veth peer v3 netns {s}"
    ));
    sh(&format!("ip -n {c} addr add 10.210.1.2/24 dev v0 && ip -n {c} link set v0 up && ip -n {c} route add default via 10.210.1.1"));
    sh(&format!("ip -n {r} addr add 10.210.1.1/24 dev v1 && ip -n {r} addr add 10.210.2.1/24 dev v2 && ip -n {r} link set v1 up && ip -n {r} link set v2 up"));
    sh(&format!(
        "ip -n {s} addr add 10.210.2.2/24 dev v3 && ip -n {s} link set v3 up"
    ));
    sh(&format!("ip -n {c} addr add fd10:210:1::2/64 dev v0 nodad && ip -n {c} route add default via fd10:210:1::1"));
    sh(&format!("ip -n {r} addr add fd10:210:1::1/64 dev v1 nodad && ip -n {r} addr add fd10:210:2::1/64 dev v2 nodad"));
    sh(&format!("ip -n {s} addr add fd10:210:2::2/64 dev v3 nodad"));
    sh(&format!(
        "ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    ));
    let rules = std::env::temp_dir().join(format!("nflogd-nat-{t}.nft"));
    std::fs::write(&rules, "table inet nat {\n chain post {\n type nat hook postrouting priority 100;\n oifname \"v2\" masquerade\n }\n}\n").unwrap();
    sh(&format!("ip netns exec {r} nft -f {}", rules.display()));
    let _ = std::fs::remove_file(&rules);
    m
}

/// A TCP connection from the client to the server's `port`: 5 bytes sent, the connection held
/// open for `hold`, then closed. Returns the peer address the server saw, the bytes it got and
/// the client's source port.
pub fn tcp_hello(m: &Masquerade, port: u16, hold: Duration) -> (std::net::SocketAddr, usize, u16) {
    let srv = m.s.clone();
    let server = std::thread::spawn(move || {
        super::in_netns(&srv, move || {
            use std::io::Read;
            let l = std::net::TcpListener::bind(("10.210.2.2", port)).unwrap();
            let (mut conn, peer) = l.accept().unwrap();
            let mut b = Vec::new();
            let _ = conn.read_to_end(&mut b);
            (peer, b.len())
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let sport = super::in_netns(&m.c, move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("10.210.2.2", port)).unwrap();
        s.write_all(b"hello").unwrap();
        std::thread::sleep(hold);
        s.local_addr().unwrap().port()
    });
    let (peer, got) = server.join().unwrap();
    (peer, got, sport)
}
