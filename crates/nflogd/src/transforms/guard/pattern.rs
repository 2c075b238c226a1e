//! Line patterns in a literal-token form (as syslog-ng's patterndb writes them): literal text
//! and typed fields, anchored at both ends, no regular expressions.
//!
//! - `<ADDR>` (or `<HOST>`, fail2ban's name): an IPv4 or IPv6 address, checked as one; a host
//!   name never matches, so a line cannot smuggle one into the firewall.
//! - `<PORT>`: a port number.
//! - `<*>`: any text, up to the literal that follows it (or to the end of the line).
//!
//! A `<*>` followed by a literal is matched against that literal's occurrences from the right
//! first: the text a client controls (a user name) comes before the fields the program writes
//! itself, so a user name holding `from 1.2.3.4 port 22` cannot give its address in place of
//! the real one. The cost is linear in the line's length for the patterns in use.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Addr,
    Port,
    Any,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    parts: Vec<Part>,
}

/// What a pattern took from a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next = ["<ADDR>", "<HOST>", "<PORT>", "<*>"]
                .iter()
                .filter_map(|t| rest.find(t).map(|i| (i, *t)))
                .min();
            match next {
                Some((0, tok)) => {
                    parts.push(match tok {
                        "<PORT>" => Part::Port,
                        "<*>" => Part::Any,
                        _ => Part::Addr,
                    });
                    rest = &rest[tok.len()..];
                }
                Some((i, _)) => {
                    parts.push(Part::Lit(rest[..i].to_string()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Lit(rest.to_string()));
                    rest = "";
                }
            }
        }
        if !parts.contains(&Part::Addr) {
            return Err(format!("pattern `{text}` has no <ADDR>"));
        }
        for w in parts.windows(2) {
            if !matches!(w[0], Part::Lit(_)) && !matches!(w[1], Part::Lit(_)) {
                return Err(format!(
                    "pattern `{text}`: two fields side by side; put literal text between them"
                ));
            }
        }
        Ok(Pattern { parts })
    }

    /// The literal the line must start with, for a quick test before matching.
    pub fn lead(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(l)) => l,
            _ => "",
        }
    }

    pub fn matches(&self, line: &str) -> Option<Fields> {
        let mut f = Partial::default();
        if match_parts(&self.parts, line, &mut f) {
            Some(Fields {
                addr: f.addr?,
                port: f.port,
            })
        } else {
            None
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Partial {
    addr: Option<IpAddr>,
    port: Option<u16>,
}

fn is_addr_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// The addresses at the start of `s`, longest first, with their lengths: the run of address
/// characters, shortened until it parses (so `1.2.3.4:22` gives `1.2.3.4`). IPv4-mapped IPv6
/// addresses are given as IPv4.
fn leading_addrs(s: &str) -> impl Iterator<Item = (IpAddr, usize)> + '_ {
    let run = s.bytes().take(45).take_while(|&c| is_addr_byte(c)).count();
    (1..=run).rev().filter_map(move |end| {
        let a = s[..end].parse::<IpAddr>().ok()?;
        let a = match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        Some((a, end))
    })
}

fn match_parts(parts: &[Part], s: &str, f: &mut Partial) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match first {
        Part::Lit(l) => s
            .strip_prefix(l.as_str())
            .is_some_and(|r| match_parts(rest, r, f)),
        Part::Port => {
            let n = s.bytes().take(5).take_while(u8::is_ascii_digit).count();
            let Ok(p) = s[..n].parse::<u16>() else {
                return false;
            };
            let saved = *f;
            f.port = Some(p);
            if match_parts(rest, &s[n..], f) {
                return true;
            }
            *f = saved;
            false
        }
        Part::Addr => {
            for (a, len) in leading_addrs(s) {
                let saved = *f;
                f.addr = Some(a);
                if match_parts(rest, &s[len..], f) {
                    return true;
                }
                *f = saved;
            }
            false
        }
        Part::Any => match rest.first() {
            None => true,
            Some(Part::Lit(l)) => {
                // Rightmost occurrence first (see the module's comment); at most a few tried.
                let mut end = s.len();
                for _ in 0..8 {
                    let Some(i) = s[..end].rfind(l.as_str()) else {
                        return false;
                    };
                    let saved = *f;
                    if match_parts(rest, &s[i..], f) {
                        return true;
                    }
                    *f = saved;
                    if i == 0 {
                        return false;
                    }
                    end = i + l.len() - 1;
                }
                false
            }
            // `new` refuses a field right after `<*>`.
            Some(_) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, line: &str) -> Option<(String, Option<u16>)> {
        Pattern::new(p)
            .unwrap()
            .matches(line)
            .map(|f| (f.addr.to_string(), f.port))
    }

    #[test]
    fn fields_are_typed_and_anchored() {
        let p = "Invalid user <*> from <ADDR> port <PORT>";
        assert_eq!(
            m(p, "Invalid user admin from 203.0.113.5 port 51234"),
            Some(("203.0.113.5".into(), Some(51234)))
        );
        assert_eq!(
            m(p, "Invalid user admin from 2001:db8::5 port 22"),
            Some(("2001:db8::5".into(), Some(22)))
        );
        // A host name is not an address; trailing text is not allowed without `<*>`.
        assert_eq!(m(p, "Invalid user admin from evil.example port 22"), None);
        assert_eq!(m(p, "Invalid user admin from 203.0.113.5 port 22 x"), None);
        assert_eq!(m(p, "xInvalid user admin from 203.0.113.5 port 22"), None);
        assert_eq!(m(p, "Invalid user admin from 203.0.113.5 port 99999"), None);
        assert_eq!(
            m("x [<ADDR>]:<PORT> y", "x [::ffff:192.0.2.1]:22 y"),
            Some(("192.0.2.1".into(), Some(22)))
        );
        assert_eq!(
            m("from <ADDR>:<PORT>", "from 192.0.2.1:22"),
            Some(("192.0.2.1".into(), Some(22)))
        );
    }

    /// DenyHosts' old hole: a user name that carries another address.
    #[test]
    fn a_user_name_cannot_inject_an_address() {
        let p = "Invalid user <*> from <ADDR> port <PORT>";
        assert_eq!(
            m(
                p,
                "Invalid user x from 10.9.9.9 port 22 from 203.0.113.5 port 4444"
            ),
            Some(("203.0.113.5".into(), Some(4444)))
        );
        let p = "Failed <*> for invalid user <*> from <ADDR> port <PORT> ssh2";
        assert_eq!(
            m(
                p,
                "Failed password for invalid user a from 10.9.9.9 port 1 ssh2 from 203.0.113.5 port 7 ssh2"
            ),
            Some(("203.0.113.5".into(), Some(7)))
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::new("no field here").is_err());
        assert!(Pattern::new("x <*><ADDR>").is_err());
        assert!(Pattern::new("x <ADDR><PORT>").is_err());
        assert!(Pattern::new("login failed from <HOST>").is_ok());
    }

    /// A long line of repeated separators is tried at a few of them only, and still gives
    /// the real address when the real fields end it.
    #[test]
    fn hostile_lines_are_tried_a_few_times() {
        let p = Pattern::new("Invalid user <*> from <ADDR> port <PORT>").unwrap();
        let line = format!("Invalid user {}", " from 1.2.3.4 port x".repeat(3000));
        assert!(p.matches(&line).is_none());
        let line = format!("{line} from 203.0.113.9 port 5");
        assert_eq!(
            p.matches(&line).map(|f| f.addr.to_string()),
            Some("203.0.113.9".into())
        );
    }
}
