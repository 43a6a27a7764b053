//! CloudEvents 1.0 conformance of envelopes received from outside (the HTTP ingress): what
//! the specification and the contract require of the attributes, checked on the raw JSON
//! (structured mode) or on the `ce-` headers (binary mode) before anything is decoded, so
//! every violation can be named. What passes here can be read back by any CloudEvents SDK.
//!
//! - `specversion` is `1.0`; `id`, `source` and `type` are non-empty strings;
//! - attribute and extension names are lower-case ASCII letters and digits;
//! - `time` is RFC 3339, `dataschema` an absolute URI, `source` a URI reference, `subject` a
//!   non-empty string, `datacontenttype` a JSON media type (the bus carries JSON data);
//! - extension values are strings, booleans or integers (the CloudEvents type system has no
//!   objects, arrays or fractions);
//! - not both `data` and `data_base64`;
//! - the contract's extensions: `dataclassification` is one of `public`, `internal`,
//!   `confidential`, `restricted`; `traceparent` is a W3C trace context.

use serde_json::Value;

use crate::error::Violation;

/// The attributes the specification defines (besides `data`/`data_base64` members).
const CONTEXT_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

fn v(pointer: &str, message: impl Into<String>) -> Violation {
    Violation {
        pointer: pointer.to_string(),
        message: message.into(),
        schema_pointer: "cloudevents-1.0".to_string(),
    }
}

/// Whether `name` is a valid attribute name: lower-case ASCII letters and digits, not empty.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn valid_traceparent(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}

fn json_media_type(t: &str) -> bool {
    let base = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    base == "application/json" || base == "text/json" || base.ends_with("+json")
}

/// Checks one attribute's value (a string as it arrived: JSON string or decoded header).
fn check_value(name: &str, value: &str, pointer: &str, out: &mut Vec<Violation>) {
    match name {
        "specversion" if value != "1.0" => out.push(v(
            pointer,
            format!("specversion is {value:?}; the bus takes CloudEvents 1.0 (\"1.0\")"),
        )),
        "id" | "type" | "source" | "subject" if value.is_empty() => {
            out.push(v(pointer, format!("{name} must not be empty")))
        }
        "source" if value.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            out.push(v(pointer, "source must be a URI reference (no spaces or control characters)"))
        }
        "time" if chrono::DateTime::parse_from_rfc3339(value).is_err() => out.push(v(
            pointer,
            format!("time {value:?} is not an RFC 3339 timestamp"),
        )),
        "dataschema" if url::Url::parse(value).is_err() => out.push(v(
            pointer,
            format!("dataschema {value:?} is not an absolute URI"),
        )),
        "datacontenttype" if !json_media_type(value) => out.push(v(
            pointer,
            format!("datacontenttype {value:?}: the bus carries JSON data (application/json)"),
        )),
        crate::envelope::EXT_CLASSIFICATION
            if !matches!(value, "public" | "internal" | "confidential" | "restricted") =>
        {
            out.push(v(
                pointer,
                format!("dataclassification {value:?} is not public, internal, confidential or restricted"),
            ))
        }
        crate::envelope::EXT_TRACEPARENT if !valid_traceparent(value) => out.push(v(
            pointer,
            format!("traceparent {value:?} is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)"),
        )),
        _ => {}
    }
}

/// Violations of a structured-mode event (the JSON object as it arrived). `at` prefixes the
/// pointers (e.g. `/3` for the fourth event of a batch).
pub fn check_structured(event: &Value, at: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(obj) = event.as_object() else {
        out.push(v(at, "a CloudEvent in structured mode is a JSON object"));
        return out;
    };
    for required in ["specversion", "id", "source", "type"] {
        if obj.get(required).is_none_or(Value::is_null) {
            out.push(v(
                &format!("{at}/{required}"),
                format!("the required attribute {required} is missing"),
            ));
        }
    }
    if obj.contains_key("data") && obj.contains_key("data_base64") {
        out.push(v(at, "an event has data or data_base64, not both"));
    }
    for (name, value) in obj {
        if name == "data" || name == "data_base64" {
            continue;
        }
        let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        if !valid_name(name) {
            out.push(v(
                &pointer,
                format!("attribute name {name:?}: only lower-case letters a-z and digits 0-9"),
            ));
            continue;
        }
        match value {
            Value::String(s) => check_value(name, s, &pointer, &mut out),
            Value::Null => {}
            Value::Bool(_) if !CONTEXT_ATTRIBUTES.contains(&name.as_str()) => {}
            Value::Number(n) if !CONTEXT_ATTRIBUTES.contains(&name.as_str()) && (n.is_i64() || n.is_u64()) => {
                if n.as_i64().is_none_or(|i| !(-2_147_483_648..=2_147_483_647).contains(&i)) {
                    out.push(v(&pointer, format!("{name}: a CloudEvents integer is 32-bit")));
                }
            }
            _ if CONTEXT_ATTRIBUTES.contains(&name.as_str()) => {
                out.push(v(&pointer, format!("{name} must be a string")))
            }
            _ => out.push(v(
                &pointer,
                format!("extension {name}: a string, boolean or integer (not an object, array or fraction)"),
            )),
        }
    }
    out
}

/// Violations of a binary-mode event's headers (`ce-` names as they arrived, values
/// percent-decoded).
pub fn check_binary<'a>(headers: impl Iterator<Item = (&'a str, String)>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (raw_name, value) in headers {
        let lower = raw_name.to_ascii_lowercase();
        let Some(name) = lower.strip_prefix("ce-") else {
            continue;
        };
        let pointer = format!("/headers/{lower}");
        if !valid_name(name) {
            out.push(v(
                &pointer,
                format!("attribute name {name:?} (header {raw_name}): only lower-case letters a-z and digits 0-9"),
            ));
            continue;
        }
        seen.insert(name.to_string());
        check_value(name, &value, &pointer, &mut out);
    }
    for required in ["specversion", "id", "source", "type"] {
        if !seen.contains(required) {
            out.push(v(
                &format!("/headers/ce-{required}"),
                format!("the required attribute {required} is missing (header ce-{required})"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({"specversion": "1.0", "id": "1", "source": "urn:x", "type": "vn.egov.x.y.z",
               "time": "2023-06-05T08:00:00+07:00", "dataschema": "https://lienthong.vn/schemas/x/v1.json",
               "subject": "k", "datacontenttype": "application/json", "dataclassification": "public",
               "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "myext": "x", "count": 3, "flag": true, "data": {"a": 1}})
    }

    fn pointers(e: &Value) -> Vec<String> {
        check_structured(e, "")
            .into_iter()
            .map(|v| v.pointer)
            .collect()
    }

    #[test]
    fn a_conformant_event_passes() {
        assert_eq!(check_structured(&ok(), ""), vec![]);
    }

    #[test]
    fn each_violation_is_named_where_it_is() {
        let mut e = ok();
        e["specversion"] = json!("0.3");
        e["id"] = json!("");
        e["Bad_Name"] = json!("x");
        e["dataclassification"] = json!("secret");
        e["time"] = json!("yesterday");
        e["nested"] = json!({"a": 1});
        e["ratio"] = json!(0.5);
        e["traceparent"] = json!("00-zz");
        e["data_base64"] = json!("AA==");
        let p = pointers(&e);
        for want in [
            "/specversion",
            "/id",
            "/Bad_Name",
            "/dataclassification",
            "/time",
            "/nested",
            "/ratio",
            "/traceparent",
            "",
        ] {
            assert!(p.contains(&want.to_string()), "{want} in {p:?}");
        }
        let mut missing = ok();
        missing.as_object_mut().unwrap().remove("source");
        assert_eq!(pointers(&missing), vec!["/source"]);
        assert_eq!(pointers(&json!([1])), vec![""]);
        let batch_item = check_structured(&json!({"specversion": "1.0"}), "/2");
        assert!(batch_item.iter().any(|v| v.pointer == "/2/id"));
    }

    #[test]
    fn binary_headers_are_checked_the_same_way() {
        let h = |pairs: &[(&'static str, &str)]| {
            check_binary(pairs.iter().map(|(n, v)| (*n, v.to_string())))
                .into_iter()
                .map(|v| v.pointer)
                .collect::<Vec<_>>()
        };
        assert!(h(&[
            ("ce-specversion", "1.0"),
            ("CE-Id", "1"),
            ("ce-source", "urn:x"),
            ("ce-type", "t")
        ])
        .is_empty());
        let p = h(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-type", "t"),
            ("ce-foo_bar", "x"),
            ("ce-time", "soon"),
        ]);
        assert!(p.contains(&"/headers/ce-foo_bar".to_string()), "{p:?}");
        assert!(p.contains(&"/headers/ce-time".to_string()));
        assert!(p.contains(&"/headers/ce-source".to_string()));
    }
}
