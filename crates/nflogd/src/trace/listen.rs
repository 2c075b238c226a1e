//! Reading nf_tables trace events: the netlink socket, the gatherer, the rule texts kept current
//! with the ruleset, and — when a filter is given — the tracer's own table that sets the trace
//! flag, put back if a ruleset flush took it away. Shared by `nflogd trace` and the `nftrace`
//! source.

use super::rules::RuleTexts;
use super::{table, to_event, Gatherer};
use anyhow::{Context, Result};
use event::PacketEvent;
use nfnetlink::socket::NetlinkSocket;
use std::time::{Duration, Instant};

/// A filter and its rate: what the tracer's table traces.
#[derive(Debug, Clone)]
pub struct Scope {
    pub filter: String,
    pub rate: u32,
}

/// What one poll found besides finished packets.
#[derive(Debug, Default)]
pub struct Notes {
    /// Trace messages that did not parse.
    pub malformed: u64,
    /// The kernel dropped events (socket buffer full): some paths are incomplete.
    pub overrun: bool,
    /// The tracer's table was gone and was added again.
    pub table_restored: bool,
}

pub struct Listener {
    sock: NetlinkSocket,
    rules: RuleTexts,
    gather: Gatherer,
    names: crate::sources::nflog::ifnames::IfNames,
    scope: Option<Scope>,
    buf: Vec<u8>,
    check_table: bool,
    last_check: Instant,
}

impl Listener {
    /// Opens the socket in the calling thread's namespace; with a scope, replaces a table a
    /// killed tracer left and adds its own (`close` removes it).
    pub fn open(scope: Option<Scope>, idle: Duration) -> Result<Self> {
        let sock = NetlinkSocket::open(libc::NETLINK_NETFILTER).context("opening netlink")?;
        sock.add_membership(nfnetlink::trace::NFNLGRP_NFTRACE)
            .context("joining the nf_tables trace group (is nf_tables available?)")?;
        sock.add_membership(nfnetlink::nftables::NFNLGRP_NFTABLES)?;
        let _ = sock.set_recv_buffer(8 << 20);
        let mut gather = Gatherer::new(idle);
        if let Some(s) = &scope {
            table::remove();
            table::add(&s.filter, s.rate)?;
            gather.skip_table = Some((1, table::NAME.to_string()));
        }
        Ok(Listener {
            sock,
            rules: RuleTexts::default(),
            gather,
            names: crate::sources::nflog::ifnames::IfNames::new(),
            scope,
            buf: vec![0u8; 1 << 16],
            check_table: false,
            last_check: Instant::now(),
        })
    }

    /// Waits up to `wait` for events; returns the packets whose paths are complete.
    pub fn poll(&mut self, wait: Duration, notes: &mut Notes) -> Result<Vec<PacketEvent>> {
        let mut done = Vec::new();
        if self.sock.wait_readable(wait)? {
            // What is queued (a bounded number, so that a flood still lets paths time out),
            // then the gatherer's timeouts.
            for _ in 0..256 {
                match self.sock.recv(&mut self.buf, true) {
                    Ok(nfnetlink::Recv::Data { len, .. }) => {
                        for m in nfnetlink::Messages::new(&self.buf[..len]) {
                            let Ok(m) = m else {
                                notes.malformed += 1;
                                continue;
                            };
                            match nfnetlink::trace::parse(&m) {
                                Some(Ok(ev)) => done.extend(self.gather.add(ev, &mut self.rules)),
                                Some(Err(_)) => notes.malformed += 1,
                                None if nfnetlink::nftables::change(&m).is_some() => {
                                    self.rules.invalidate();
                                    self.check_table = true;
                                }
                                None => {}
                            }
                        }
                    }
                    Ok(nfnetlink::Recv::Overrun) => notes.overrun = true,
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading trace events"),
                }
            }
        }
        done.extend(self.gather.expired());
        // A ruleset flushed under us: the trace table goes back.
        if let Some(s) = &self.scope {
            if self.check_table && self.last_check.elapsed() >= Duration::from_millis(200) {
                self.check_table = false;
                self.last_check = Instant::now();
                self.rules.reload();
                let ours = format!("inet {}", table::NAME);
                if !self.rules.tables.contains(&ours) {
                    table::add(&s.filter, s.rate)?;
                    notes.table_restored = true;
                }
            }
        }
        Ok(self.events(done))
    }

    fn events(&mut self, done: Vec<super::Traced>) -> Vec<PacketEvent> {
        self.names.refresh();
        let names = &mut self.names;
        done.into_iter()
            .filter(|t| !t.steps.is_empty())
            .map(|t| to_event(&t, &mut |i| names.get(i)))
            .collect()
    }

    /// The packets still being gathered, and the tracer's table removed.
    pub fn close(mut self) -> Vec<PacketEvent> {
        if self.scope.is_some() {
            table::remove();
        }
        let open = self.gather.drain();
        self.events(open)
    }
}
