//! The verdict a log rule stands for, derived from its prefix.
//!
//! Rules first (the user's own mapping, in order), then the presets, then the source's
//! `numeric_label` (ulogd's convention: 0 blocked, anything else allowed).

use anyhow::{bail, Result};
use event::Action;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The seeds' conventions: "IPTables/Dropped: ", "IPTABLES: ACCEPT ", "IPTables: Dropped: ".
    Iptables,
    /// UFW: "[UFW BLOCK] ", "[UFW ALLOW] ", "[UFW LIMIT BLOCK] " ("[UFW AUDIT] " has no verdict).
    Ufw,
    /// firewalld: "filter_IN_public_REJECT: ", "STATE_INVALID_DROP: ", "FINAL_REJECT: ".
    Firewalld,
    /// Shorewall: "Shorewall:net2fw:DROP:".
    Shorewall,
    /// Any prefix: its last word that names a verdict ("DROP-IN ", "INPUT DFLT DROP ").
    Generic,
}

fn all_presets() -> Vec<Preset> {
    vec![
        Preset::Iptables,
        Preset::Ufw,
        Preset::Firewalld,
        Preset::Shorewall,
        Preset::Generic,
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Accept,
    Drop,
    Reject,
    /// Matched, and meant to carry no verdict.
    None,
}

/// One entry of the user's mapping; exactly one of `prefix`, `equals`, `contains` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    /// The log prefix starts with this text.
    pub prefix: Option<String>,
    /// The log prefix is exactly this text.
    pub equals: Option<String>,
    /// The log prefix contains this text.
    pub contains: Option<String>,
    pub action: RuleAction,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Built-in recognizers, tried in this order after `rules`.
    #[serde(default = "all_presets")]
    pub presets: Vec<Preset>,
    /// The user's own mapping, tried first, in order.
    #[serde(default)]
    pub rules: Vec<ActionRule>,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            presets: all_presets(),
            rules: Vec::new(),
        }
    }
}

impl ActionConfig {
    pub fn validate(&self) -> Result<()> {
        for (i, r) in self.rules.iter().enumerate() {
            let n = [&r.prefix, &r.equals, &r.contains]
                .iter()
                .filter(|o| o.is_some())
                .count();
            if n != 1 {
                bail!("rules[{i}]: set exactly one of `prefix`, `equals`, `contains`");
            }
        }
        Ok(())
    }
}

fn words(s: &str, sep: impl Fn(char) -> bool) -> impl DoubleEndedIterator<Item = &str> {
    s.split(sep).filter(|w| !w.is_empty())
}

fn last_verdict<'a>(ws: impl DoubleEndedIterator<Item = &'a str>) -> Option<Action> {
    ws.rev().find_map(Action::from_word)
}

fn preset(p: Preset, prefix: &str) -> Option<Option<Action>> {
    let t = prefix.trim();
    match p {
        Preset::Iptables => {
            let rest = t
                .get(..8)
                .filter(|h| h.eq_ignore_ascii_case("iptables"))
                .map(|_| &t[8..])?;
            Some(words(rest, |c: char| !c.is_ascii_alphanumeric()).find_map(Action::from_word))
        }
        Preset::Ufw => {
            let inner = t.strip_prefix("[UFW ")?.split(']').next()?;
            Some(last_verdict(words(inner, |c| c == ' ')))
        }
        Preset::Firewalld => {
            let body = t.strip_suffix(':')?;
            if !body.contains('_') || body.contains(char::is_whitespace) {
                return None;
            }
            let last = body.rsplit('_').next()?;
            Action::from_word(last).map(Some)
        }
        Preset::Shorewall => {
            let rest = t.strip_prefix("Shorewall:")?;
            Some(rest.split(':').nth(1).and_then(Action::from_word))
        }
        Preset::Generic => last_verdict(words(t, |c: char| !c.is_ascii_alphanumeric())).map(Some),
    }
}

/// Resolves prefixes to verdicts, remembering each distinct prefix it has seen.
pub struct ActionResolver {
    config: Arc<ActionConfig>,
    label_action: Option<Action>,
    // foldhash, not SipHash: the key is a prefix the kernel printed, looked up once a line.
    cache: HashMap<Arc<str>, Option<Action>, foldhash::fast::RandomState>,
    last: Option<(Arc<str>, Option<Action>)>,
}

impl ActionResolver {
    pub fn new(config: Arc<ActionConfig>, numeric_label: Option<u8>) -> Self {
        let label_action =
            numeric_label.map(|l| if l == 0 { Action::Drop } else { Action::Accept });
        ActionResolver {
            config,
            label_action,
            cache: HashMap::default(),
            last: None,
        }
    }

    pub fn resolve(&mut self, prefix: &Arc<str>) -> Option<Action> {
        if let Some((p, a)) = &self.last {
            if Arc::ptr_eq(p, prefix) {
                return *a;
            }
        }
        let a = self.resolve_slow(prefix);
        self.last = Some((prefix.clone(), a));
        a
    }

    fn resolve_slow(&mut self, prefix: &Arc<str>) -> Option<Action> {
        if let Some(a) = self.cache.get(prefix) {
            return *a;
        }
        let a = self.compute(prefix);
        if self.cache.len() > 4096 {
            // Prefixes are few in practice; a flood of distinct ones must not grow memory.
            self.cache.clear();
        }
        self.cache.insert(prefix.clone(), a);
        a
    }

    fn compute(&self, prefix: &str) -> Option<Action> {
        for r in &self.config.rules {
            let hit = r.prefix.as_deref().is_some_and(|p| prefix.starts_with(p))
                || r.equals.as_deref().is_some_and(|p| prefix == p)
                || r.contains.as_deref().is_some_and(|p| prefix.contains(p));
            if hit {
                return match r.action {
                    RuleAction::Accept => Some(Action::Accept),
                    RuleAction::Drop => Some(Action::Drop),
                    RuleAction::Reject => Some(Action::Reject),
                    RuleAction::None => None,
                };
            }
        }
        for p in &self.config.presets {
            if let Some(a) = preset(*p, prefix) {
                if a.is_some() {
                    return a;
                }
            }
        }
        self.label_action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(cfg: ActionConfig, label: Option<u8>, p: &str) -> Option<Action> {
        ActionResolver::new(Arc::new(cfg), label).resolve(&Arc::from(p))
    }

    #[test]
    fn presets_cover_the_known_conventions() {
        let d = || ActionConfig::default();
        for (p, a) in [
            ("IPTables/Dropped: ", Some(Action::Drop)),
            ("IPTABLES: ACCEPT ", Some(Action::Accept)),
            ("IPTables: Dropped: ", Some(Action::Drop)),
            ("IPTABLES: DROP ", Some(Action::Drop)),
            ("[UFW BLOCK] ", Some(Action::Drop)),
            ("[UFW ALLOW] ", Some(Action::Accept)),
            ("[UFW LIMIT BLOCK] ", Some(Action::Drop)),
            ("[UFW AUDIT] ", None),
            ("filter_IN_public_REJECT: ", Some(Action::Reject)),
            ("filter_FWD_internal_DROP: ", Some(Action::Drop)),
            ("STATE_INVALID_DROP: ", Some(Action::Drop)),
            ("Shorewall:net2fw:DROP:", Some(Action::Drop)),
            ("Shorewall:loc2net:ACCEPT:", Some(Action::Accept)),
            ("Shorewall:net2fw:REJECT:", Some(Action::Reject)),
            ("DROP-IN ", Some(Action::Drop)),
            ("INPUT DFLT DROP ", Some(Action::Drop)),
            ("SSH ", None),
            ("", None),
        ] {
            assert_eq!(resolve(d(), None, p), a, "{p:?}");
        }
    }

    #[test]
    fn rules_first_then_presets_then_label() {
        let cfg = ActionConfig {
            presets: all_presets(),
            rules: vec![
                ActionRule {
                    prefix: Some("SSH".into()),
                    equals: None,
                    contains: None,
                    action: RuleAction::Reject,
                },
                ActionRule {
                    prefix: None,
                    equals: None,
                    contains: Some("AUDIT".into()),
                    action: RuleAction::None,
                },
            ],
        };
        assert_eq!(
            resolve(cfg.clone(), None, "SSH DROP "),
            Some(Action::Reject)
        );
        assert_eq!(resolve(cfg.clone(), Some(1), "AUDIT DROP"), None);
        assert_eq!(resolve(cfg.clone(), Some(1), "web "), Some(Action::Accept));
        assert_eq!(resolve(cfg, Some(0), "web "), Some(Action::Drop));
        let none = ActionConfig {
            presets: vec![],
            rules: vec![],
        };
        assert_eq!(resolve(none, None, "IPTABLES: DROP "), None);
    }
}
