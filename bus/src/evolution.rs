//! Schema evolution rules: a new version of an event's schema must accept what the
//! previous one accepted, so that consumers written for it keep working.
//!
//! Allowed: adding an optional property, widening a type or an enum, loosening a bound.
//! Refused: removing a property, retyping one (its set of types no longer covers the old
//! one), adding a required property, narrowing an enum (or adding one where there was none),
//! tightening a constraint (`minimum`, `maximum`, their exclusive forms, `minLength`,
//! `maxLength`, `minItems`, `maxItems`, a new or changed `pattern` or `format`), closing the
//! object to additional properties. `$ref`s are followed within the registry; `oneOf`/`anyOf`
//! branches count as one domain. The same rules check the compiled schemas (`lienthong
//! schema check`) and the versions registered at run time (`lienthong schema register`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use url::Url;

/// Resolves `$ref`s against the registry's schemas (by `$id`).
pub struct Resolver<'a> {
    pub schemas: &'a BTreeMap<String, Value>,
}

impl Resolver<'_> {
    fn target(&self, base: &str, reference: &str) -> Option<(String, Value)> {
        let url = Url::parse(base).ok()?.join(reference).ok()?;
        let fragment = url.fragment().unwrap_or("").to_string();
        let mut doc_url = url.clone();
        doc_url.set_fragment(None);
        let doc = self.schemas.get(doc_url.as_str())?;
        let node = if fragment.is_empty() {
            doc
        } else {
            doc.pointer(&fragment)?
        };
        Some((doc_url.to_string(), node.clone()))
    }

    /// The node with its `$ref` (recursively) merged in: properties and required combined.
    pub fn effective(&self, base: &str, node: &Value, depth: usize) -> (String, Value) {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return (base.to_string(), node.clone());
        };
        let Some((doc, target)) = (depth < 32).then(|| self.target(base, reference)).flatten()
        else {
            return (base.to_string(), node.clone());
        };
        let (doc, mut merged) = self.effective(&doc, &target, depth + 1);
        if let (Some(m), Some(local)) = (merged.as_object_mut(), node.as_object()) {
            for (k, v) in local {
                match (k.as_str(), m.get_mut(k)) {
                    ("$ref", _) => {}
                    ("properties", Some(Value::Object(props))) => {
                        if let Value::Object(more) = v {
                            props.extend(more.clone());
                        }
                    }
                    ("required", Some(Value::Array(req))) => {
                        if let Value::Array(more) = v {
                            req.extend(more.clone());
                        }
                    }
                    _ => {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (doc, merged)
    }
}

/// What a node admits, as atoms: `t:<type>` (any value of a type) or `v:<json>` (one value),
/// across `oneOf`/`anyOf` branches. `None`: unconstrained.
fn domain(r: &Resolver, base: &str, node: &Value) -> Option<BTreeSet<String>> {
    let (base, node) = r.effective(base, node, 0);
    let branches: Vec<Value> = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|k| node.get(*k).and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    if !branches.is_empty() {
        let mut all = BTreeSet::new();
        for b in branches {
            all.extend(domain(r, &base, &b)?);
        }
        return Some(all);
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| format!("v:{v}")).collect());
    }
    if let Some(c) = node.get("const") {
        return Some(BTreeSet::from([format!("v:{c}")]));
    }
    match node.get("type") {
        Some(Value::String(t)) => Some(BTreeSet::from([format!("t:{t}")])),
        Some(Value::Array(ts)) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(|t| format!("t:{t}"))
                .collect(),
        ),
        _ => None,
    }
}

fn type_of(json: &str) -> &'static str {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Null) => "null",
        Ok(Value::Bool(_)) => "boolean",
        Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Ok(Value::Number(_)) => "number",
        Ok(Value::String(_)) => "string",
        Ok(Value::Array(_)) => "array",
        _ => "object",
    }
}

/// Whether `new` admits the atom `atom` of the old domain.
fn covers(new: &BTreeSet<String>, atom: &str) -> bool {
    let has_type =
        |t: &str| new.contains(&format!("t:{t}")) || (t == "integer" && new.contains("t:number"));
    match atom.split_once(':') {
        Some(("t", t)) => has_type(t),
        Some(("v", v)) => new.contains(atom) || has_type(type_of(v)),
        _ => false,
    }
}

/// Every way `new` fails to accept what `old` accepted, with JSON pointers. A property of
/// `old` missing from `new` counts as a break (consumers lose a documented field), as does
/// any keyword this check does not judge that differs between them.
pub fn breaking_changes(
    r: &Resolver,
    old_base: &str,
    old: &Value,
    new_base: &str,
    new: &Value,
    at: &str,
) -> Vec<String> {
    changes(r, old_base, old, new_base, new, at, true)
}

/// Every way `new` fails to accept what `old` accepted — acceptance only: a property of `old`
/// that `new` does not describe is a break only where `new` is closed to other properties.
/// (A forward-compatible change is one `old` accepts all of: `accepted_by(old ← new)`.)
pub fn acceptance_breaks(
    r: &Resolver,
    old_base: &str,
    old: &Value,
    new_base: &str,
    new: &Value,
) -> Vec<String> {
    changes(r, old_base, old, new_base, new, "", false)
}

/// The keywords this check judges (or that never change what is accepted).
const JUDGED: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "items",
    "$ref",
    "oneOf",
    "anyOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "additionalProperties",
    "title",
    "description",
    "$schema",
    "$id",
    "$defs",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "x-lienthong-upcast",
];

fn changes(
    r: &Resolver,
    old_base: &str,
    old: &Value,
    new_base: &str,
    new: &Value,
    at: &str,
    removal_breaks: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let (old_base, old) = r.effective(old_base, old, 0);
    let (new_base, new) = r.effective(new_base, new, 0);
    let here = if at.is_empty() { "/" } else { at };
    match (domain(r, &old_base, &old), domain(r, &new_base, &new)) {
        (Some(od), Some(nd)) => {
            let lost: Vec<&String> = od.iter().filter(|a| !covers(&nd, a)).collect();
            let types: Vec<&str> = lost.iter().filter_map(|a| a.strip_prefix("t:")).collect();
            let values: Vec<&str> = lost.iter().filter_map(|a| a.strip_prefix("v:")).collect();
            if !types.is_empty() {
                out.push(format!(
                    "{here}: retyped — no longer accepts {}",
                    types.join(", ")
                ));
            }
            if !values.is_empty() {
                out.push(format!(
                    "{here}: enum narrowed — {} no longer allowed",
                    values.join(", ")
                ));
            }
        }
        (None, Some(nd)) => out.push(format!(
            "{here}: restricted to {} where anything was allowed",
            nd.into_iter().collect::<Vec<_>>().join(", ")
        )),
        _ => {}
    }
    out.extend(tightened(&old, &new, here));
    // Keywords not judged here: any difference is refused rather than let through.
    let keywords = |n: &Value| -> BTreeSet<String> {
        n.as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| !JUDGED.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    for k in keywords(&old).union(&keywords(&new)) {
        if old.get(k) != new.get(k) {
            out.push(format!(
                "{here}: {k} changed — not a change this check can judge; keep it as it was"
            ));
        }
    }
    let props = |n: &Value| {
        n.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let required = |n: &Value| -> BTreeSet<String> {
        n.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (op, np) = (props(&old), props(&new));
    let closed = new.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, old_schema) in &op {
        match np.get(name) {
            None if removal_breaks || closed => out.push(format!("{at}/{name}: property removed")),
            None => {}
            Some(new_schema) => out.extend(changes(
                r,
                &old_base,
                old_schema,
                &new_base,
                new_schema,
                &format!("{at}/{name}"),
                removal_breaks,
            )),
        }
    }
    for name in required(&new).difference(&required(&old)) {
        out.push(format!("{at}/{name}: now required"));
    }
    match (old.get("items"), new.get("items")) {
        (Some(oi), Some(ni)) => out.extend(changes(
            r,
            &old_base,
            oi,
            &new_base,
            ni,
            &format!("{at}/items"),
            removal_breaks,
        )),
        (None, Some(_)) => out.push(format!(
            "{at}/items: items constrained where any was allowed"
        )),
        _ => {}
    }
    out
}

/// The constraints of `new` that reject values `old` accepted.
fn tightened(old: &Value, new: &Value, here: &str) -> Vec<String> {
    let mut out = Vec::new();
    let num = |n: &Value, k: &str| n.get(k).and_then(Value::as_f64);
    // (keyword, a larger value is tighter)
    for (k, larger_is_tighter) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
    ] {
        match (num(old, k), num(new, k)) {
            (None, Some(n)) => out.push(format!("{here}: {k} {n} added")),
            (Some(o), Some(n)) if (larger_is_tighter && n > o) || (!larger_is_tighter && n < o) => {
                out.push(format!("{here}: {k} tightened from {o} to {n}"))
            }
            _ => {}
        }
    }
    for k in ["pattern", "format"] {
        let (o, n) = (old.get(k), new.get(k));
        if n.is_some() && o != n {
            out.push(format!(
                "{here}: {k} {} {}",
                n.map(Value::to_string).unwrap_or_default(),
                if o.is_some() { "changed" } else { "added" }
            ));
        }
    }
    let closed = |n: &Value| n.get("additionalProperties") == Some(&Value::Bool(false));
    if closed(new) && !closed(old) {
        out.push(format!("{here}: closed to additional properties"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(old: Value, new: Value) -> Vec<String> {
        let schemas = BTreeMap::new();
        let r = Resolver { schemas: &schemas };
        breaking_changes(&r, "https://x/a.json", &old, "https://x/b.json", &new, "")
    }

    fn v1() -> Value {
        json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "string"}, "b": {"type": ["integer", "null"]}, "c": {"enum": ["x", "y"]}}})
    }

    #[test]
    fn adding_an_optional_property_or_widening_is_fine() {
        let mut v2 = v1();
        v2["properties"]["d"] = json!({"type": "string"});
        v2["properties"]["b"] = json!({"type": ["number", "null", "string"]});
        v2["properties"]["c"] = json!({"enum": ["x", "y", "z"]});
        assert!(check(v1(), v2).is_empty());
    }

    #[test]
    fn breaking_changes_are_named() {
        let mut v2 = v1();
        v2["properties"].as_object_mut().unwrap().remove("b");
        assert_eq!(check(v1(), v2.clone()), ["/b: property removed"]);
        let mut v2 = v1();
        v2["properties"]["a"] = json!({"type": "integer"});
        assert!(check(v1(), v2)[0].starts_with("/a: retyped"));
        let mut v2 = v1();
        v2["required"] = json!(["a", "b"]);
        assert_eq!(check(v1(), v2), ["/b: now required"]);
        let mut v2 = v1();
        v2["properties"]["c"] = json!({"enum": ["x"]});
        assert_eq!(
            check(v1(), v2),
            ["/c: enum narrowed — \"y\" no longer allowed"]
        );
    }

    #[test]
    fn tightened_constraints_are_named_and_loosened_ones_are_fine() {
        let old = json!({"properties": {"n": {"type": "number", "maximum": 10}, "s": {"type": "string"}}});
        let mut tighter = old.clone();
        tighter["properties"]["n"]["maximum"] = json!(5);
        tighter["properties"]["s"]["maxLength"] = json!(3);
        tighter["properties"]["s"]["pattern"] = json!("^a");
        tighter["additionalProperties"] = json!(false);
        let problems = check(old.clone(), tighter);
        assert_eq!(
            problems,
            [
                "/: closed to additional properties",
                "/n: maximum tightened from 10 to 5",
                "/s: maxLength 3 added",
                "/s: pattern \"^a\" added"
            ]
        );
        let mut looser = old.clone();
        looser["properties"]["n"]["maximum"] = json!(20);
        assert!(check(old, looser).is_empty());
    }

    #[test]
    fn acceptance_alone_lets_an_open_schema_take_new_properties_and_unjudged_keywords_are_refused()
    {
        let schemas = BTreeMap::new();
        let r = Resolver { schemas: &schemas };
        let old = v1();
        let mut new = v1();
        new["properties"]["d"] = json!({"type": "string"});
        // Forward: the old version must accept what the new one allows.
        assert!(
            acceptance_breaks(&r, "https://x/b.json", &new, "https://x/a.json", &old).is_empty()
        );
        let mut closed = old.clone();
        closed["additionalProperties"] = json!(false);
        assert_eq!(
            acceptance_breaks(&r, "https://x/b.json", &new, "https://x/a.json", &closed),
            ["/: closed to additional properties", "/d: property removed"]
        );
        let mut odd = v1();
        odd["properties"]["a"]["multipleOf"] = json!(2);
        assert!(check(v1(), odd)[0].contains("multipleOf changed"));
    }

    #[test]
    fn refs_and_one_of_are_followed() {
        let schemas = BTreeMap::from([(
            "https://x/defs.json".to_string(),
            json!({"$defs": {"s": {"enum": ["open", "closed"]}, "narrow": {"enum": ["open"]}}}),
        )]);
        let r = Resolver { schemas: &schemas };
        let old = json!({"properties": {"s": {"oneOf": [{"$ref": "defs.json#/$defs/s"}, {"type": "null"}]}}});
        let same = json!({"properties": {"s": {"oneOf": [{"$ref": "defs.json#/$defs/s"}, {"type": "null"}]}}});
        let narrower = json!({"properties": {"s": {"oneOf": [{"$ref": "defs.json#/$defs/narrow"}, {"type": "null"}]}}});
        assert!(
            breaking_changes(&r, "https://x/a.json", &old, "https://x/b.json", &same, "")
                .is_empty()
        );
        assert_eq!(
            breaking_changes(
                &r,
                "https://x/a.json",
                &old,
                "https://x/b.json",
                &narrower,
                ""
            )
            .len(),
            1
        );
    }
}
