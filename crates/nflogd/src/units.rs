//! Human units in the config: durations ("10ms", "1s", "5m"), sizes ("8MiB", "64k") and IP
//! protocols ("tcp" or 6).

use serde::{Deserialize, Deserializer};

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
}

fn split_unit(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = split_unit(s)
            .ok_or_else(|| format!("`{s}` is not a duration like \"10ms\" or \"2s\""))?;
        let d = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "s" | "" => std::time::Duration::from_secs(n),
            "m" | "min" => std::time::Duration::from_secs(n * 60),
            "h" => std::time::Duration::from_secs(n * 3600),
            "d" => std::time::Duration::from_secs(n * 86_400),
            _ => {
                return Err(format!(
                    "`{s}`: unknown duration unit `{unit}` (ms, s, m, h, d)"
                ))
            }
        };
        Ok(Duration(d))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) =
            split_unit(s).ok_or_else(|| format!("`{s}` is not a size like \"8MiB\""))?;
        let mult = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => return Err(format!("`{s}`: unknown size unit `{unit}` (KiB, MiB, GiB)")),
        };
        Ok(ByteSize(n.saturating_mul(mult)))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_name_alias_or_number() {
        let p = |toml_text: &str| -> anyhow::Result<u8> {
            #[derive(Deserialize)]
            struct T {
                p: Protocol,
            }
            toml::from_str::<T>(toml_text).unwrap().p.number()
        };
        assert_eq!(p("p = \"TCP\"").unwrap(), 6);
        assert_eq!(p("p = \"icmpv6\"").unwrap(), 58);
        assert_eq!(p("p = \"ipv6-icmp\"").unwrap(), 58);
        assert_eq!(p("p = \"132\"").unwrap(), 132);
        assert_eq!(p("p = 47").unwrap(), 47);
        assert!(p("p = \"tpc\"").is_err());
    }

    #[test]
    fn units() {
        assert_eq!(
            "10ms".parse::<Duration>().unwrap().0,
            std::time::Duration::from_millis(10)
        );
        assert_eq!("8MiB".parse::<ByteSize>().unwrap().0, 8 << 20);
        assert!("8 parsecs".parse::<ByteSize>().is_err());
        assert!("fast".parse::<Duration>().is_err());
    }
}

/// An IP protocol as the config gives it: a name (`tcp`, `udp`, `icmp`, `ipv6-icmp` or
/// `icmpv6`, `sctp`, `gre`, …) or a number (also as a string).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Protocol {
    Number(u8),
    Name(String),
}

impl Protocol {
    pub fn number(&self) -> anyhow::Result<u8> {
        match self {
            Protocol::Number(n) => Ok(*n),
            Protocol::Name(s) => packet::proto::by_name(s).ok_or_else(|| {
                anyhow::anyhow!("unknown protocol `{s}`; use a name such as tcp, udp, icmp, ipv6-icmp, sctp, gre, or a number")
            }),
        }
    }
}
