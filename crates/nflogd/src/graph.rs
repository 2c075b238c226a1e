//! The topology as a graph by name: sources, transforms and sinks, each transform and sink
//! naming its `inputs`. Checked before anything starts: names used twice, unknown or missing
//! inputs, cycles; a node whose output nothing takes is a warning.

use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};

/// The edges of the graph: each node's inputs, by kind.
pub struct Graph<'a> {
    pub sources: BTreeSet<&'a str>,
    pub transforms: BTreeMap<&'a str, &'a [String]>,
    pub sinks: BTreeMap<&'a str, &'a [String]>,
}

impl<'a> Graph<'a> {
    /// Checks the graph; returns the warnings (nodes feeding nothing).
    pub fn check(&self) -> Result<Vec<String>> {
        for t in self.transforms.keys() {
            if self.sources.contains(t) {
                bail!(
                    "`{t}` is the name of a source and of a transform: inputs would be ambiguous"
                );
            }
        }
        let known: Vec<&str> = self
            .sources
            .iter()
            .chain(self.transforms.keys())
            .copied()
            .collect();
        for (kind, nodes) in [("transforms", &self.transforms), ("sinks", &self.sinks)] {
            for (name, inputs) in nodes {
                if inputs.is_empty() {
                    bail!("[{kind}.{name}] inputs: empty; name at least one source or transform");
                }
                for i in inputs.iter() {
                    if !known.contains(&i.as_str()) {
                        bail!(
                            "[{kind}.{name}] inputs: no source or transform named `{i}` (known: {})",
                            known.join(", ")
                        );
                    }
                }
            }
        }
        if let Some(cycle) = self.cycle() {
            bail!("transforms form a cycle: {}", cycle.join(" → "));
        }
        let taken: BTreeSet<&str> = self
            .transforms
            .values()
            .chain(self.sinks.values())
            .flat_map(|inputs| inputs.iter().map(String::as_str))
            .collect();
        let mut warnings = Vec::new();
        for s in &self.sources {
            if !taken.contains(s) {
                warnings.push(format!(
                    "source `{s}` feeds nothing: no transform or sink names it"
                ));
            }
        }
        for t in self.transforms.keys() {
            if !taken.contains(t) {
                warnings.push(format!(
                    "transform `{t}` feeds nothing: no transform or sink names it"
                ));
            }
        }
        Ok(warnings)
    }

    /// A cycle among transforms, as the names along it (first repeated at the end).
    fn cycle(&self) -> Option<Vec<String>> {
        // Depth-first over "is an input of"; a node met again while on the path closes a cycle.
        fn visit<'a>(
            g: &Graph<'a>,
            node: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|n| *n == node) {
                let mut c: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                c.push(node.to_string());
                return Some(c);
            }
            if !done.insert(node) {
                return None;
            }
            path.push(node);
            for next in g.consumers(node) {
                if g.transforms.contains_key(next) {
                    if let Some(c) = visit(g, next, path, done) {
                        return Some(c);
                    }
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for t in self.transforms.keys() {
            if let Some(c) = visit(self, t, &mut Vec::new(), &mut done) {
                return Some(c);
            }
        }
        None
    }

    /// The transforms and sinks that name `node` as an input.
    pub fn consumers(&self, node: &str) -> impl Iterator<Item = &'a str> + '_ {
        let node = node.to_string();
        self.transforms
            .iter()
            .chain(self.sinks.iter())
            .filter(move |(_, inputs)| inputs.contains(&node))
            .map(|(name, _)| *name)
    }

    /// The sources whose events reach `node`, through any transforms.
    pub fn feeding_sources(&self, node: &str) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<&str> = vec![node];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.to_string()) {
                continue;
            }
            let inputs = self.transforms.get(n).or_else(|| self.sinks.get(n));
            for i in inputs.into_iter().flat_map(|v| v.iter()) {
                match self.sources.get(i.as_str()) {
                    Some(s) => {
                        out.insert(*s);
                    }
                    None => todo.push(i),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check(transforms: &[(&str, &[&str])], sinks: &[(&str, &[&str])]) -> Result<Vec<String>> {
        let t: Vec<(String, Vec<String>)> = transforms
            .iter()
            .map(|(n, i)| (n.to_string(), v(i)))
            .collect();
        let s: Vec<(String, Vec<String>)> =
            sinks.iter().map(|(n, i)| (n.to_string(), v(i))).collect();
        let g = Graph {
            sources: ["fw", "ct"].into_iter().collect(),
            transforms: t.iter().map(|(n, i)| (n.as_str(), i.as_slice())).collect(),
            sinks: s.iter().map(|(n, i)| (n.as_str(), i.as_slice())).collect(),
        };
        g.check()
    }

    #[test]
    fn fan_in_fan_out_and_chains_pass() {
        let w = check(
            &[
                ("geo", &["fw", "ct"]),
                ("drops", &["geo"]),
                ("web", &["geo"]),
            ],
            &[("a", &["drops"]), ("b", &["drops", "web"]), ("c", &["fw"])],
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn cycles_unknown_inputs_and_double_names_are_refused() {
        let e = check(
            &[("a", &["fw", "c"]), ("b", &["a"]), ("c", &["b"])],
            &[("o", &["c"])],
        )
        .unwrap_err();
        assert!(e.to_string().contains("cycle: a → b → c → a"), "{e}");
        let e = check(&[("a", &["a"])], &[("o", &["a"])]).unwrap_err();
        assert!(e.to_string().contains("cycle: a → a"), "{e}");
        let e = check(&[], &[("o", &["nope"])]).unwrap_err();
        assert!(
            e.to_string()
                .contains("no source or transform named `nope`"),
            "{e}"
        );
        let e = check(&[("t", &[])], &[("o", &["t"])]).unwrap_err();
        assert!(
            e.to_string().contains("[transforms.t] inputs: empty"),
            "{e}"
        );
        let e = check(&[("fw", &["ct"])], &[("o", &["fw"])]).unwrap_err();
        assert!(e.to_string().contains("source and of a transform"), "{e}");
    }

    #[test]
    fn a_node_feeding_nothing_is_a_warning() {
        let w = check(&[("geo", &["fw"])], &[("o", &["fw"])]).unwrap();
        assert_eq!(
            w,
            [
                "source `ct` feeds nothing: no transform or sink names it",
                "transform `geo` feeds nothing: no transform or sink names it"
            ]
        );
    }

    #[test]
    fn sources_reach_a_sink_through_transforms() {
        let t = [
            ("geo".to_string(), v(&["fw"])),
            ("x".to_string(), v(&["geo", "ct"])),
        ];
        let s = [("o".to_string(), v(&["x"]))];
        let g = Graph {
            sources: ["fw", "ct", "other"].into_iter().collect(),
            transforms: t.iter().map(|(n, i)| (n.as_str(), i.as_slice())).collect(),
            sinks: s.iter().map(|(n, i)| (n.as_str(), i.as_slice())).collect(),
        };
        assert_eq!(
            g.feeding_sources("o").into_iter().collect::<Vec<_>>(),
            ["ct", "fw"]
        );
    }
}
