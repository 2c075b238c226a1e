//! Captures (libpcap files): the link layers a packet is framed in, both ways. The pcap sink
//! writes LINKTYPE_LINUX_SLL2 (what `tcpdump -i any` writes: the ethertype, the interface, the
//! direction and the link-layer source address, for IPv4, IPv6 and ARP alike) or ulogd2's
//! LINKTYPE_RAW; the pcap source reads those and Ethernet, Linux cooked v1 and raw IPv4/IPv6.

use event::{family, LinkHeader, PacketEvent, ARPHRD_ETHER};
use packet::ethertype;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const SLL2_LEN: usize = 20;
const SLL_LEN: usize = 16;
const ARPHRD_NONE: u16 = 0xfffe;

/// Linux packet types (PACKET_*), as cooked captures carry them.
const PACKET_HOST: u8 = 0;
const PACKET_BROADCAST: u8 = 1;
const PACKET_MULTICAST: u8 = 2;
const PACKET_OUTGOING: u8 = 4;

/// The ethertype a record's payload starts with.
pub fn ethertype_of(ev: &PacketEvent) -> u16 {
    match ev.family {
        family::IPV4 => ethertype::IPV4,
        family::IPV6 => ethertype::IPV6,
        family::ARP => ethertype::ARP,
        _ => ev.hw_protocol,
    }
}

/// The LINKTYPE_LINUX_SLL2 header for a logged packet.
pub fn sll2_header(ev: &PacketEvent, out: &mut Vec<u8>) {
    let link = ev.link.as_ref().filter(|l| !l.header.is_empty());
    let ifindex = ev
        .indev
        .as_ref()
        .or(ev.outdev.as_ref())
        .and_then(|i| i.index)
        .unwrap_or(0);
    let hwtype = link
        .and_then(|l| l.hwtype)
        .or_else(|| ev.indev.as_ref().and_then(|i| i.hwtype))
        .unwrap_or(if link.is_some() {
            ARPHRD_ETHER
        } else {
            ARPHRD_NONE
        });
    let dst = link.and_then(|l| l.header.get(..6));
    let packet_type = match (ev.indev.is_some(), dst) {
        (false, _) if ev.outdev.is_some() => PACKET_OUTGOING,
        (_, Some(d)) if d.iter().all(|&b| b == 0xff) => PACKET_BROADCAST,
        (_, Some(d)) if d[0] & 1 == 1 => PACKET_MULTICAST,
        _ => PACKET_HOST,
    };
    let mut addr = [0u8; 8];
    let addr_len = match (link.and_then(|l| l.hwaddr.as_ref()), link) {
        (Some(a), _) => {
            addr[..a.len().min(8)].copy_from_slice(&a[..a.len().min(8)]);
            a.len().min(8)
        }
        (None, Some(l)) if l.header.len() >= 12 => {
            addr[..6].copy_from_slice(&l.header[6..12]);
            6
        }
        _ => 0,
    };
    out.extend_from_slice(&ethertype_of(ev).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&hwtype.to_be_bytes());
    out.push(packet_type);
    out.push(addr_len as u8);
    out.extend_from_slice(&addr);
}

/// A captured frame taken apart: what the link layer says and where the packet starts.
pub struct Frame<'a> {
    pub ethertype: u16,
    pub ifindex: Option<u32>,
    pub outgoing: bool,
    pub link: Option<LinkHeader>,
    pub payload: &'a [u8],
}

/// Takes a frame of `linktype` apart; None for a link type not read here or a frame shorter
/// than its link header.
pub fn frame(linktype: u32, data: &[u8]) -> Option<Frame<'_>> {
    let by_version = |p: &[u8]| match p.first().map(|b| b >> 4) {
        Some(6) => ethertype::IPV6,
        _ => ethertype::IPV4,
    };
    match linktype {
        LINKTYPE_ETHERNET => {
            let eth = packet::ethernet::parse(data)?;
            let mut header = arrayvec::ArrayVec::new();
            let _ = header.try_extend_from_slice(data.get(..packet::ethernet::HEADER_LEN)?);
            // The kernel hands NFLOG a received frame's header without its VLAN tags, and the
            // tags stay in the payload's view (event::PacketEvent::vlans); the same here.
            Some(Frame {
                ethertype: u16::from_be_bytes([data[12], data[13]]),
                ifindex: None,
                outgoing: false,
                link: Some(LinkHeader {
                    hwtype: Some(ARPHRD_ETHER),
                    header,
                    hwaddr: Some(eth.src.iter().copied().collect()),
                    vlan: None,
                }),
                payload: &data[packet::ethernet::HEADER_LEN..],
            })
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(Frame {
            ethertype: by_version(data),
            ifindex: None,
            outgoing: false,
            link: None,
            payload: data,
        }),
        LINKTYPE_LINUX_SLL2 => {
            let h = data.get(..SLL2_LEN)?;
            let addr_len = (h[11] as usize).min(8);
            Some(Frame {
                ethertype: u16::from_be_bytes([h[0], h[1]]),
                ifindex: Some(u32::from_be_bytes([h[4], h[5], h[6], h[7]])).filter(|&i| i != 0),
                outgoing: h[10] == PACKET_OUTGOING,
                link: cooked_link(u16::from_be_bytes([h[8], h[9]]), &h[12..12 + addr_len]),
                payload: &data[SLL2_LEN..],
            })
        }
        LINKTYPE_LINUX_SLL => {
            let h = data.get(..SLL_LEN)?;
            let addr_len = (u16::from_be_bytes([h[4], h[5]]) as usize).min(8);
            Some(Frame {
                ethertype: u16::from_be_bytes([h[14], h[15]]),
                ifindex: None,
                outgoing: u16::from_be_bytes([h[0], h[1]]) == PACKET_OUTGOING as u16,
                link: cooked_link(u16::from_be_bytes([h[2], h[3]]), &h[6..6 + addr_len]),
                payload: &data[SLL_LEN..],
            })
        }
        _ => None,
    }
}

/// A cooked capture keeps the source address only, not the header.
fn cooked_link(hwtype: u16, addr: &[u8]) -> Option<LinkHeader> {
    (!addr.is_empty()).then(|| LinkHeader {
        hwtype: Some(hwtype),
        header: Default::default(),
        hwaddr: Some(addr.iter().copied().collect()),
        vlan: None,
    })
}

/// The length the packet had on the wire, from its own header where it says (what ulogd2's
/// PCAP output writes too); else what was captured.
pub fn wire_len(ev: &PacketEvent, captured: usize) -> usize {
    let from_header = match &ev.headers.network {
        packet::Network::Ipv4(ip) => ip.total_len as usize,
        packet::Network::Ipv6(ip) => ip.payload_len as usize + 40,
        _ => 0,
    };
    from_header.max(captured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use event::Interface;
    use std::sync::Arc;

    #[test]
    fn sll2_header_round_trips_through_the_reader() {
        let mut header = arrayvec::ArrayVec::new();
        header
            .try_extend_from_slice(&[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 7, 0x08, 0x06,
            ])
            .unwrap();
        let ev = PacketEvent {
            family: family::ARP,
            indev: Some(Interface {
                index: Some(5),
                name: Arc::from("eth0"),
                hwtype: Some(1),
            }),
            link: Some(LinkHeader {
                hwtype: Some(1),
                header,
                hwaddr: None,
                vlan: None,
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        sll2_header(&ev, &mut out);
        assert_eq!(out.len(), SLL2_LEN);
        out.extend_from_slice(b"payload");
        let f = frame(LINKTYPE_LINUX_SLL2, &out).unwrap();
        assert_eq!(f.ethertype, ethertype::ARP);
        assert_eq!(f.ifindex, Some(5));
        assert!(!f.outgoing);
        assert_eq!(out[10], PACKET_BROADCAST);
        assert_eq!(
            f.link.unwrap().hwaddr.unwrap().as_slice(),
            &[2, 0, 0, 0, 0, 7]
        );
        assert_eq!(f.payload, b"payload");
    }

    #[test]
    fn short_frames_are_refused_not_read_past() {
        for lt in [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2] {
            assert!(frame(lt, &[0u8; 5]).is_none(), "{lt}");
        }
        assert!(frame(147, &[0u8; 64]).is_none());
    }
}
