//! Properties of every parser and mapping that takes outside input: on arbitrary input and on
//! the fixtures with arbitrary values put anywhere, none panics; each record ends one way —
//! unreadable (refused or dead-lettered), not carried, or events that either validate
//! (published) or not (dead-lettered) — and no personal or secret value of the fixtures is
//! ever in an event.

use std::collections::HashMap;

use lienthong_adapters::documents::{edxml, register};
use lienthong_adapters::field_reports::open311::{ServiceRequest, ServiceRequestUpdate};
use lienthong_adapters::field_reports::{fixtures, Mapper};
use lienthong_adapters::meetings::mapping::{MapContext, Mapped};
use lienthong_adapters::meetings::{bbb, jitsi};
use lienthong_adapters::open_data::ckan;
use lienthong_adapters::pseudonym::Pseudonymizer;
use lienthong_adapters::sso::keycloak::{map_admin, map_user, AdminEvent, UserEvent};
use lienthong_adapters::Wards;
use lienthong_bus::{EventDraft, SchemaRegistry};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        ".{0,30}".prop_map(Value::String),
        Just(json!("2023-11-18T19:42:10+07:00")),
        Just(json!("")),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_-]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every leaf's path in `v`.
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                leaves(x, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// `v` with some leaves replaced (`picks` index the leaves, wrapping) or removed.
fn mutate(mut v: Value, picks: &[(usize, Option<Value>)]) -> Value {
    let mut all = Vec::new();
    leaves(&v, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return v;
    }
    for (i, replacement) in picks {
        let path = &all[i % all.len()];
        let pointer: String = path
            .iter()
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        match replacement {
            Some(r) => {
                if let Some(slot) = v.pointer_mut(&pointer) {
                    *slot = r.clone();
                }
            }
            None => {
                let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", ""));
                if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
            }
        }
    }
    v
}

fn picks() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
    prop::collection::vec(
        (any::<usize>(), prop::option::weighted(0.8, any_json())),
        1..5,
    )
}

/// Personal and secret values that appear in the fixtures: never in an event.
const NEVER: &[&str] = &[
    "Nguyễn Thị Hồng",
    "hong.nt@",
    "0912345678",
    "Lê Thị Mai",
    "0987654321",
    "JVBERi0",
    "nguyenvanbinh",
    "binh.nv@example.com",
    "203.0.113.14",
    "SECRET-TOKEN-ID-MUST-NOT-LEAK",
    "0905123456",
    "048190001234",
    "Đặng Minh Quân",
    "vpubnd.dangminhquan",
    "stk_",
    "mp-7Qx2LkPz",
    "vothihanh@",
    "opendata@example.gov.vn",
];

fn outcome(registry: &SchemaRegistry, events: &[EventDraft]) {
    for e in events {
        // Published or dead-lettered: validation decides, it never panics.
        if let Ok(id) = registry.schema_id(&e.event_type.to_string(), None) {
            let _ = registry.validate(id, &e.data);
        }
        let text = e.data.to_string();
        for n in NEVER {
            assert!(!text.contains(n), "{n} in {}", e.id);
        }
    }
}

fn registry() -> &'static SchemaRegistry {
    static R: std::sync::OnceLock<SchemaRegistry> = std::sync::OnceLock::new();
    R.get_or_init(|| SchemaRegistry::embedded().unwrap())
}

fn meetings_ctx() -> MapContext {
    MapContext {
        pseudonymizer: Pseudonymizer::new(b"property-test-key-0123456").unwrap(),
        wards: Wards::phan_thiet(),
        host_organ: "UBND thành phố Phan Thiết".into(),
        city_unit: "ubnd-phanthiet".into(),
    }
}

const EDXML: &str = include_str!("../fixtures/documents/edxml/2023-1245-UBND-VP.edxml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn edxml_never_panics_and_keeps_staff_and_attachments_off_the_bus(
        cut in 0usize..5000, insert in ".{0,40}", noise in ".{0,200}",
    ) {
        let mut text = EDXML.to_string();
        let at = text.char_indices().map(|(i, _)| i).nth(cut % EDXML.chars().count()).unwrap_or(0);
        text.insert_str(at, &insert);
        for candidate in [text.as_str(), noise.as_str()] {
            if let Ok(p) = edxml::parse(candidate) {
                let e = edxml::to_event(&p, "2024-01-01T00:00:00+07:00".parse().unwrap(), candidate.as_bytes());
                outcome(registry(), &[e]);
            }
        }
    }

    #[test]
    fn register_lines_never_panic_and_secret_ones_never_publish(
        picks in picks(), secrecy in prop_oneof![Just("mat"), Just("toi_mat"), Just("tuyet_mat"), Just("MAT"), Just(" mat ")],
    ) {
        let fixture = include_str!("../fixtures/documents/register.jsonl");
        for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let mut secret = mutate(v.clone(), &picks);
            secret["secrecy"] = json!(secrecy);
            for candidate in [mutate(v, &picks), secret.clone()] {
                let text = candidate.to_string();
                let _ = register::secrecy_of(&text);
                if let Ok(entry) = serde_json::from_value::<register::RegisterEntry>(candidate.clone()) {
                    if let register::RegisterOutcome::Publish(d) = register::map(&entry) {
                        outcome(registry(), &[*d]);
                        prop_assert!(candidate != secret, "a secret entry was published");
                    }
                }
            }
        }
    }

    #[test]
    fn open311_records_never_panic_nor_leak_the_reporter(picks in picks(), extra in any_json()) {
        let mapper = Mapper::new(fixtures::services(), Wards::phan_thiet());
        let requests: Vec<Value> = serde_json::from_str(include_str!("../fixtures/field_reports/requests.json")).unwrap();
        let updates: Vec<Value> = serde_json::from_str(include_str!("../fixtures/field_reports/updates.json")).unwrap();
        let rs: Vec<ServiceRequest> = requests.iter().chain([&extra])
            .filter_map(|r| serde_json::from_value(mutate(r.clone(), &picks)).ok()).collect();
        let us: Vec<ServiceRequestUpdate> = updates.iter().chain([&extra])
            .filter_map(|u| serde_json::from_value(mutate(u.clone(), &picks)).ok()).collect();
        let events = mapper.plan(&rs, &us, &mut HashMap::new());
        outcome(registry(), &events);
        for e in &events {
            for field in ["first_name", "last_name", "\"phone\"", "\"email\"", "account_id", "device_id"] {
                prop_assert!(!e.data.to_string().contains(field));
            }
        }
    }

    #[test]
    fn keycloak_events_never_panic_nor_leak(picks in picks()) {
        let p = Pseudonymizer::new(b"property-test-key-0123456").unwrap();
        for line in include_str!("../fixtures/sso/keycloak-events.jsonl").lines().filter(|l| !l.trim().is_empty()) {
            let v = mutate(serde_json::from_str(line).unwrap(), &picks);
            if let Ok(e) = serde_json::from_value::<UserEvent>(v) {
                outcome(registry(), &map_user(&e, &p).into_iter().collect::<Vec<_>>());
            }
        }
        for line in include_str!("../fixtures/sso/admin-events.jsonl").lines().filter(|l| !l.trim().is_empty()) {
            let v = mutate(serde_json::from_str(line).unwrap(), &picks);
            if let Ok(e) = serde_json::from_value::<AdminEvent>(v) {
                outcome(registry(), &map_admin(&e, &p).into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn ckan_datasets_never_panic_and_links_are_http_only(picks in picks()) {
        let v: Value = serde_json::from_str(include_str!("../fixtures/open_data/package_search.json")).unwrap();
        for p in v["result"]["results"].as_array().unwrap() {
            if let Ok(pkg) = serde_json::from_value::<ckan::Package>(mutate(p.clone(), &picks)) {
                let (event, _) = ckan::map(&pkg, &Default::default());
                if let Some(e) = event {
                    for r in e.data["resources"].as_array().unwrap() {
                        if let Some(u) = r["url"].as_str() {
                            prop_assert!(u.starts_with("http://") || u.starts_with("https://"), "{u}");
                        }
                    }
                    outcome(registry(), &[e]);
                }
            }
        }
    }

    #[test]
    fn bigbluebutton_posts_never_panic_nor_leak(picks in picks(), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = bbb::parse_post(&bytes);
        let ctx = meetings_ctx();
        for line in include_str!("../fixtures/meetings/bbb/mapped-events.jsonl").lines().filter(|l| !l.trim().is_empty()) {
            let v = mutate(serde_json::from_str(line).unwrap(), &picks);
            if let Mapped::Events(events) = bbb::map_event(&v, &ctx) {
                outcome(registry(), &events);
            }
        }
    }

    #[test]
    fn jitsi_posts_never_panic_nor_leak(picks in picks(), path in prop_oneof![Just("room/created"), Just("room/destroyed"), Just("occupant/joined"), Just("occupant/left"), Just("x/y")]) {
        let ctx = meetings_ctx();
        let v: Value = serde_json::from_str(include_str!("../fixtures/meetings/jitsi/event-sync-posts.json")).unwrap();
        let mut rooms = jitsi::Rooms::default();
        for post in v["posts"].as_array().unwrap() {
            let body = mutate(post["body"].clone(), &picks);
            if let Mapped::Events(events) = jitsi::map_post(path, &body, &mut rooms, &ctx) {
                outcome(registry(), &events);
            }
        }
    }
}
