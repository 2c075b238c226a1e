//! ECS conformance: every field an `ecs` record carries, checked against ECS's own published
//! field list (tests/ecs/fields.tsv, made by scripts/ecs-fields): its name, its type, array or
//! not, and the allowed values of the categorization fields. Fields outside ECS's field sets
//! (`iptables.*`, `netfilter.*`) are custom and allowed, as ECS says of custom fields.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Field {
    kind: String,
    array: bool,
    allowed: Vec<String>,
}

fn fields() -> &'static HashMap<String, Field> {
    static FIELDS: OnceLock<HashMap<String, Field>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ecs/fields.tsv");
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                let allowed = c[3]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                (
                    c[0].to_string(),
                    Field {
                        kind: c[1].to_string(),
                        array: c[2] == "array",
                        allowed: allowed.collect(),
                    },
                )
            })
            .collect()
    })
}

/// Whether `path` is inside ECS: its first name is one of ECS's field sets (or a top-level
/// field such as `@timestamp`, `message`, `tags`).
fn ecs_namespace(path: &str) -> bool {
    let top = path.split('.').next().unwrap_or(path);
    fields()
        .keys()
        .any(|k| k == top || k.starts_with(&format!("{top}.")))
}

/// Below an ECS field of type `object`/`flattened` with no fields of its own (`labels`),
/// any name goes.
fn under_open_object(path: &str) -> bool {
    let f = fields();
    let mut at = 0;
    while let Some(i) = path[at..].find('.') {
        let parent = &path[..at + i];
        if let Some(p) = f.get(parent) {
            let open = matches!(p.kind.as_str(), "object" | "flattened")
                && !f.keys().any(|k| k.starts_with(&format!("{parent}.")));
            if open {
                return true;
            }
        }
        at += i + 1;
    }
    false
}

fn type_ok(kind: &str, v: &Value) -> bool {
    match kind {
        "keyword" | "constant_keyword" | "wildcard" | "text" | "match_only_text" => v.is_string(),
        "long" | "unsigned_long" => v.is_u64() || v.is_i64(),
        "float" | "scaled_float" | "double" => v.is_number(),
        "boolean" => v.is_boolean(),
        "date" => v
            .as_str()
            .is_some_and(|s| s.len() >= 20 && s.as_bytes()[4] == b'-'),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "object" | "flattened" | "nested" | "geo_point" => v.is_object(),
        _ => false,
    }
}

/// What in `record` ECS does not allow, one line each.
pub fn violations(record: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", record, &mut out);
    out
}

fn walk(path: &str, v: &Value, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        let described = fields().get(path).is_some_and(|f| f.kind != "object");
        if path.is_empty() || !described {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, child, out);
            }
            return;
        }
    }
    if !ecs_namespace(path) || under_open_object(path) {
        return;
    }
    let Some(f) = fields().get(path) else {
        out.push(format!("{path}: not an ECS field (value {v})"));
        return;
    };
    let values: Vec<&Value> = match v {
        Value::Array(items) => {
            if !f.array {
                out.push(format!("{path}: an array, but ECS defines one value"));
            }
            items.iter().collect()
        }
        one => {
            if f.array {
                out.push(format!(
                    "{path}: one value ({one}), but ECS defines an array"
                ));
            }
            vec![one]
        }
    };
    for x in values {
        if !type_ok(&f.kind, x) {
            out.push(format!("{path}: {x} is not of ECS type {}", f.kind));
        }
        if !f.allowed.is_empty() && !x.as_str().is_some_and(|s| f.allowed.iter().any(|a| a == s)) {
            out.push(format!("{path}: {x} is not among ECS's allowed values"));
        }
    }
}

/// Panics with every violation in `records`, grouped by field.
pub fn assert_conforms(records: &[Value]) {
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for r in records {
        for v in violations(r) {
            *seen.entry(v).or_default() += 1;
        }
    }
    assert!(
        seen.is_empty(),
        "{} kinds of ECS violations:\n{}",
        seen.len(),
        seen.iter()
            .map(|(v, n)| format!("  {v} (x{n})"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
