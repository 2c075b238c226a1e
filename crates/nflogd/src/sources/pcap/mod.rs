//! The `pcap` source: a saved capture (pcap or pcapng; Ethernet, Linux cooked v1/v2 or raw IP)
//! replayed through the pipeline as packet records — decoded as NFLOG packets are, given an
//! action from `prefix`, then through the transforms and sinks. For trying rules, schemas and
//! detectors on saved traffic. It reads the file once, as fast as the sinks take it.

use crate::capture;
use crate::metrics::ComponentCounters;
use crate::pipeline::Fanout;
use crate::transforms::action::ActionResolver;
use anyhow::{bail, Context, Result};
use event::{family, Event, Interface, PacketEvent, Timestamp};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use serde::Deserialize;
use std::io::{BufReader, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

/// `[sources.NAME] type = "pcap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapSourceConfig {
    /// The capture to replay.
    pub path: String,
    /// The log prefix its records carry (a capture has none), and so their action.
    #[serde(default)]
    pub prefix: String,
}

/// One packet read from a capture.
struct Captured<'a> {
    time: Timestamp,
    linktype: u32,
    data: &'a [u8],
}

/// Turns captured frames into packet records.
struct Replay {
    prefix: Arc<str>,
    actions: ActionResolver,
    fanout: Fanout,
    counters: Arc<ComponentCounters>,
    batch: Vec<Event>,
}

impl Replay {
    fn packet(&mut self, c: Captured) {
        ComponentCounters::add(&self.counters.received, 1);
        let Some(f) = capture::frame(c.linktype, c.data) else {
            ComponentCounters::add(&self.counters.malformed, 1);
            crate::rate_limited_warn!(
                "pcap: a frame of link type {} that could not be read ({} bytes); skipped",
                c.linktype,
                c.data.len()
            );
            return;
        };
        let headers = packet::decode_ethertype(f.ethertype, f.payload);
        if headers.truncated {
            ComponentCounters::add(&self.counters.truncated, 1);
        }
        let fam = match f.ethertype {
            packet::ethertype::IPV4 => family::IPV4,
            packet::ethertype::IPV6 => family::IPV6,
            packet::ethertype::ARP => family::ARP,
            _ => family::BRIDGE,
        };
        let iface = f.ifindex.map(|i| Interface {
            index: Some(i),
            name: Arc::from(""),
            hwtype: f.link.as_ref().and_then(|l| l.hwtype),
        });
        let mut ev = PacketEvent::with_prefix(self.prefix.clone());
        ev.time = c.time;
        ev.family = fam;
        ev.hw_protocol = f.ethertype;
        ev.action = self.actions.resolve(&self.prefix);
        if f.outgoing {
            ev.outdev = iface;
        } else {
            ev.indev = iface;
        }
        ev.link = f.link;
        ev.payload_len = f.payload.len() as u32;
        ev.payload = Some(Arc::from(f.payload));
        ev.headers = headers;
        self.batch.push(Event::Packet(ev));
        if self.batch.len() >= 1024 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.fanout.send(&mut self.batch);
        }
    }
}

fn time(d: std::time::Duration) -> Timestamp {
    Timestamp {
        secs: d.as_secs() as i64,
        micros: d.subsec_micros(),
    }
}

/// Reads the whole capture, pcap or pcapng (told apart by their first four bytes).
fn replay(path: &str, r: &mut Replay) -> Result<()> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .with_context(|| format!("reading {path}"))?;
    let file = std::fs::File::open(path)?;
    let input = BufReader::with_capacity(1 << 20, file);
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut ng = PcapNgReader::new(input).with_context(|| format!("{path}: pcapng"))?;
        // The link types of the section's interfaces, in the order they were described.
        let mut linktypes: Vec<u32> = Vec::new();
        while let Some(block) = ng.next_block() {
            let block = block.with_context(|| format!("{path}: a pcapng block"))?;
            match &block {
                Block::SectionHeader(_) => linktypes.clear(),
                Block::InterfaceDescription(i) => linktypes.push(u32::from(i.linktype)),
                Block::EnhancedPacket(p) => match linktypes.get(p.interface_id as usize) {
                    Some(&linktype) => r.packet(Captured {
                        time: time(p.timestamp),
                        linktype,
                        data: &p.data,
                    }),
                    None => ComponentCounters::add(&r.counters.malformed, 1),
                },
                _ => {}
            }
        }
    } else {
        let mut pcap = PcapReader::new(input).with_context(|| format!("{path}: pcap"))?;
        let linktype = u32::from(pcap.header().datalink);
        while let Some(p) = pcap.next_packet() {
            let p = p.with_context(|| format!("{path}: a packet record"))?;
            r.packet(Captured {
                time: time(p.timestamp),
                linktype,
                data: &p.data,
            });
        }
    }
    Ok(())
}

impl super::Source for PcapSourceConfig {
    fn validate(&self) -> Result<()> {
        if self.path.is_empty() {
            bail!("path: empty; give a capture file");
        }
        Ok(())
    }

    fn can_wait(&self) -> bool {
        true
    }

    fn spawn(&self, ctx: super::SourceContext) -> Result<JoinHandle<()>> {
        // A missing or unreadable file fails start-up, not a thread later.
        std::fs::File::open(&self.path)
            .with_context(|| format!("source `{}`: opening {}", ctx.name, self.path))?;
        let cfg = self.clone();
        let name = ctx.name.clone();
        let mut r = Replay {
            prefix: Arc::from(cfg.prefix.as_str()),
            actions: ActionResolver::new(ctx.actions.clone(), None),
            fanout: ctx.output,
            counters: ctx.counters,
            batch: Vec::with_capacity(1024),
        };
        tracing::info!("source `{name}`: replaying the capture {}", cfg.path);
        Ok(crate::signals::spawn_thread(
            format!("pcap:{name}"),
            move || {
                let res = replay(&cfg.path, &mut r);
                r.flush();
                match res {
                    Ok(()) => tracing::info!("source `{name}`: {} replayed", cfg.path),
                    Err(e) => {
                        ComponentCounters::add(&r.counters.errors, 1);
                        tracing::error!("source `{name}`: {e:#}; stopped reading it")
                    }
                }
            },
        )?)
    }
}
