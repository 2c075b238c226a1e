//! A classic BPF socket filter for the conntrack event socket: the kernel drops the events of
//! flows a source's filters reject, so they cost no wakeup, copy or parse.
//!
//! It walks the message's attributes with the kernel's netlink helpers for socket filters
//! (SKF_AD_NLATTR, SKF_AD_NLATTR_NEST), as libnetfilter_conntrack's filters do: original
//! tuple → proto (number, destination port) and → ip (source, destination). Each list given
//! must match; a message that is not a conntrack event, or has no original tuple, passes (the
//! userspace filter still applies). A filter that would not fit classic BPF's 8-bit jumps is
//! not built (None): the userspace filter then does all the work.

use std::net::IpAddr;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const AND: u16 = 0x50;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const K: u16 = 0x00;
const TAX: u16 = 0x00;
const SKF_AD_OFF: i32 = -0x1000;
const SKF_AD_NLATTR: i32 = 12;
const SKF_AD_NLATTR_NEST: i32 = 16;

/// Where a conntrack message's attributes start: after nlmsghdr (16) and nfgenmsg (4).
const ATTRS: u32 = 20;
const NFNL_SUBSYS_CTNETLINK: u32 = 1;

// Attribute types (linux/netfilter/nfnetlink_conntrack.h).
const CTA_TUPLE_ORIG: u32 = 1;
const CTA_TUPLE_IP: u32 = 1;
const CTA_TUPLE_PROTO: u32 = 2;
const CTA_PROTO_NUM: u32 = 1;
const CTA_PROTO_DST_PORT: u32 = 3;

/// One instruction as the kernel takes it (struct sock_filter).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What the filter accepts; an empty list accepts everything.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    pub src: Vec<(IpAddr, u8)>,
    pub dst: Vec<(IpAddr, u8)>,
    pub protocols: Vec<u8>,
    pub dst_ports: Vec<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Label(usize);

enum Op {
    Ins(u16, u32),
    /// `A == k`: to `yes`, else to `no` (None: the next instruction).
    Jeq(u32, Option<Label>, Option<Label>),
    Ja(Label),
    Here(Label),
}

#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn ins(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Ins(code, k));
    }
    fn ld_imm(&mut self, k: u32) {
        self.ins(LD | IMM, k);
    }
    fn ldx_imm(&mut self, k: u32) {
        self.ins(LDX | IMM, k);
    }
    fn ld_mem(&mut self, slot: u32) {
        self.ins(LD | MEM, slot);
    }
    fn st(&mut self, slot: u32) {
        self.ins(ST, slot);
    }
    /// A = offset of the attribute of type X from offset A (0 if absent).
    fn nlattr(&mut self) {
        self.ins(LD | W | ABS, (SKF_AD_OFF + SKF_AD_NLATTR) as u32);
    }
    /// A = offset of the attribute of type X inside the nested attribute at A (0 if absent).
    fn nlattr_nest(&mut self) {
        self.ins(LD | W | ABS, (SKF_AD_OFF + SKF_AD_NLATTR_NEST) as u32);
    }
    fn jeq(&mut self, k: u32, yes: Option<Label>, no: Option<Label>) {
        self.ops.push(Op::Jeq(k, yes, no));
    }
    fn ja(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }
    fn here(&mut self, l: Label) {
        self.ops.push(Op::Here(l));
    }

    /// Resolves the labels; None if a conditional jump is farther than 255 instructions.
    fn build(self) -> Option<Vec<SockFilter>> {
        let mut at = vec![0usize; self.labels];
        let mut n = 0;
        for op in &self.ops {
            match op {
                Op::Here(l) => at[l.0] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for op in &self.ops {
            let pc = out.len();
            let rel = |l: Option<Label>| -> Option<u8> {
                match l {
                    None => Some(0),
                    Some(l) => u8::try_from(at[l.0].checked_sub(pc + 1)?).ok(),
                }
            };
            match op {
                Op::Here(_) => continue,
                Op::Ins(code, k) => out.push(SockFilter {
                    code: *code,
                    jt: 0,
                    jf: 0,
                    k: *k,
                }),
                Op::Jeq(k, yes, no) => out.push(SockFilter {
                    code: JMP | JEQ | K,
                    jt: rel(*yes)?,
                    jf: rel(*no)?,
                    k: *k,
                }),
                Op::Ja(l) => out.push(SockFilter {
                    code: JMP | JA,
                    jt: 0,
                    jf: 0,
                    k: at[l.0].checked_sub(pc + 1)? as u32,
                }),
            }
        }
        (out.len() <= 4096).then_some(out)
    }
}

fn mask_words(prefix: u8, words: usize) -> Vec<u32> {
    (0..words)
        .map(|i| {
            let bits = (prefix as i32 - 32 * i as i32).clamp(0, 32) as u32;
            if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            }
        })
        .collect()
}

fn addr_words(ip: IpAddr) -> Vec<u32> {
    match ip {
        IpAddr::V4(a) => vec![u32::from_be_bytes(a.octets())],
        IpAddr::V6(a) => a
            .octets()
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Emits: the address attribute (`v4_type`/`v6_type` in the tuple's ip nest, offset in M[2])
/// lies in one of `nets`, else to `drop`.
fn match_nets(a: &mut Asm, nets: &[(IpAddr, u8)], v4_type: u32, v6_type: u32, drop: Label) {
    let ok = a.label();
    for (v6, attr) in [(false, v4_type), (true, v6_type)] {
        let family: Vec<_> = nets.iter().filter(|(ip, _)| ip.is_ipv6() == v6).collect();
        let next_family = a.label();
        if family.is_empty() {
            a.here(next_family);
            continue;
        }
        a.ld_mem(2);
        a.ldx_imm(attr);
        a.nlattr_nest();
        a.jeq(0, Some(next_family), None);
        a.st(3);
        for (ip, prefix) in family {
            let next_net = a.label();
            let (addr, mask) = (addr_words(*ip), mask_words(*prefix, if v6 { 4 } else { 1 }));
            for (i, (w, m)) in addr.iter().zip(&mask).enumerate() {
                if *m == 0 {
                    continue;
                }
                a.ld_mem(3);
                a.ins(MISC | TAX, 0);
                a.ins(LD | W | IND, 4 + 4 * i as u32);
                a.ins(ALU | AND | K, *m);
                a.jeq(w & m, None, Some(next_net));
            }
            a.ja(ok);
            a.here(next_net);
        }
        a.here(next_family);
    }
    a.ja(drop);
    a.here(ok);
}

/// The filter program for `accept`; None when there is nothing to filter or it would not fit.
pub fn program(accept: &Accept) -> Option<Vec<SockFilter>> {
    if accept.src.is_empty()
        && accept.dst.is_empty()
        && accept.protocols.is_empty()
        && accept.dst_ports.is_empty()
    {
        return None;
    }
    let mut a = Asm::default();
    let (pass, drop) = (a.label(), a.label());
    // Only conntrack messages are looked at: the subsystem is the high byte of nlmsg_type,
    // which the header holds in host order (filter loads read network order).
    let subsys_byte = if cfg!(target_endian = "little") { 5 } else { 4 };
    a.ins(LD | B | ABS, subsys_byte);
    a.jeq(NFNL_SUBSYS_CTNETLINK, None, Some(pass));
    a.ld_imm(ATTRS);
    a.ldx_imm(CTA_TUPLE_ORIG);
    a.nlattr();
    a.jeq(0, Some(pass), None);
    a.st(0);
    if !accept.protocols.is_empty() || !accept.dst_ports.is_empty() {
        a.ld_mem(0);
        a.ldx_imm(CTA_TUPLE_PROTO);
        a.nlattr_nest();
        a.jeq(0, Some(drop), None);
        a.st(1);
    }
    for (attr, width, values) in [
        (
            CTA_PROTO_NUM,
            B,
            accept
                .protocols
                .iter()
                .map(|&p| p as u32)
                .collect::<Vec<_>>(),
        ),
        (
            CTA_PROTO_DST_PORT,
            H,
            accept.dst_ports.iter().map(|&p| p as u32).collect(),
        ),
    ] {
        if values.is_empty() {
            continue;
        }
        let ok = a.label();
        a.ld_mem(1);
        a.ldx_imm(attr);
        a.nlattr_nest();
        a.jeq(0, Some(drop), None);
        a.ins(MISC | TAX, 0);
        a.ins(LD | width | IND, 4);
        for v in values {
            a.jeq(v, Some(ok), None);
        }
        a.ja(drop);
        a.here(ok);
    }
    if !accept.src.is_empty() || !accept.dst.is_empty() {
        a.ld_mem(0);
        a.ldx_imm(CTA_TUPLE_IP);
        a.nlattr_nest();
        a.jeq(0, Some(drop), None);
        a.st(2);
        if !accept.src.is_empty() {
            match_nets(&mut a, &accept.src, 1, 3, drop);
        }
        if !accept.dst.is_empty() {
            match_nets(&mut a, &accept.dst, 2, 4, drop);
        }
    }
    a.here(pass);
    a.ins(RET | K, u32::MAX);
    a.here(drop);
    a.ins(RET | K, 0);
    a.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_filter_builds_nothing() {
        assert!(program(&Accept::default()).is_none());
    }

    #[test]
    fn jumps_land_inside_the_program_and_it_ends_in_returns() {
        let p = program(&Accept {
            src: vec![
                ("10.0.0.0".parse().unwrap(), 8),
                ("fd00::".parse().unwrap(), 64),
            ],
            dst: vec![("192.0.2.1".parse().unwrap(), 32)],
            protocols: vec![6, 17],
            dst_ports: vec![22, 443],
        })
        .unwrap();
        let n = p.len();
        assert_eq!(
            p[n - 1],
            SockFilter {
                code: RET | K,
                jt: 0,
                jf: 0,
                k: 0
            }
        );
        assert_eq!(p[n - 2].k, u32::MAX);
        for (pc, i) in p.iter().enumerate() {
            if i.code & 0x07 == JMP {
                let far = if i.code == JMP | JA {
                    i.k as usize
                } else {
                    i.jt.max(i.jf) as usize
                };
                assert!(pc + 1 + far < n, "jump at {pc} leaves the program");
            }
        }
    }

    #[test]
    fn too_many_networks_do_not_fit() {
        let many: Vec<_> = (0..200u8)
            .map(|i| (IpAddr::from([10, i, 0, 0]), 16))
            .collect();
        assert!(program(&Accept {
            src: many,
            ..Default::default()
        })
        .is_none());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_words(8, 1), [0xff00_0000]);
        assert_eq!(mask_words(64, 4), [u32::MAX, u32::MAX, 0, 0]);
        assert_eq!(mask_words(36, 4), [u32::MAX, 0xf000_0000, 0, 0]);
    }
}
