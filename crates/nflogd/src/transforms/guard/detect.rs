//! Detectors: what counts as a failure, from programs' log lines (sshd, postfix, dovecot, and
//! patterns a user writes) and from packet records (port scans).

use super::pattern::Pattern;
use std::net::IpAddr;

/// How a matched line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A failed authentication: each counts.
    Attempt,
    /// A sign of the same failed connection (`Invalid user`, `Connection closed by invalid
    /// user`, a preauth disconnect): counts once per connection, and not at all when the
    /// connection's attempts were counted already. So a mistyped password, which writes two or
    /// three such lines, counts one.
    Marker,
}

pub struct Rule {
    pub pattern: Pattern,
    pub count: Count,
}

/// A detector over log lines.
pub struct LineDetector {
    /// Programs whose lines it reads (`postfix` also takes `postfix/smtpd`); lines without a
    /// program (a bare `sshd -E` file) go to every line detector.
    pub programs: Vec<String>,
    pub rules: Vec<Rule>,
}

/// A line's failure: who, which connection, how it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub count: Count,
}

impl LineDetector {
    pub fn reads(&self, program: Option<&str>) -> bool {
        let Some(p) = program else { return true };
        self.programs.iter().any(|want| {
            p == want
                || (p.len() > want.len()
                    && p.starts_with(want.as_str())
                    && p.as_bytes()[want.len()] == b'/')
        })
    }

    pub fn check(&self, message: &str) -> Option<Hit> {
        // The common case is a line no rule is about: each rule's leading literal rejects it
        // in a comparison or two.
        for r in &self.rules {
            if !message.starts_with(r.pattern.lead()) {
                continue;
            }
            if let Some(f) = r.pattern.matches(message) {
                return Some(Hit {
                    addr: f.addr,
                    port: f.port,
                    count: r.count,
                });
            }
        }
        None
    }
}

fn rules(list: &[(&str, Count)]) -> Vec<Rule> {
    list.iter()
        .map(|(p, c)| Rule {
            pattern: Pattern::new(p).expect("built-in patterns compile"),
            count: *c,
        })
        .collect()
}

use Count::{Attempt, Marker};

/// OpenSSH before and after 9.8 (`sshd`, `sshd-session`, `sshd-auth`). Failed publickey for a
/// real user is left out: a client offers its keys one by one, and that is not an attack.
pub fn sshd() -> (Vec<String>, Vec<Rule>) {
    let programs = ["sshd", "sshd-session", "sshd-auth"]
        .map(String::from)
        .to_vec();
    let r = rules(&[
        ("Failed <*> for invalid user <*> from <ADDR> port <PORT> ssh2<*>", Attempt),
        ("Failed password for <*> from <ADDR> port <PORT> ssh2<*>", Attempt),
        ("Failed keyboard-interactive/pam for <*> from <ADDR> port <PORT> ssh2<*>", Attempt),
        ("Invalid user <*> from <ADDR> port <PORT>", Marker),
        ("Connection closed by invalid user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Connection closed by authenticating user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Connection closed by <ADDR> port <PORT> [preauth]", Marker),
        ("Disconnected from invalid user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Disconnected from authenticating user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Disconnected from <ADDR> port <PORT> [preauth]", Marker),
        ("Connection reset by invalid user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Connection reset by authenticating user <*> <ADDR> port <PORT> [preauth]", Marker),
        ("Connection reset by <ADDR> port <PORT> [preauth]", Marker),
        ("Received disconnect from <ADDR> port <PORT>:<*>[preauth]", Marker),
        ("error: maximum authentication attempts exceeded for <*> from <ADDR> port <PORT> ssh2 [preauth]", Marker),
        ("Disconnecting invalid user <*> <ADDR> port <PORT>: Too many authentication failures [preauth]", Marker),
        ("Disconnecting authenticating user <*> <ADDR> port <PORT>: Too many authentication failures [preauth]", Marker),
        ("Did not receive identification string from <ADDR> port <PORT>", Marker),
        ("Unable to negotiate with <ADDR> port <PORT>: no matching <*>", Marker),
        ("banner exchange: Connection from <ADDR> port <PORT>: invalid format", Marker),
        ("Bad protocol version identification <*> from <ADDR> port <PORT>", Marker),
        ("ssh_dispatch_run_fatal: Connection from <ADDR> port <PORT>: <*>", Marker),
        ("ssh_dispatch_run_fatal: Connection from <*> <ADDR> port <PORT>: <*>", Marker),
        // OpenSSH 9.8+: PerSourcePenalties. A connection refused because its source is
        // penalised is a new try; a penalty for failed authentication or an invalid user
        // repeats what the lines above counted already, the other reasons do not.
        ("drop connection #<*> from [<ADDR>]:<PORT> on [<*>]:<*> penalty: <*>", Marker),
        ("srclimit_penalise: <ADDR>/<*>: activating <*> penalty of <*> seconds for penalty: connections without attempting authentication", Marker),
        ("srclimit_penalise: <ADDR>/<*>: activating <*> penalty of <*> seconds for penalty: exceeded LoginGraceTime", Marker),
        ("srclimit_penalise: <ADDR>/<*>: activating <*> penalty of <*> seconds for penalty: caused crash", Marker),
        ("srclimit_penalise: <ADDR>/<*>: activating <*> penalty of <*> seconds for penalty: connection prohibited by RefuseConnection", Marker),
    ]);
    (programs, r)
}

/// Postfix's SASL failures (`postfix/smtpd`, `postfix/submission/smtpd`).
pub fn postfix() -> (Vec<String>, Vec<Rule>) {
    (
        vec!["postfix".into()],
        rules(&[
            (
                "warning: <*>[<ADDR>]: SASL <*> authentication failed<*>",
                Attempt,
            ),
            ("lost connection after AUTH from <*>[<ADDR>]", Marker),
        ]),
    )
}

/// Dovecot's login processes and its auth process.
pub fn dovecot() -> (Vec<String>, Vec<Rule>) {
    (
        vec!["dovecot".into()],
        rules(&[
            (
                "<*>(auth failed, <*>): user=<*>, rip=<ADDR>, lip=<*>",
                Attempt,
            ),
            ("auth: <*>,<ADDR>,<*>): unknown user", Attempt),
            ("auth: <*>,<ADDR>): unknown user", Attempt),
            ("auth: <*>,<ADDR>,<*>): Password mismatch<*>", Attempt),
            ("auth: <*>,<ADDR>): Password mismatch<*>", Attempt),
            (
                "auth: <*>,<ADDR>,<*>): pam_authenticate() failed: <*>",
                Attempt,
            ),
            ("auth: <*>,<ADDR>): pam_authenticate() failed: <*>", Attempt),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det((programs, rules): (Vec<String>, Vec<Rule>)) -> LineDetector {
        LineDetector { programs, rules }
    }

    fn hit(d: &LineDetector, line: &str) -> Option<(String, Option<u16>, Count)> {
        d.check(line).map(|h| (h.addr.to_string(), h.port, h.count))
    }

    /// The lines OpenSSH 9.2 (Debian 12) and 9.8+ (`sshd-session`, penalties) write, each with
    /// the address and how it counts.
    #[test]
    fn sshd_lines_old_and_new() {
        let d = det(sshd());
        let a = "203.0.113.5";
        for (line, count) in [
            ("Invalid user admin from 203.0.113.5 port 51234", Marker),
            ("Failed password for invalid user admin from 203.0.113.5 port 51234 ssh2", Attempt),
            ("Failed none for invalid user admin from 203.0.113.5 port 51234 ssh2", Attempt),
            ("Failed publickey for invalid user admin from 203.0.113.5 port 51234 ssh2: ED25519 SHA256:x", Attempt),
            ("Failed keyboard-interactive/pam for invalid user admin from 203.0.113.5 port 51234 ssh2", Attempt),
            ("Failed password for root from 203.0.113.5 port 51234 ssh2", Attempt),
            ("Failed keyboard-interactive/pam for root from 203.0.113.5 port 51234 ssh2", Attempt),
            ("Connection closed by invalid user admin 203.0.113.5 port 51234 [preauth]", Marker),
            ("Connection closed by invalid user  203.0.113.5 port 51234 [preauth]", Marker),
            ("Connection closed by authenticating user root 203.0.113.5 port 51234 [preauth]", Marker),
            ("Connection closed by 203.0.113.5 port 51234 [preauth]", Marker),
            ("Disconnected from invalid user admin 203.0.113.5 port 51234 [preauth]", Marker),
            ("Connection reset by 203.0.113.5 port 51234 [preauth]", Marker),
            ("Received disconnect from 203.0.113.5 port 51234:11: Bye Bye [preauth]", Marker),
            ("error: maximum authentication attempts exceeded for invalid user x from 203.0.113.5 port 51234 ssh2 [preauth]", Marker),
            ("error: maximum authentication attempts exceeded for root from 203.0.113.5 port 51234 ssh2 [preauth]", Marker),
            ("Disconnecting invalid user x 203.0.113.5 port 51234: Too many authentication failures [preauth]", Marker),
            ("Did not receive identification string from 203.0.113.5 port 51234", Marker),
            ("Unable to negotiate with 203.0.113.5 port 51234: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]", Marker),
            ("banner exchange: Connection from 203.0.113.5 port 51234: invalid format", Marker),
            ("ssh_dispatch_run_fatal: Connection from 203.0.113.5 port 51234: message authentication code incorrect [preauth]", Marker),
            ("ssh_dispatch_run_fatal: Connection from invalid user x 203.0.113.5 port 51234: Connection corrupted [preauth]", Marker),
            ("drop connection #3 from [203.0.113.5]:51234 on [192.0.2.1]:22 penalty: failed authentication", Marker),
            ("srclimit_penalise: 203.0.113.5/32: activating ipv4 penalty of 15.000 seconds for penalty: connections without attempting authentication", Marker),
            ("srclimit_penalise: 203.0.113.5/32: activating ipv4 penalty of 10.000 seconds for penalty: exceeded LoginGraceTime", Marker),
        ] {
            let port = if line.starts_with("srclimit") { None } else { Some(51234) };
            assert_eq!(hit(&d, line), Some((a.into(), port, count)), "{line}");
        }
        // Not failures: a good login, a client offering a key a real user does not have, a
        // logout, a penalty that repeats what was counted.
        for line in [
            "Accepted password for root from 203.0.113.5 port 51234 ssh2",
            "Failed publickey for root from 203.0.113.5 port 51234 ssh2: ED25519 SHA256:x",
            "Received disconnect from 203.0.113.5 port 51234:11: disconnected by user",
            "Disconnected from user root 203.0.113.5 port 51234",
            "srclimit_penalise: 203.0.113.5/32: activating ipv4 penalty of 5.000 seconds for penalty: failed authentication",
            "Server listening on 0.0.0.0 port 22.",
        ] {
            assert_eq!(hit(&d, line), None, "{line}");
        }
        assert_eq!(
            hit(&d, "Invalid user x from 2001:db8::7 port 2222"),
            Some(("2001:db8::7".into(), Some(2222), Marker))
        );
        assert!(d.reads(Some("sshd-session")) && d.reads(Some("sshd-auth")) && d.reads(None));
        assert!(!d.reads(Some("sshdx")) && !d.reads(Some("cron")));
    }

    #[test]
    fn postfix_and_dovecot() {
        let p = det(postfix());
        assert!(p.reads(Some("postfix/smtpd")) && p.reads(Some("postfix/submission/smtpd")));
        assert_eq!(
            hit(
                &p,
                "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
            ),
            Some(("203.0.113.5".into(), None, Attempt))
        );
        assert_eq!(
            hit(
                &p,
                "warning: mail.example[2001:db8::5]: SASL PLAIN authentication failed: "
            ),
            Some(("2001:db8::5".into(), None, Attempt))
        );
        let d = det(dovecot());
        assert_eq!(
            hit(&d, "imap-login: Disconnected: Connection closed (auth failed, 3 attempts in 14 secs): user=<a>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.1, TLS, session=<x>"),
            Some(("203.0.113.5".into(), None, Attempt))
        );
        assert_eq!(
            hit(&d, "auth: passwd-file(bob,203.0.113.5,<x>): unknown user"),
            Some(("203.0.113.5".into(), None, Attempt))
        );
        assert_eq!(
            hit(
                &d,
                "imap-login: Login: user=<a>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.1"
            ),
            None
        );
    }
}
