//! Which flows a conntrack source keeps, by the original tuple (ulogd2's accept_*_filter, plus
//! the service port): source and destination networks, protocols, destination ports. An empty
//! list accepts everything; the lists that are given must all match. Flows left out are counted
//! (`ignored`), neither recorded nor kept in the table.

use crate::units::Protocol;
use anyhow::Result;
use event::Conntrack;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    src: Vec<IpNet>,
    dst: Vec<IpNet>,
    protocols: Vec<u8>,
    ports: Vec<u16>,
}

impl FlowFilter {
    pub fn new(
        src: &[IpNet],
        dst: &[IpNet],
        protocols: &[Protocol],
        ports: &[u16],
    ) -> Result<Self> {
        Ok(FlowFilter {
            src: src.to_vec(),
            dst: dst.to_vec(),
            protocols: protocols
                .iter()
                .map(Protocol::number)
                .collect::<Result<_>>()?,
            ports: ports.to_vec(),
        })
    }

    /// The same lists for the kernel's socket filter (nfnetlink::ctfilter).
    pub fn for_kernel(&self) -> nfnetlink::ctfilter::Accept {
        let nets = |v: &[IpNet]| v.iter().map(|n| (n.network(), n.prefix_len())).collect();
        nfnetlink::ctfilter::Accept {
            src: nets(&self.src),
            dst: nets(&self.dst),
            protocols: self.protocols.clone(),
            dst_ports: self.ports.clone(),
        }
    }

    pub fn accepts(&self, ct: &Conntrack) -> bool {
        let o = &ct.orig;
        let net_ok = |nets: &[IpNet], ip: Option<std::net::IpAddr>| {
            nets.is_empty() || ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
        };
        net_ok(&self.src, o.src)
            && net_ok(&self.dst, o.dst)
            && (self.protocols.is_empty() || self.protocols.contains(&o.protocol))
            && (self.ports.is_empty() || o.dport.is_some_and(|p| self.ports.contains(&p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfnetlink::ctnetlink::Tuple;

    fn flow(src: &str, dst: &str, protocol: u8, dport: Option<u16>) -> Conntrack {
        Conntrack {
            orig: Tuple {
                src: Some(src.parse().unwrap()),
                dst: Some(dst.parse().unwrap()),
                protocol,
                sport: dport.map(|_| 40000),
                dport,
                ..Tuple::default()
            },
            ..Conntrack::default()
        }
    }

    #[test]
    fn every_given_list_must_match() {
        let f = FlowFilter::new(
            &["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            &[],
            &[Protocol::Name("tcp".into()), Protocol::Name("udp".into())],
            &[22, 443],
        )
        .unwrap();
        assert!(f.accepts(&flow("10.1.2.3", "192.0.2.1", 6, Some(443))));
        assert!(f.accepts(&flow("fd00::5", "2001:db8::1", 17, Some(22))));
        assert!(
            !f.accepts(&flow("192.168.1.1", "192.0.2.1", 6, Some(443))),
            "source outside"
        );
        assert!(
            !f.accepts(&flow("10.1.2.3", "192.0.2.1", 6, Some(80))),
            "port"
        );
        assert!(
            !f.accepts(&flow("10.1.2.3", "192.0.2.1", 1, None)),
            "protocol, no port"
        );
    }

    #[test]
    fn empty_filter_accepts_all() {
        assert!(FlowFilter::default().accepts(&flow("192.0.2.1", "192.0.2.2", 47, None)));
    }
}
