//! The `pcap` sink: each logged packet's bytes, as the kernel handed them to NFLOG, in a
//! libpcap capture that tcpdump and Wireshark read. ulogd2's PCAP output, done better: the
//! default link type (Linux cooked v2) keeps the interface, the direction and the source MAC,
//! and frames ARP and bridged packets too; `linktype = "raw"` writes what ulogd2 writes (IPv4
//! and IPv6 only). Appends (a capture is started only in an empty file), reopens on SIGHUP.

use crate::capture;
use crate::sinks::file::Records;
use anyhow::{bail, Result};
use event::{Event, PacketEvent};
use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};
use serde::Deserialize;

/// `[sinks.NAME] type = "pcap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapSinkConfig {
    pub inputs: Vec<String>,
    /// The capture file to append to; `-` is standard output.
    pub path: String,
    /// `linux_sll2` (default) or `raw` (ulogd2's).
    #[serde(default)]
    pub linktype: Linktype,
    #[serde(default = "crate::pipeline::default_queue_events")]
    pub queue_max_events: u64,
    #[serde(default = "crate::pipeline::default_queue_bytes")]
    pub queue_max_bytes: crate::units::ByteSize,
    /// Flush after every batch (default true).
    #[serde(default = "yes")]
    pub flush: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linktype {
    #[default]
    LinuxSll2,
    Raw,
}

impl Linktype {
    fn number(self) -> u32 {
        match self {
            Linktype::LinuxSll2 => capture::LINKTYPE_LINUX_SLL2,
            Linktype::Raw => capture::LINKTYPE_RAW,
        }
    }
}

/// The largest packet NFLOG hands over (its copy range), and so the capture's snap length.
const SNAPLEN: u32 = 0xffff;

/// Packets as capture records (little-endian, microseconds).
pub struct PcapRecords {
    linktype: Linktype,
}

impl PcapRecords {
    pub fn new(linktype: Linktype) -> Self {
        PcapRecords { linktype }
    }

    fn packet(&self, ev: &PacketEvent, out: &mut Vec<u8>) -> bool {
        let Some(bytes) = ev.payload.as_deref() else {
            return false;
        };
        let ethertype = capture::ethertype_of(ev);
        let link_len = match self.linktype {
            Linktype::LinuxSll2 => 20,
            // LINKTYPE_RAW carries IP only.
            Linktype::Raw
                if ethertype == packet::ethertype::IPV4 || ethertype == packet::ethertype::IPV6 =>
            {
                0
            }
            Linktype::Raw => return false,
        };
        let captured = bytes.len().min(SNAPLEN as usize - link_len);
        let wire = capture::wire_len(ev, bytes.len()) + link_len;
        let secs = u32::try_from(ev.time.secs.max(0)).unwrap_or(u32::MAX);
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&ev.time.micros.to_le_bytes());
        out.extend_from_slice(&((captured + link_len) as u32).to_le_bytes());
        out.extend_from_slice(&(wire as u32).to_le_bytes());
        if self.linktype == Linktype::LinuxSll2 {
            capture::sll2_header(ev, out);
        }
        out.extend_from_slice(&bytes[..captured]);
        true
    }

    fn header(&self) -> PcapHeader {
        PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: SNAPLEN,
            datalink: DataLink::from(self.linktype.number()),
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::Little,
        }
    }
}

impl Records for PcapRecords {
    fn append(&mut self, ev: &Event, out: &mut Vec<u8>) -> bool {
        match ev {
            Event::Packet(p) => self.packet(p, out),
            _ => false,
        }
    }

    fn file_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        let _ = self.header().write_to(&mut out);
        out
    }

    fn check_existing(&self, head: &[u8]) -> Result<()> {
        let ours = self.header();
        match PcapHeader::from_slice(head) {
            Ok((_, h))
                if h.datalink == ours.datalink
                    && h.endianness == ours.endianness
                    && h.ts_resolution == ours.ts_resolution => Ok(()),
            Ok((_, h)) => bail!(
                "it is a capture of link type {} ({:?}, {:?}), not {}: move it away or choose its linktype",
                u32::from(h.datalink),
                h.ts_resolution,
                h.endianness,
                self.linktype.number()
            ),
            Err(e) => bail!("it is not a pcap capture ({e}): move it away"),
        }
    }
}

impl super::Sink for PcapSinkConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn queue_limits(&self) -> crate::pipeline::QueueLimits {
        crate::pipeline::QueueLimits {
            events: self.queue_max_events,
            bytes: self.queue_max_bytes.0,
        }
    }

    fn takes_payload(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        if self.path.is_empty() {
            bail!("path: empty; give a file path or \"-\" for standard output");
        }
        Ok(())
    }

    fn spawn(&self, ctx: super::SinkContext) -> Result<std::thread::JoinHandle<()>> {
        let what = format!("packets (pcap, link type {:?})", self.linktype);
        crate::sinks::file::spawn_writer(
            &ctx.name,
            crate::sinks::file::Writer {
                path: &self.path,
                flush: self.flush,
                rotation: None,
            },
            &what,
            Box::new(PcapRecords::new(self.linktype)),
            ctx.queue,
            ctx.counters,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_of_another_link_type_is_not_appended_to() {
        let raw = PcapRecords::new(Linktype::Raw);
        let sll2 = PcapRecords::new(Linktype::LinuxSll2);
        assert!(raw.check_existing(&raw.file_header()).is_ok());
        let e = sll2.check_existing(&raw.file_header()).unwrap_err();
        assert!(e.to_string().contains("link type 101"), "{e}");
        assert!(raw.check_existing(b"not a capture at all, no").is_err());
    }

    #[test]
    fn records_without_bytes_are_not_written() {
        let mut r = PcapRecords::new(Linktype::LinuxSll2);
        let mut out = Vec::new();
        assert!(!r.append(&Event::Packet(PacketEvent::default()), &mut out));
        assert!(out.is_empty());
    }
}
