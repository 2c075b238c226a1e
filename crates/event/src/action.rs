/// The verdict a log rule stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Drop,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
        }
    }

    /// Parses a verdict word in any case and common spelling ("DROPPED", "Deny", "ALLOW", "RJCT").
    pub fn from_word(w: &str) -> Option<Action> {
        let w = w.to_ascii_lowercase();
        Some(match w.as_str() {
            "accept" | "accepted" | "allow" | "allowed" | "pass" | "passed" | "permit"
            | "permitted" => Action::Accept,
            "drop" | "dropped" | "deny" | "denied" | "block" | "blocked" => Action::Drop,
            "reject" | "rejected" | "rjct" | "refuse" | "refused" => Action::Reject,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
