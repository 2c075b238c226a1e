//! Rule texts by handle, from `nft -a list ruleset`, kept until the ruleset changes.

use std::collections::HashMap;

/// (family, table, chain, handle) → the rule as nft prints it.
#[derive(Default)]
pub struct RuleTexts {
    rules: HashMap<(String, String, String, u64), String>,
    /// Tables present at the last listing, as `family name`.
    pub tables: Vec<String>,
    stale: bool,
    loaded: bool,
    /// Never lists the ruleset (a fuzzer's: no processes).
    offline: bool,
}

/// nft's name of an NFPROTO family.
pub fn family_name(f: u8) -> &'static str {
    match f {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "unknown",
    }
}

impl RuleTexts {
    /// Rule texts that stay empty: nothing is listed.
    pub fn offline() -> Self {
        RuleTexts {
            offline: true,
            ..RuleTexts::default()
        }
    }

    /// The ruleset changed: list it again before the next lookup.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// The text of a rule; lists the ruleset again when it changed or the handle is unknown
    /// (a rule added since).
    pub fn get(&mut self, family: u8, table: &str, chain: &str, handle: u64) -> Option<String> {
        let key = (
            family_name(family).to_string(),
            table.to_string(),
            chain.to_string(),
            handle,
        );
        if !self.offline && (!self.loaded || self.stale || !self.rules.contains_key(&key)) {
            self.reload();
        }
        self.rules.get(&key).cloned()
    }

    pub fn reload(&mut self) {
        self.stale = false;
        self.loaded = true;
        let Ok(out) = std::process::Command::new("nft")
            .args(["-a", "list", "ruleset"])
            .output()
        else {
            return;
        };
        let (rules, tables) = parse_listing(&String::from_utf8_lossy(&out.stdout));
        self.rules = rules;
        self.tables = tables;
    }
}

type Listing = (HashMap<(String, String, String, u64), String>, Vec<String>);

/// Reads `nft -a list ruleset` text: `table F T {`, `chain C {`, rules ending `# handle N`.
pub fn parse_listing(text: &str) -> Listing {
    let mut rules = HashMap::new();
    let mut tables = Vec::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), String::new());
    let mut depth = 0usize;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("table ") {
            let mut w = rest.split_whitespace();
            family = w.next().unwrap_or("").to_string();
            table = w.next().unwrap_or("").to_string();
            tables.push(format!("{family} {table}"));
            depth = 1;
            continue;
        }
        if depth == 1 {
            if let Some(rest) = l.strip_prefix("chain ") {
                chain = rest.split_whitespace().next().unwrap_or("").to_string();
                depth = 2;
                continue;
            }
        }
        if l.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth == 2 {
            if let Some((text, handle)) = l.rsplit_once(" # handle ") {
                if let Ok(h) = handle.trim().parse() {
                    rules.insert(
                        (family.clone(), table.clone(), chain.clone(), h),
                        without_counts(text.trim()),
                    );
                }
            }
        }
    }
    (rules, tables)
}

/// A rule's text without the values of its counters and quotas, which change with every packet.
fn without_counts(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if matches!(words[i], "packets" | "bytes")
            && words.get(i + 1).is_some_and(|n| n.parse::<u64>().is_ok())
            && out
                .last()
                .is_some_and(|w| matches!(*w, "counter" | "packets" | "bytes"))
        {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_found_by_family_table_chain_and_handle() {
        let text = "table inet filter { # handle 3\n\tchain input { # handle 1\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 counter packets 3 bytes 180 jump ssh # handle 4\n\t}\n\tchain ssh { # handle 2\n\t\tip saddr 10.0.0.0/8 accept # handle 5\n\t}\n\tset s { # handle 6\n\t\ttype ipv4_addr\n\t}\n}\ntable ip nat { # handle 9\n\tchain post { # handle 1\n\t\tmasquerade # handle 4\n\t}\n}\n";
        let (rules, tables) = parse_listing(text);
        assert_eq!(tables, ["inet filter", "ip nat"]);
        let k = |f: &str, t: &str, c: &str, h| (f.to_string(), t.to_string(), c.to_string(), h);
        assert_eq!(
            rules[&k("inet", "filter", "input", 4)],
            "tcp dport 22 counter jump ssh"
        );
        assert_eq!(
            rules[&k("inet", "filter", "ssh", 5)],
            "ip saddr 10.0.0.0/8 accept"
        );
        assert_eq!(rules[&k("ip", "nat", "post", 4)], "masquerade");
        assert_eq!(rules.len(), 3);
    }
}
