//! nf_tables trace events (NFT_MSG_TRACE on NFNLGRP_NFTRACE): one message per rule a traced
//! packet matched, per policy applied and per return, each carrying the packet's trace id.

use crate::attr::Attrs;
use crate::message::Message;
use crate::nftables::NFNL_SUBSYS_NFTABLES;
use crate::{Error, Result};

pub const NFNLGRP_NFTRACE: u32 = 9;
pub const NFT_MSG_TRACE: u8 = 17;

mod attr {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const TYPE: u16 = 4;
    pub const VERDICT: u16 = 5;
    pub const ID: u16 = 6;
    pub const LL_HEADER: u16 = 7;
    pub const NETWORK_HEADER: u16 = 8;
    pub const TRANSPORT_HEADER: u16 = 9;
    pub const IIF: u16 = 10;
    pub const IIFTYPE: u16 = 11;
    pub const OIF: u16 = 12;
    pub const OIFTYPE: u16 = 13;
    pub const MARK: u16 = 14;
    pub const NFPROTO: u16 = 15;
    pub const POLICY: u16 = 16;
    // Kernels from 6.x on add the conntrack entry's state.
    pub const CT_ID: u16 = 18;
    pub const CT_DIRECTION: u16 = 19;
    pub const CT_STATUS: u16 = 20;
    pub const CT_STATE: u16 = 21;
}

/// What a trace event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceType {
    /// A rule matched (its verdict may be `continue`).
    Rule,
    /// The base chain's policy decided.
    Policy,
    /// The end of a chain reached: back to the chain that jumped.
    Return,
    Unknown(u32),
}

/// A verdict as nf_tables codes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
    Stolen,
    Queue,
    Repeat,
    Continue,
    Break,
    Jump(String),
    Goto(String),
    Return,
    Other(i32),
}

impl Verdict {
    fn from_code(code: i32, chain: Option<String>) -> Verdict {
        match code {
            0 => Verdict::Drop,
            1 => Verdict::Accept,
            2 => Verdict::Stolen,
            3 => Verdict::Queue,
            4 => Verdict::Repeat,
            -1 => Verdict::Continue,
            -2 => Verdict::Break,
            -3 => Verdict::Jump(chain.unwrap_or_default()),
            -4 => Verdict::Goto(chain.unwrap_or_default()),
            -5 => Verdict::Return,
            // A queue verdict carries its queue number in the upper bits.
            c if c & 0xff == 3 => Verdict::Queue,
            c => Verdict::Other(c),
        }
    }

    /// As `nft monitor trace` names it: `accept`, `drop`, `jump chain`, `goto chain`…
    pub fn text(&self) -> String {
        match self {
            Verdict::Drop => "drop".into(),
            Verdict::Accept => "accept".into(),
            Verdict::Stolen => "stolen".into(),
            Verdict::Queue => "queue".into(),
            Verdict::Repeat => "repeat".into(),
            Verdict::Continue => "continue".into(),
            Verdict::Break => "break".into(),
            Verdict::Jump(c) => format!("jump {c}"),
            Verdict::Goto(c) => format!("goto {c}"),
            Verdict::Return => "return".into(),
            Verdict::Other(c) => format!("verdict {c}"),
        }
    }

    /// Whether the packet's fate is sealed here (no later hook sees it).
    pub fn is_final(&self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Stolen | Verdict::Queue)
    }
}

/// One trace message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceEvent {
    /// The table's family (NFPROTO_*).
    pub family: u8,
    pub id: u32,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    pub kind: Option<TraceType>,
    pub verdict: Option<Verdict>,
    /// The policy's verdict code, for a policy event.
    pub policy: Option<u32>,
    pub nfproto: Option<u32>,
    pub iif: Option<u32>,
    pub iiftype: Option<u16>,
    pub oif: Option<u32>,
    pub oiftype: Option<u16>,
    pub mark: Option<u32>,
    pub ll_header: Option<Vec<u8>>,
    pub network_header: Option<Vec<u8>>,
    pub transport_header: Option<Vec<u8>>,
    pub ct_id: Option<u32>,
    pub ct_direction: Option<u8>,
    pub ct_status: Option<u32>,
    pub ct_state: Option<u32>,
}

impl Default for TraceType {
    fn default() -> Self {
        TraceType::Unknown(0)
    }
}

/// Decodes a trace message; None for another nf_tables message (a ruleset change).
pub fn parse(m: &Message) -> Option<Result<TraceEvent>> {
    if m.subsys() != NFNL_SUBSYS_NFTABLES || m.subtype() != NFT_MSG_TRACE {
        return None;
    }
    Some(parse_trace(m))
}

fn parse_trace(m: &Message) -> Result<TraceEvent> {
    let (family, _, _, attrs) = m.nfgen()?;
    let mut t = TraceEvent {
        family,
        ..TraceEvent::default()
    };
    let mut has_id = false;
    for a in attrs {
        let a = a?;
        let bytes = || Some(a.data.to_vec());
        match a.kind {
            attr::TABLE => t.table = String::from_utf8_lossy(a.cstr()).into_owned(),
            attr::CHAIN => t.chain = String::from_utf8_lossy(a.cstr()).into_owned(),
            attr::RULE_HANDLE => t.handle = Some(a.be64()?),
            attr::TYPE => {
                t.kind = Some(match a.be32()? {
                    1 => TraceType::Policy,
                    2 => TraceType::Return,
                    3 => TraceType::Rule,
                    n => TraceType::Unknown(n),
                })
            }
            attr::VERDICT => t.verdict = Some(verdict(a.nested())?),
            attr::ID => {
                t.id = a.be32()?;
                has_id = true;
            }
            attr::LL_HEADER => t.ll_header = bytes(),
            attr::NETWORK_HEADER => t.network_header = bytes(),
            attr::TRANSPORT_HEADER => t.transport_header = bytes(),
            attr::IIF => t.iif = Some(a.be32()?),
            attr::IIFTYPE => t.iiftype = Some(a.be16()?),
            attr::OIF => t.oif = Some(a.be32()?),
            attr::OIFTYPE => t.oiftype = Some(a.be16()?),
            attr::MARK => t.mark = Some(a.be32()?),
            attr::NFPROTO => t.nfproto = Some(a.be32()?),
            attr::POLICY => t.policy = Some(a.be32()?),
            attr::CT_ID => t.ct_id = Some(a.be32()?),
            attr::CT_DIRECTION => t.ct_direction = Some(a.u8()?),
            attr::CT_STATUS => t.ct_status = Some(a.be32()?),
            attr::CT_STATE => t.ct_state = Some(a.be32()?),
            _ => {}
        }
    }
    if !has_id {
        return Err(Error::Malformed("trace event without an id"));
    }
    Ok(t)
}

fn verdict(attrs: Attrs) -> Result<Verdict> {
    let (mut code, mut chain) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind {
            1 => code = Some(a.be32()? as i32),
            2 => chain = Some(String::from_utf8_lossy(a.cstr()).into_owned()),
            _ => {}
        }
    }
    let code = code.ok_or(Error::Malformed("verdict without a code"))?;
    Ok(Verdict::from_code(code, chain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Messages, Request};

    fn be32(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    #[test]
    fn a_rule_event_with_a_jump() {
        let mut verdict = Vec::new();
        for (kind, data) in [(1u16, be32((-3i32) as u32)), (2, b"logit\0".to_vec())] {
            let len = 4 + data.len();
            verdict.extend_from_slice(&(len as u16).to_ne_bytes());
            verdict.extend_from_slice(&kind.to_ne_bytes());
            verdict.extend_from_slice(&data);
            verdict.resize(verdict.len().next_multiple_of(4), 0);
        }
        let msg = Request::nfnl(NFNL_SUBSYS_NFTABLES, NFT_MSG_TRACE, 0, 1, 1, 0)
            .attr(attr::TABLE, b"filter\0")
            .attr(attr::CHAIN, b"input\0")
            .attr(attr::RULE_HANDLE, &7u64.to_be_bytes())
            .attr(attr::TYPE, &be32(3))
            .attr(attr::VERDICT | 0x8000, &verdict)
            .attr(attr::ID, &be32(0xdeadbeef))
            .attr(attr::IIF, &be32(2))
            .attr(attr::MARK, &be32(42))
            .finish();
        let m = Messages::new(&msg).next().unwrap().unwrap();
        let t = parse(&m).unwrap().unwrap();
        assert_eq!(t.family, 1);
        assert_eq!((t.table.as_str(), t.chain.as_str()), ("filter", "input"));
        assert_eq!(t.handle, Some(7));
        assert_eq!(t.kind, Some(TraceType::Rule));
        assert_eq!(t.verdict, Some(Verdict::Jump("logit".into())));
        assert_eq!(t.verdict.unwrap().text(), "jump logit");
        assert_eq!((t.id, t.iif, t.mark), (0xdeadbeef, Some(2), Some(42)));
    }

    #[test]
    fn an_event_without_an_id_is_refused() {
        let msg = Request::nfnl(NFNL_SUBSYS_NFTABLES, NFT_MSG_TRACE, 0, 1, 1, 0)
            .attr(attr::TABLE, b"filter\0")
            .finish();
        let m = Messages::new(&msg).next().unwrap().unwrap();
        assert!(parse(&m).unwrap().is_err());
    }
}
