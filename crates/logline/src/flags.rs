/// The LOG target's option flags (`NF_LOG_*` in `linux/netfilter/nf_log.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct LogFlags(pub u8);

impl LogFlags {
    /// `--log-tcp-sequence` / nft `flags tcp sequence`: SEQ= ACK=.
    pub const TCPSEQ: u8 = 0x01;
    /// `--log-tcp-options` / `flags tcp options`: TCP OPT (…).
    pub const TCPOPT: u8 = 0x02;
    /// `--log-ip-options` / `flags ip options`: IPv4 OPT (…), IPv6 OPT ( … ) and AH/ESP SPI.
    pub const IPOPT: u8 = 0x04;
    /// `--log-uid` / `flags skuid`: UID= GID=.
    pub const UID: u8 = 0x08;
    /// `--log-macdecode` / `flags ether`: MACSRC= MACDST= MACPROTO= instead of MAC=.
    pub const MACDECODE: u8 = 0x20;
    /// nft `flags all`.
    pub const ALL: LogFlags = LogFlags(0x2f);
    /// What conntrack-invalid and TRACE lines use (`NF_LOG_DEFAULT_MASK`).
    pub const DEFAULT_MASK: LogFlags = LogFlags(0x0f);

    pub fn has(self, f: u8) -> bool {
        self.0 & f != 0
    }

    /// Parses a flag name as nft or iptables spells it.
    pub fn from_name(name: &str) -> Option<LogFlags> {
        Some(LogFlags(match name {
            "tcp-sequence" | "tcp sequence" => Self::TCPSEQ,
            "tcp-options" | "tcp options" => Self::TCPOPT,
            "ip-options" | "ip options" => Self::IPOPT,
            "uid" | "skuid" => Self::UID,
            "macdecode" | "ether" => Self::MACDECODE,
            "all" => Self::ALL.0,
            _ => return None,
        }))
    }
}

impl std::ops::BitOr for LogFlags {
    type Output = LogFlags;
    fn bitor(self, o: LogFlags) -> LogFlags {
        LogFlags(self.0 | o.0)
    }
}
