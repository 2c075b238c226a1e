//! One NFLOG packet message → one `PacketEvent`.

use super::ifnames::IfNames;
use crate::transforms::action::ActionResolver;
use arrayvec::ArrayVec;
use event::{family, LinkHeader, PacketEvent, Timestamp};
use nfnetlink::nflog::Packet;
use packet::ethertype;
use std::collections::HashMap;
use std::sync::Arc;

/// State kept across packets by one source: interned prefixes, interface names, verdicts.
pub struct Decoder {
    pub ifnames: IfNames,
    pub actions: ActionResolver,
    pub label: u8,
    /// Keep each packet's bytes on its record (a pcap sink writes them).
    pub keep_payload: bool,
    prefixes: HashMap<Vec<u8>, Arc<str>>,
    /// The last prefix seen: consecutive packets usually share it.
    last_prefix: Option<(Vec<u8>, Arc<str>)>,
}

impl Decoder {
    pub fn new(ifnames: IfNames, actions: ActionResolver, label: u8) -> Self {
        Decoder {
            ifnames,
            actions,
            label,
            keep_payload: false,
            prefixes: HashMap::new(),
            last_prefix: None,
        }
    }

    fn prefix(&mut self, raw: &[u8]) -> Arc<str> {
        if let Some((b, p)) = &self.last_prefix {
            if b == raw {
                return p.clone();
            }
        }
        let p = self.intern(raw);
        self.last_prefix = Some((raw.to_vec(), p.clone()));
        p
    }

    fn intern(&mut self, raw: &[u8]) -> Arc<str> {
        if let Some(p) = self.prefixes.get(raw) {
            return p.clone();
        }
        if self.prefixes.len() > 4096 {
            self.prefixes.clear();
        }
        let p: Arc<str> = Arc::from(String::from_utf8_lossy(raw).as_ref());
        self.prefixes.insert(raw.to_vec(), p.clone());
        p
    }

    /// Builds the event; `now` stands in for packets the kernel did not timestamp.
    pub fn event(&mut self, p: &Packet, now: Timestamp) -> PacketEvent {
        let time = match p.timestamp {
            Some((s, us)) if s != 0 => Timestamp {
                secs: s as i64,
                micros: us.min(999_999) as u32,
            },
            _ => now,
        };
        let prefix = self.prefix(p.prefix.unwrap_or_default());
        let action = self.actions.resolve(&prefix);
        let link = p.hwheader.map(|h| {
            let mut header = ArrayVec::new();
            let _ = header.try_extend_from_slice(&h[..h.len().min(32)]);
            LinkHeader {
                hwtype: p.hwtype,
                header,
                hwaddr: p.hwaddr.map(|a| a.iter().copied().take(8).collect()),
                vlan: p.vlan,
            }
        });
        let mut payload = p.payload.unwrap_or_default();
        if p.family == family::ARP && p.hook == ARP_OUT {
            payload = without_ethernet_header(payload);
        }
        let kind = match p.family {
            family::IPV4 => ethertype::IPV4,
            family::IPV6 => ethertype::IPV6,
            family::ARP => ethertype::ARP,
            _ => p.hw_protocol,
        };
        let headers = packet::decode_ethertype(kind, payload);
        let ct =
            p.ct.and_then(|c| nfnetlink::ctnetlink::parse(nfnetlink::Attrs::new(c)).ok())
                .map(Box::new);
        PacketEvent {
            time,
            family: p.family,
            hook: Some(p.hook),
            group: Some(p.group),
            hw_protocol: p.hw_protocol,
            prefix,
            action,
            label: self.label,
            mark: p.mark.unwrap_or(0),
            uid: p.uid,
            gid: p.gid,
            seq: p.seq,
            seq_global: p.seq_global,
            indev: p.indev.map(|i| self.ifnames.get(i)),
            outdev: p.outdev.map(|i| self.ifnames.get(i)),
            physindev: p.physindev.map(|i| self.ifnames.get(i)),
            physoutdev: p.physoutdev.map(|i| self.ifnames.get(i)),
            link,
            payload_len: payload.len() as u32,
            headers,
            ct,
            ct_info: p.ct_info,
            host: None,
            level: None,
            log_flags: None,
            enrich: None,
            payload: self.keep_payload.then(|| Arc::from(payload)),
            partial: false,
            original: None,
            trace: None,
        }
    }
}

const ARP_OUT: u8 = 1;

/// At the arp family's output hook the kernel has already put the link-layer header in front
/// of the ARP packet, and NFLOG copies from there; the kernel's own LOG starts at the ARP
/// header. An Ethernet header announcing ARP is skipped; anything else is left as it is.
fn without_ethernet_header(payload: &[u8]) -> &[u8] {
    let eth = packet::ethernet::HEADER_LEN;
    match payload.get(12..14) {
        Some([0x08, 0x06]) if payload.len() >= eth + 8 => &payload[eth..],
        _ => payload,
    }
}
