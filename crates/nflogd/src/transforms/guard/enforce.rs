//! Where bans take effect: an nftables table of nflogd's own (sets with per-element kernel
//! timeouts, changed by netlink batches), or an xt_recent list for hosts still on iptables.

use anyhow::{Context, Result};
use ipnet::IpNet;
use nfnetlink::nftables::{self as nft, GuardTable};
use nfnetlink::NetlinkSocket;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub trait Enforcer: Send {
    /// Puts the whole table in place with these bans, replacing what was there.
    fn install(&mut self, bans: &[(IpNet, Duration)]) -> Result<()>;
    /// Adds and removes bans in one step.
    fn apply(&mut self, add: &[(IpNet, Duration)], remove: &[IpNet]) -> Result<()>;
    /// Whether someone removed what `install` put in place since the last call (a ruleset
    /// flush, a reload of the firewall): the caller installs it again.
    fn lost(&mut self) -> bool {
        false
    }
}

/// `dry_run`: decides and reports, touches nothing.
pub struct DryRun;

impl Enforcer for DryRun {
    fn install(&mut self, _: &[(IpNet, Duration)]) -> Result<()> {
        Ok(())
    }
    fn apply(&mut self, _: &[(IpNet, Duration)], _: &[IpNet]) -> Result<()> {
        Ok(())
    }
}

/// An inet table of nflogd's own: sets `ban4` and `ban6` (interval and timeout flags) and
/// drop rules in base chains at the configured hooks.
pub struct Nftables {
    table: GuardTable,
    sock: NetlinkSocket,
    seq: u32,
    lost: Arc<AtomicBool>,
    /// Whether the notification listener runs. It starts after the first install: while it
    /// listens, the kernel writes a notification for every element added, which made a
    /// 100 000-ban restore cost three times the system time.
    watching: bool,
}

const NETLINK_NETFILTER: i32 = 12;

impl Nftables {
    pub fn new(table: GuardTable) -> Result<Self> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).context("opening nf_tables netlink")?;
        // A batch of many elements is answered message by message: short answers, room for
        // them.
        sock.set_cap_ack()?;
        let _ = sock.set_recv_buffer(4 << 20);
        Ok(Nftables {
            table,
            sock,
            seq: 0,
            lost: Arc::new(AtomicBool::new(false)),
            watching: false,
        })
    }

    fn batch(&mut self) -> nft::Batch {
        // Each batch gets sequence numbers of its own, so a late answer is never taken for
        // another batch's.
        self.seq = self.seq.wrapping_add(1 << 20);
        nft::Batch::new(self.seq)
    }

    fn items(bans: &[(IpNet, Duration)]) -> Vec<(std::net::IpAddr, u8, Duration)> {
        bans.iter()
            .map(|(p, d)| (p.network(), p.prefix_len(), *d))
            .collect()
    }
}

impl Enforcer for Nftables {
    fn install(&mut self, bans: &[(IpNet, Duration)]) -> Result<()> {
        let mut b = self.batch();
        b.destroy_table(&self.table);
        b.create_table(&self.table);
        b.add(&self.table, &Self::items(bans));
        nft::commit(&mut self.sock, b)
            .with_context(|| format!("creating nftables table inet {}", self.table.table))?;
        if !self.watching {
            watch(&self.table.table, self.sock.portid(), self.lost.clone())?;
            self.watching = true;
        }
        // What the install itself removed is not a loss.
        self.lost.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn apply(&mut self, add: &[(IpNet, Duration)], remove: &[IpNet]) -> Result<()> {
        let mut b = self.batch();
        let gone: Vec<_> = remove
            .iter()
            .map(|p| (p.network(), p.prefix_len()))
            .collect();
        b.remove(&self.table, &gone);
        b.add(&self.table, &Self::items(add));
        nft::commit(&mut self.sock, b).context("updating the ban sets")
    }

    fn lost(&mut self) -> bool {
        self.lost.swap(false, Ordering::SeqCst)
    }
}

/// Listens to nf_tables' change notifications and flags the removal of the table, one of its
/// sets, chains or rules by anyone but `own_port` (nflogd's own changes).
fn watch(table: &str, own_port: u32, lost: Arc<AtomicBool>) -> Result<()> {
    let sock = NetlinkSocket::open(NETLINK_NETFILTER)?;
    sock.add_membership(nft::NFNLGRP_NFTABLES)?;
    let _ = sock.set_recv_buffer(4 << 20);
    let table = table.to_string();
    std::thread::Builder::new()
        .name("guard-nft-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !crate::signals::shutdown_requested() {
                match sock.wait_readable(Duration::from_millis(250)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => return,
                }
                let len = match sock.recv(&mut buf, true) {
                    Ok(nfnetlink::Recv::Data { len, .. }) => len,
                    // Changes were lost: check by putting the table back.
                    Ok(nfnetlink::Recv::Overrun) => {
                        lost.store(true, Ordering::SeqCst);
                        continue;
                    }
                    Ok(nfnetlink::Recv::Timeout) => continue,
                    Err(_) => return,
                };
                for m in nfnetlink::Messages::new(&buf[..len]).flatten() {
                    let Some(c) = nft::change(&m) else { continue };
                    let removal = matches!(
                        c.msg,
                        nft::NFT_MSG_DELTABLE
                            | nft::NFT_MSG_DELCHAIN
                            | nft::NFT_MSG_DELSET
                            | nft::NFT_MSG_DELRULE
                    );
                    if removal && c.portid != own_port && c.table.as_deref() == Some(&table) {
                        lost.store(true, Ordering::SeqCst);
                    }
                }
            }
        })?;
    Ok(())
}

/// xt_recent: `/proc/net/xt_recent/NAME`, which an iptables rule such as
/// `-m recent --name NAME --rcheck --seconds 86400 -j DROP` reads. One address per write, the
/// file offset back at 0 before each (the kernel refuses a second write otherwise); a prefix
/// is written as its first address, for a rule with the matching `--mask`. The list has no
/// per-entry timeout: nflogd removes entries when their ban ends.
pub struct XtRecent {
    path: std::path::PathBuf,
}

impl XtRecent {
    pub fn new(name: &str) -> Self {
        XtRecent {
            path: std::path::Path::new("/proc/net/xt_recent").join(name),
        }
    }

    fn write(&self, lines: impl Iterator<Item = String>) -> Result<()> {
        use std::io::Seek;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| {
                format!(
                    "opening {} (is an iptables rule with `-m recent --name` loaded?)",
                    self.path.display()
                )
            })?;
        for l in lines {
            f.seek(std::io::SeekFrom::Start(0))?;
            f.write_all(l.as_bytes())
                .with_context(|| format!("writing `{}` to {}", l.trim(), self.path.display()))?;
        }
        Ok(())
    }
}

impl Enforcer for XtRecent {
    fn install(&mut self, bans: &[(IpNet, Duration)]) -> Result<()> {
        self.write(
            std::iter::once("/\n".to_string())
                .chain(bans.iter().map(|(p, _)| format!("+{}\n", p.network()))),
        )
    }

    fn apply(&mut self, add: &[(IpNet, Duration)], remove: &[IpNet]) -> Result<()> {
        self.write(
            remove
                .iter()
                .map(|p| format!("-{}\n", p.network()))
                .chain(add.iter().map(|(p, _)| format!("+{}\n", p.network()))),
        )
    }
}

/// ipset: `hash:net` sets the user made with a timeout (`ipset create NAME hash:net timeout 0`
/// and `ipset create NAME6 hash:net family inet6 timeout 0`) for iptables rules such as
/// `-m set --match-set NAME src -j DROP`. Each prefix is added with its own timeout (ipset's
/// longest is about 24 days), so the kernel ends bans; netlink, no `ipset` process.
pub struct IpSet {
    set4: String,
    set6: String,
    sock: NetlinkSocket,
    seq: u32,
}

impl IpSet {
    pub fn new(name: &str) -> Result<Self> {
        Ok(IpSet {
            set4: name.to_string(),
            set6: format!("{name}6"),
            sock: {
                let s = NetlinkSocket::open(NETLINK_NETFILTER).context("opening ipset netlink")?;
                s.set_cap_ack()?;
                let _ = s.set_recv_buffer(4 << 20);
                s
            },
            seq: 0,
        })
    }

    fn set(&self, p: &IpNet) -> &str {
        match p {
            IpNet::V4(_) => &self.set4,
            IpNet::V6(_) => &self.set6,
        }
    }

    /// The sequence numbers for the next run: each run gets its own, so a late answer is
    /// never taken for another's.
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1 << 20);
        self.seq
    }

    fn context(&self) -> String {
        format!(
            "changing ipsets {} and {} (made with `ipset create NAME hash:net timeout 0`?)",
            self.set4, self.set6
        )
    }
}

impl Enforcer for IpSet {
    fn install(&mut self, bans: &[(IpNet, Duration)]) -> Result<()> {
        use nfnetlink::ipset::Command;
        let seq = self.next_seq();
        let mut cmds = vec![
            Command::Flush { set: &self.set4 },
            Command::Flush { set: &self.set6 },
        ];
        cmds.extend(bans.iter().map(|(p, d)| Command::Add {
            set: self.set(p),
            addr: p.network(),
            prefix_len: p.prefix_len(),
            timeout: *d,
        }));
        nfnetlink::ipset::run(&self.sock, seq, &cmds).with_context(|| self.context())
    }

    fn apply(&mut self, add: &[(IpNet, Duration)], remove: &[IpNet]) -> Result<()> {
        use nfnetlink::ipset::Command;
        let seq = self.next_seq();
        let cmds: Vec<Command> = remove
            .iter()
            .map(|p| Command::Del {
                set: self.set(p),
                addr: p.network(),
                prefix_len: p.prefix_len(),
            })
            .chain(add.iter().map(|(p, d)| Command::Add {
                set: self.set(p),
                addr: p.network(),
                prefix_len: p.prefix_len(),
                timeout: *d,
            }))
            .collect();
        nfnetlink::ipset::run(&self.sock, seq, &cmds).with_context(|| self.context())
    }
}
