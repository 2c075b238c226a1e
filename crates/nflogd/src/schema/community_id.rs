//! Community ID v1 (github.com/corelight/community-id-spec): a flow hash Suricata, Zeek,
//! Elastic and others compute the same way, so that a firewall record can be joined with their
//! records of the same connection. Both directions of a flow hash alike; ICMP types map to the
//! counterpart type as Zeek does, and types without one (errors) are one-way.

use base64::Engine;
use event::FlowKey;

/// ICMP types and their counterpart (echo ↔ reply and the like), as Zeek pairs them.
fn icmp_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

fn icmpv6_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        128 => 129,
        129 => 128,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        130 => 131,
        131 => 130,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// The hash input's port pair and whether the flow is one-way (kept in its direction).
fn ports(key: &FlowKey) -> Option<(u16, u16, bool)> {
    match key.protocol {
        6 | 17 | 132 => key.ports.map(|(s, d)| (s, d, false)),
        1 | 58 => key.icmp.map(|(t, code)| {
            let pair = if key.protocol == 1 {
                icmp_counterpart(t)
            } else {
                icmpv6_counterpart(t)
            };
            match pair {
                Some(c) => (t as u16, c as u16, false),
                None => (t as u16, code as u16, true),
            }
        }),
        _ => None,
    }
}

/// Whether `key` has a Community ID: a protocol the spec hashes with ports (TCP, UDP, SCTP,
/// ICMP, ICMPv6) needs them; without (a header cut short, a later fragment) the spec defines
/// none, and none is written.
pub fn defined(key: &FlowKey) -> bool {
    !matches!(key.protocol, 1 | 6 | 17 | 58 | 132) || ports(key).is_some()
}

/// Appends the Community ID of `key` ("1:" and the base64 of a SHA-1) to `out`.
pub fn write(key: &FlowKey, seed: u16, out: &mut Vec<u8>) {
    let octets = |ip: std::net::IpAddr| -> ([u8; 16], usize) {
        match ip {
            std::net::IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, 4)
            }
            std::net::IpAddr::V6(a) => (a.octets(), 16),
        }
    };
    let ((src, n), (dst, _)) = (octets(key.src), octets(key.dst));
    let (src, dst) = (&src[..n], &dst[..n]);
    let p = ports(key);
    // The smaller endpoint first, so that both directions give the same hash (addresses as
    // bytes, then ports), unless the flow is one-way.
    let swap = match p {
        Some((_, _, true)) => false,
        Some((sp, dp, false)) => (dst, dp) < (src, sp),
        None => dst < src,
    };
    let mut input = [0u8; 2 + 16 + 16 + 2 + 4];
    input[..2].copy_from_slice(&seed.to_be_bytes());
    let (a, b) = if swap { (dst, src) } else { (src, dst) };
    input[2..2 + n].copy_from_slice(a);
    input[2 + n..2 + 2 * n].copy_from_slice(b);
    let mut len = 2 + 2 * n;
    input[len] = key.protocol;
    input[len + 1] = 0;
    len += 2;
    if let Some((sp, dp, _)) = p {
        let (x, y) = if swap { (dp, sp) } else { (sp, dp) };
        input[len..len + 2].copy_from_slice(&x.to_be_bytes());
        input[len + 2..len + 4].copy_from_slice(&y.to_be_bytes());
        len += 4;
    }
    use sha1::Digest;
    let digest = sha1::Sha1::digest(&input[..len]);
    out.extend_from_slice(b"1:");
    let at = out.len();
    out.resize(at + 28, 0);
    let _ =
        base64::engine::general_purpose::STANDARD.encode_slice(digest.as_slice(), &mut out[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(proto: u8, src: &str, dst: &str, sp: u16, dp: u16, seed: u16) -> String {
        id_of(proto, src, dst, Some((sp, dp)), seed)
    }

    fn id_of(proto: u8, src: &str, dst: &str, p: Option<(u16, u16)>, seed: u16) -> String {
        let icmp = matches!(proto, 1 | 58);
        let key = FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: proto,
            ports: p.filter(|_| !icmp),
            icmp: p.filter(|_| icmp).map(|(t, c)| (t as u8, c as u8)),
        };
        let mut out = Vec::new();
        write(&key, seed, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The spec's own baseline tables (baseline/README.md, default seed and seed 1).
    #[test]
    fn spec_baseline() {
        for (proto, s, d, sp, dp, seed, want) in [
            (
                6,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                0,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                6,
                "5.6.7.8",
                "1.2.3.4",
                3344,
                1122,
                0,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                17,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                0,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
            (
                132,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                0,
                "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                8,
                0,
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                1,
                "5.6.7.8",
                "1.2.3.4",
                0,
                0,
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                11,
                0,
                0,
                "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
            ),
        ] {
            assert_eq!(
                id(proto, s, d, sp, dp, seed),
                want,
                "{proto} {s} {d} {sp} {dp}"
            );
        }
    }

    /// Every vector of the spec's baseline JSON files (tests/community-id/).
    #[test]
    fn spec_baseline_files() {
        for (file, seed) in [
            (
                include_str!("../../tests/community-id/baseline_deflt.json"),
                0,
            ),
            (
                include_str!("../../tests/community-id/baseline_seed1.json"),
                1,
            ),
        ] {
            let v: Vec<serde_json::Value> = serde_json::from_str(file).unwrap();
            assert!(v.len() >= 20);
            for e in v {
                let p = e["sport"]
                    .as_u64()
                    .zip(e["dport"].as_u64())
                    .map(|(a, b)| (a as u16, b as u16));
                let got = id_of(
                    e["proto"].as_u64().unwrap() as u8,
                    e["saddr"].as_str().unwrap(),
                    e["daddr"].as_str().unwrap(),
                    p,
                    seed,
                );
                assert_eq!(got, e["communityid"].as_str().unwrap(), "seed {seed}: {e}");
            }
        }
    }
}
