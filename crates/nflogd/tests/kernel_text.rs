//! The `text` schema against the kernel itself: every packet is logged twice by one nft rule,
//! once by the kernel's LOG backend (to /dev/kmsg) and once to an NFLOG group read by nflogd,
//! with the same prefix. Both renderings must be byte-identical, with all log flags and with
//! none, for the inet (IPv4, IPv6), arp and netdev (VLAN tags, unknown ethertypes) families.

mod lab;

use lab::{wait_lines, Kmsg, Lab};
use std::time::Duration;

#[test]
fn text_schema_equals_kernel_log_lines() {
    if !lab::available() {
        return;
    }
    let lab = Lab::new();
    let t = lab::tag();
    let (pa, pn) = (format!("KA{t} "), format!("KN{t} "));
    // Let LOG lines from a non-initial namespace reach the kernel log.
    let before = lab::sh("sysctl -n net.netfilter.nf_log_all_netns")
        .trim()
        .to_string();
    lab::sh("sysctl -qw net.netfilter.nf_log_all_netns=1");
    lab.nft(
        &lab.b,
        &format!(
            r#"table inet lab {{
  chain pre {{
    type filter hook prerouting priority -450;
    iifname "vb" meta nfproto ipv4 jump logit
    iifname "vb" ip6 saddr fd00:200::/64 jump logit
  }}
  chain logit {{
    log prefix "{pa}" flags all log group 7 prefix "{pa}" log prefix "{pn}" log group 8 prefix "{pn}"
  }}
  chain out {{
    type filter hook output priority 0;
    oifname "vb" meta nfproto ipv4 jump logit
    oifname "vb" ip6 saddr fd00:200::/64 jump logit
  }}
}}"#
        ),
    );
    let (fa, fnn) = (lab.path("all.txt"), lab.path("none.txt"));
    let d = lab.nflogd(
        &lab.b,
        &format!(
            r#"
stats_interval = "0s"
[sources.all]
type = "nflog"
groups = [7]
[sources.none]
type = "nflog"
groups = [8]
[sinks.all]
type = "file"
inputs = ["all"]
path = "{}"
schema = "text"
log_flags = ["all"]
[sinks.none]
type = "file"
inputs = ["none"]
path = "{}"
schema = "text"
"#,
            fa.display(),
            fnn.display()
        ),
    );
    let mut kmsg = Kmsg::open();
    lab.craft();
    lab.traffic();
    std::thread::sleep(Duration::from_millis(500));
    let kernel = kmsg.read();
    let k_all: Vec<_> = kernel
        .iter()
        .filter(|l| l.starts_with(&pa))
        .cloned()
        .collect();
    let k_none: Vec<_> = kernel
        .iter()
        .filter(|l| l.starts_with(&pn))
        .cloned()
        .collect();
    let n_all = wait_lines(&fa, k_all.len(), Duration::from_secs(5));
    let n_none = wait_lines(&fnn, k_none.len(), Duration::from_secs(5));
    d.stop();
    lab::sh(&format!(
        "sysctl -qw net.netfilter.nf_log_all_netns={before}"
    ));
    assert!(
        k_all.len() >= 60,
        "too few kernel lines ({}): {k_all:#?}",
        k_all.len()
    );
    for (kernel, ours, what) in [
        (&k_all, &n_all, "flags all"),
        (&k_none, &n_none, "no flags"),
    ] {
        let mut only_ours: Vec<&String> = ours.iter().collect();
        let mut only_kernel = Vec::new();
        for k in kernel.iter() {
            match only_ours.iter().position(|o| *o == k) {
                Some(i) => {
                    only_ours.remove(i);
                }
                None => only_kernel.push(k),
            }
        }
        assert!(
            only_kernel.is_empty() && only_ours.is_empty(),
            "{what}: {} kernel lines, {} nflogd lines.\nonly the kernel printed:\n{}\nonly nflogd rendered:\n{}",
            kernel.len(),
            ours.len(),
            only_kernel.iter().map(|s| format!("  {s:?}")).collect::<Vec<_>>().join("\n"),
            only_ours.iter().map(|s| format!("  {s:?}")).collect::<Vec<_>>().join("\n")
        );
    }
}
