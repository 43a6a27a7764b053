//! Properties of what the bus reads from outside: subject keys round-trip and never inject
//! subject syntax; the CloudEvents readers (structured and binary) never panic on anything,
//! and what the conformance check lets through decodes — and round-trips — as a CloudEvent.

use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::envelope::{self, Classification};
use lienthong_bus::subject::{decode_key, encode_key, read_token, subject_token, KeyToken};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_-]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An event-shaped object with some attributes arbitrary.
fn event_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("1.0".to_string()), ".{0,5}"],
        ".{0,20}",
        prop_oneof![Just("urn:x".to_string()), ".{0,20}"],
        prop_oneof![
            Just("vn.egov.field_reports.report.submitted".to_string()),
            ".{0,30}"
        ],
        prop::option::of(".{0,30}"),
        prop::option::of(any_json()),
        prop::collection::btree_map("[a-zA-Z0-9_]{1,12}", any_json(), 0..4),
    )
        .prop_map(|(spec, id, source, ty, time, data, ext)| {
            let mut v = json!({"specversion": spec, "id": id, "source": source, "type": ty});
            if let Some(t) = time {
                v["time"] = json!(t);
            }
            if let Some(d) = data {
                v["data"] = d;
            }
            for (k, x) in ext {
                v[k] = x;
            }
            v
        })
}

proptest! {
    #[test]
    fn keys_round_trip_and_tokens_are_safe(key in ".{0,300}") {
        let token = encode_key(&key);
        prop_assert_eq!(decode_key(&token).unwrap(), key.clone());
        prop_assert!(!token.is_empty());
        prop_assert!(token.is_ascii());
        prop_assert!(!token.contains(['.', '*', '>']) && !token.chars().any(char::is_whitespace));
        let t = subject_token(&key);
        prop_assert!(t.len() <= lienthong_bus::subject::MAX_KEY_TOKEN.max(66));
        match read_token(&t).unwrap() {
            KeyToken::Key(k) => prop_assert_eq!(k, key),
            KeyToken::Digest(h) => prop_assert_eq!(h.len(), 64),
        }
    }

    #[test]
    fn the_structured_reader_never_panics_and_passes_only_readable_events(v in prop_oneof![event_like(), any_json()]) {
        let violations = lienthong_bus::conformance::check_structured(&v, "");
        let bytes = serde_json::to_vec(&v).unwrap();
        let decoded = envelope::decode(None, &bytes);
        if violations.is_empty() {
            let e = decoded.expect("a conformant event decodes");
            prop_assert_eq!(e.specversion().to_string(), "1.0");
            prop_assert!(!e.id().is_empty());
            // It round-trips through the bus's own encoding.
            let again = envelope::decode(None, &envelope::encode_structured(&e).unwrap()).unwrap();
            prop_assert_eq!(again, e);
        }
    }

    #[test]
    fn the_binary_reader_never_panics(
        // Header values cannot hold a line break (HTTP and NATS alike).
        headers in prop::collection::btree_map("ce-[a-zA-Z0-9_-]{1,12}", "[^\r\n]{0,40}", 0..8),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut h = async_nats::HeaderMap::new();
        h.insert("ce-specversion", "1.0");
        for (k, v) in &headers {
            h.insert(k.as_str(), v.as_str());
        }
        let _ = envelope::decode(Some(&h), &body);
        let _ = lienthong_bus::conformance::check_binary(headers.iter().map(|(k, v)| (k.as_str(), v.clone())));
    }

    #[test]
    fn events_built_from_any_parts_round_trip(
        id in ".{1,40}", key in ".{1,80}", text in ".{0,200}", n in any::<i64>(),
    ) {
        let time = "2023-11-18T12:42:10Z".parse().unwrap();
        let data = json!({"text": text, "n": n});
        let schema = "https://lienthong.vn/schemas/x/v1.json";
        let mut direct = Vec::new();
        envelope::encode_parts(&mut direct, &id, "urn:x", "vn.egov.x.y.z", &key, &time, schema, &data, Classification::Internal, None).unwrap();
        let e = envelope::decode(None, &direct).unwrap();
        prop_assert_eq!(e.id(), id.as_str());
        prop_assert_eq!(e.subject(), Some(key.as_str()));
        prop_assert_eq!(envelope::data_json(&e), Some(data));
        prop_assert!(lienthong_bus::conformance::check_structured(&serde_json::from_slice(&direct).unwrap(), "").is_empty());
    }
}
