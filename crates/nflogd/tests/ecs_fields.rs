//! The ECS field check itself (tests/lab/ecs.rs), so that the tests using it can fail: records
//! with the mistakes ECS's field list forbids are caught, one by one.

mod lab;

use serde_json::json;

#[test]
fn the_ecs_check_catches_what_ecs_forbids() {
    let good = json!({
        "@timestamp": "2026-12-02T10:00:00.000000Z",
        "event": {"kind": "event", "category": ["network"], "type": ["connection", "denied"], "outcome": "failure"},
        "network": {"type": "ipv4", "iana_number": "6", "vlan": {"id": "7"}, "inner": {"vlan": {"id": "8"}}},
        "source": {"ip": "192.0.2.1", "port": 40000, "mac": "00-11-22-33-44-55"},
        "related": {"ip": ["192.0.2.1"]},
        "log": {"file": {"path": "/var/log/kern.log"}},
        "labels": {"anything": "goes"},
        "iptables": {"ttl": 64},
        "netfilter": {"prefix": "DROP "}
    });
    assert_eq!(lab::ecs::violations(&good), Vec::<String>::new());
    for (bad, what) in [
        (
            json!({"log": {"origin": "/var/log/kern.log"}}),
            "log.origin",
        ),
        (json!({"log": {"offset": 5}}), "log.offset"),
        (json!({"network": {"vlan": {"id": 7}}}), "network.vlan.id"),
        (json!({"event": {"kind": "flow"}}), "event.kind"),
        (json!({"event": {"category": "network"}}), "event.category"),
        (
            json!({"event": {"type": ["connection", "dropped"]}}),
            "event.type",
        ),
        (json!({"event": {"outcome": "blocked"}}), "event.outcome"),
        (json!({"related": {"ip": "192.0.2.1"}}), "related.ip"),
        (json!({"source": {"port": "80"}}), "source.port"),
        (json!({"source": {"ip": "not-an-address"}}), "source.ip"),
        (
            json!({"network": {"transport": ["tcp"]}}),
            "network.transport",
        ),
        (
            json!({"destination": {"nat": {"ports": 1}}}),
            "destination.nat.ports",
        ),
    ] {
        let v = lab::ecs::violations(&bad);
        assert!(
            v.iter().any(|l| l.starts_with(what)),
            "{what} not caught in {bad}: {v:?}"
        );
    }
}
