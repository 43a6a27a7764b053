//! The event catalogue: an AsyncAPI 3.0 document generated from the [subsystem
//! registry](crate::registry), the roles and the schemas — never written by hand.
//!
//! One channel per event type, addressed `egov.<subsystem>.<entity>.{key}.<action>` with the
//! `key` parameter; one message per schema version, whose payload is the structured-mode
//! CloudEvent (`schemaFormat` `application/schema+json;version=draft-2020-12`: the envelope
//! attributes of the contract, and `data` the event's own schema, with every schema it refers
//! to embedded so the document is self-contained), whose headers are the contract's NATS
//! headers, with the schema's examples. Each channel names, as `x-lienthong-*` extensions,
//! its stream, the stream's retention, who may publish and who may read it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::registry;
use crate::roles;
use crate::schema::SchemaRegistry;
use crate::subject::EventType;

/// The schema format of every payload.
pub const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-2020-12";

/// Where clients reach the bus: NATS URLs (`nats://host:port`).
#[derive(Debug, Clone)]
pub struct CatalogServers(pub Vec<String>);

/// The stream holding events of `subsystem` (a subsystem's or the bus's own).
fn stream_of(subsystem: &str) -> Option<&'static str> {
    crate::topology::stream_for_subsystem(subsystem)
}

/// Who may publish events of `subsystem`.
fn publishers(subsystem: &str) -> Vec<String> {
    match registry::subsystem(subsystem) {
        Some(s) => vec![s.adapter_role(), "ingress".into()],
        None if subsystem == registry::DLQ.subject_root => {
            let mut all: Vec<String> = registry::subsystems()
                .iter()
                .map(|s| s.adapter_role())
                .collect();
            all.push("ingress".into());
            all
        }
        None if subsystem == registry::AGENCIES.subject_root => {
            vec!["operator".into(), "deliver".into()]
        }
        None if subsystem == registry::REGISTRY.subject_root => vec!["operator".into()],
        None => vec!["replay".into()],
    }
}

/// Every schema `id` refers to, transitively (its own id included), by `$id`.
fn referenced(schemas: &SchemaRegistry, id: &str, out: &mut BTreeMap<String, Value>) {
    if out.contains_key(id) {
        return;
    }
    let Some(file) = schemas.files().find(|f| f.id == id) else {
        return;
    };
    out.insert(id.to_string(), file.json.clone());
    let mut refs = BTreeSet::new();
    collect_refs(&file.json, &mut refs);
    let Ok(base) = url::Url::parse(id) else {
        return;
    };
    for r in refs {
        if let Ok(mut target) = base.join(&r) {
            target.set_fragment(None);
            referenced(schemas, target.as_str(), out);
        }
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) if !r.starts_with('#') => {
                        out.insert(r.clone());
                    }
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The payload schema of one event type version: the CloudEvent in structured mode.
fn envelope_schema(schemas: &SchemaRegistry, ty: &str, schema_id: &str) -> Value {
    let mut embedded = BTreeMap::new();
    referenced(schemas, schema_id, &mut embedded);
    let defs: Map<String, Value> = embedded
        .into_iter()
        .map(|(id, json)| {
            let key = id
                .strip_prefix(crate::schema::SCHEMA_BASE)
                .unwrap_or(&id)
                .to_string();
            (key, json)
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{ty} (CloudEvents 1.0, structured mode)"),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "Deterministic from the subsystem record: the same record always gives the same id."},
            "source": {"type": "string", "format": "uri-reference", "minLength": 1, "description": "The subsystem instance, e.g. urn:lienthong:phanthiet:<subsystem>."},
            "type": {"const": ty},
            "subject": {"type": "string", "description": "The aggregate key as the subsystem wrote it; its encoded form is the `{key}` of the channel address."},
            "time": {"type": "string", "format": "date-time", "description": "When it happened in the subsystem."},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": schema_id},
            "dataclassification": {"enum": ["public", "internal", "confidential", "restricted"]},
            "traceparent": {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
            "data": {"$ref": schema_id}
        },
        "$defs": defs,
    })
}

/// The NATS headers of every event.
fn headers_schema() -> Value {
    json!({
        "type": "object",
        "required": ["Content-Type", "Nats-Msg-Id"],
        "properties": {
            "Content-Type": {"const": "application/cloudevents+json"},
            "Nats-Msg-Id": {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "First 16 bytes of SHA-256(source, 0x00, id), hex: the server drops a second copy within the duplicate window."},
            "Nats-Expected-Last-Subject-Sequence": {"type": "string", "description": "Optimistic concurrency: publish only if the aggregate's last sequence is this."},
            "Nats-Expected-Last-Subject-Sequence-Subject": {"type": "string", "description": "egov.<subsystem>.<entity>.<key>.>"}
        }
    })
}

fn retention() -> Value {
    json!({
        "storage": "file",
        "retention": "limits",
        "max_age": "unlimited",
        "deny_delete": true,
        "deny_purge": true,
        "duplicate_window_seconds": crate::topology::DUPLICATE_WINDOW.as_secs(),
    })
}

fn title_of(subsystem: &str) -> (&'static str, &'static str) {
    match registry::subsystem(subsystem) {
        Some(s) => (s.title, s.title_vi),
        None => registry::SYSTEM_STREAMS
            .iter()
            .find(|s| s.subject_root == subsystem)
            .map(|s| (s.title, s.title_vi))
            .unwrap_or(("", "")),
    }
}

/// One field of an event's data, for people to read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Field {
    pub name: String,
    /// `string`, `integer | null`, `one of: a, b`, `date-time`, …
    pub kind: String,
    pub required: bool,
    pub description: String,
}

/// The schema at `reference` (relative to the schema `base`), and its own id.
fn resolve<'a>(
    schemas: &'a SchemaRegistry,
    base: &str,
    reference: &str,
) -> Option<(String, &'a Value)> {
    let target = url::Url::parse(base).ok()?.join(reference).ok()?;
    let pointer = target.fragment().unwrap_or_default().to_string();
    let mut file_id = target.clone();
    file_id.set_fragment(None);
    let file = schemas.files().find(|f| f.id == file_id.as_str())?;
    let value = if pointer.is_empty() {
        &file.json
    } else {
        file.json.pointer(&pointer)?
    };
    Some((file.id.clone(), value))
}

fn describe_kind(schemas: &SchemaRegistry, base: &str, v: &Value) -> (String, String) {
    let mut description = v
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        if let Some((id, target)) = resolve(schemas, base, r) {
            let (kind, d) = describe_kind(schemas, &id, target);
            if description.is_empty() {
                description = d;
            }
            return (kind, description);
        }
    }
    let kind = if let Some(c) = v.get("const") {
        format!("= {c}")
    } else if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let items: Vec<String> = e
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect();
        format!("one of: {}", items.join(", "))
    } else if let Some(alts) = v
        .get("anyOf")
        .or_else(|| v.get("oneOf"))
        .and_then(Value::as_array)
    {
        alts.iter()
            .map(|a| describe_kind(schemas, base, a).0)
            .collect::<Vec<_>>()
            .join(" | ")
    } else {
        let types = match v.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | "),
            _ => "any".into(),
        };
        match v.get("format").and_then(Value::as_str) {
            Some(f) => types.replacen("string", f, 1),
            None => types,
        }
    };
    (kind, description)
}

/// The fields of an event's data, as its schema `id` describes them (properties of the
/// schema and of what it refers to at its top level).
pub fn fields(schemas: &SchemaRegistry, id: &str) -> Vec<Field> {
    let Some(file) = schemas.files().find(|f| f.id == id) else {
        return Vec::new();
    };
    let mut layers = vec![(id.to_string(), &file.json)];
    if let Some(r) = file.json.get("$ref").and_then(Value::as_str) {
        if let Some((base, target)) = resolve(schemas, id, r) {
            layers.insert(0, (base, target));
        }
    }
    let mut out: Vec<Field> = Vec::new();
    for (base, layer) in layers {
        let required: BTreeSet<&str> = layer
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = layer.get("properties").and_then(Value::as_object) {
            for (name, v) in props {
                let (kind, description) = describe_kind(schemas, &base, v);
                out.retain(|f| &f.name != name);
                out.push(Field {
                    name: name.clone(),
                    kind,
                    required: required.contains(name.as_str()),
                    description,
                });
            }
        }
    }
    out
}

/// The AsyncAPI 3.0 document of the bus.
pub fn asyncapi(schemas: &SchemaRegistry, servers: &CatalogServers) -> Value {
    let mut by_type: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for (ty, version, id) in schemas.event_types() {
        by_type
            .entry(ty.to_string())
            .or_default()
            .push((version, id.to_string()));
    }
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for (ty, versions) in &by_type {
        let Ok(t) = EventType::parse(ty) else {
            continue;
        };
        let Some(stream) = stream_of(&t.subsystem) else {
            continue;
        };
        let channel_id = format!("{}.{}.{}", t.subsystem, t.entity, t.action);
        let schema_title = |id: &str| {
            schemas
                .files()
                .find(|f| f.id == id)
                .and_then(|f| {
                    f.json
                        .get("title")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default()
        };
        let mut channel_messages = Map::new();
        for (version, id) in versions {
            let message_id = format!("{channel_id}.v{version}");
            let examples: Vec<Value> = schemas
                .examples()
                .iter()
                .filter(|e| e.schema_id == *id && e.expect_valid)
                .map(|e| {
                    let name = e.path.rsplit('/').next().unwrap_or(&e.path).trim_end_matches(".json");
                    json!({
                        "name": name,
                        "headers": {"Content-Type": "application/cloudevents+json", "Nats-Msg-Id": "0123456789abcdef0123456789abcdef"},
                        "payload": {
                            "specversion": "1.0", "id": format!("example/{name}"),
                            "source": format!("urn:lienthong:phanthiet:{}", t.subsystem), "type": ty,
                            "subject": "example-key", "time": "2023-06-05T08:00:00+07:00",
                            "datacontenttype": "application/json", "dataschema": id,
                            "dataclassification": "internal", "data": e.json,
                        },
                    })
                })
                .collect();
            messages.insert(
                message_id.clone(),
                json!({
                    "name": ty,
                    "title": format!("{} (v{version})", schema_title(id)),
                    "summary": schema_title(id),
                    "contentType": crate::envelope::STRUCTURED_CONTENT_TYPE,
                    "headers": headers_schema(),
                    "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": envelope_schema(schemas, ty, id)},
                    "examples": examples,
                    "x-lienthong-schema-version": version,
                    "x-lienthong-dataschema": id,
                }),
            );
            channel_messages.insert(
                format!("v{version}"),
                json!({"$ref": format!("#/components/messages/{message_id}")}),
            );
        }
        let (title, title_vi) = title_of(&t.subsystem);
        let readers = roles::readers(stream);
        channels.insert(
            channel_id.clone(),
            json!({
                "address": format!("egov.{}.{}.{{key}}.{}", t.subsystem, t.entity, t.action),
                "title": ty,
                "summary": format!("{title_vi} — {title}"),
                "parameters": {"key": {"description": "The aggregate key (the event's `subject`), encoded as one token: A–Z a–z 0–9 - _ kept, every other byte of its UTF-8 form written ~ and two upper-case hex digits (PT.2023/1003 > → PT~2E2023~2F1003~20~3E); the empty key is ~."}},
                "messages": channel_messages,
                "x-lienthong-stream": stream,
                "x-lienthong-stream-subjects": format!("egov.{}.>", t.subsystem),
                "x-lienthong-retention": retention(),
                "x-lienthong-publishers": publishers(&t.subsystem),
                "x-lienthong-readers": readers,
                "x-lienthong-grantable": registry::subsystem_of_stream(stream).is_some_and(|s| s.grantable),
            }),
        );
        let message_refs: Vec<Value> = channels[&channel_id]["messages"]
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|k| json!({"$ref": format!("#/channels/{channel_id}/messages/{k}")}))
                    .collect()
            })
            .unwrap_or_default();
        operations.insert(
            format!("{channel_id}.send"),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{channel_id}")},
                "summary": format!("Publish {ty} (JetStream publish, acknowledged)"),
                "messages": message_refs,
                "x-lienthong-roles": publishers(&t.subsystem),
            }),
        );
        operations.insert(
            format!("{channel_id}.receive"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{channel_id}")},
                "summary": format!("Read {ty} from the stream {stream} (consumer or direct get)"),
                "messages": message_refs,
                "x-lienthong-roles": roles::readers(stream),
            }),
        );
    }
    let servers: Map<String, Value> = servers
        .0
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let host = url
                .split_once("://")
                .map(|(_, h)| h)
                .unwrap_or(url)
                .trim_end_matches('/')
                .to_string();
            (
                format!("nats-{}", i + 1),
                json!({
                    "host": host,
                    "protocol": "nats",
                    "description": "NATS JetStream; connect with a role's credentials (data/credentials/<role>.env: NATS_URL, NATS_USER, NATS_PASSWORD, NATS_INBOX_PREFIX).",
                }),
            )
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "id": "urn:lienthong:phanthiet:bus",
        "info": {
            "title": "Lienthong — event catalogue",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The events of Phan Thiết's integration bus (Lienthong): CloudEvents 1.0 in structured JSON mode on NATS JetStream, one stream per subsystem. Danh mục sự kiện của hệ thống liên thông: mỗi phân hệ một luồng, mỗi loại sự kiện một kênh, kèm lược đồ, ví dụ và vai trò được đọc.",
            "license": {"name": "Apache-2.0"},
            "tags": registry::subsystems().iter().map(|s| json!({"name": s.name, "description": format!("{} — {}", s.title_vi, s.title)})).collect::<Vec<_>>(),
        },
        "defaultContentType": crate::envelope::STRUCTURED_CONTENT_TYPE,
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_and_stream_is_in_the_catalogue() {
        let schemas = SchemaRegistry::embedded().unwrap();
        let doc = asyncapi(
            &schemas,
            &CatalogServers(vec!["nats://127.0.0.1:4222".into()]),
        );
        let names: BTreeSet<&str> = doc["components"]["messages"]
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        for (ty, _, id) in schemas.event_types() {
            assert!(names.contains(ty), "{ty}");
            assert!(doc.to_string().contains(id), "{id}");
        }
        let streams: BTreeSet<&str> = doc["channels"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c["x-lienthong-stream"].as_str().unwrap())
            .collect();
        for s in registry::stream_names() {
            assert!(streams.contains(s), "{s}");
        }
        let ch = &doc["channels"]["meetings.participant.joined"];
        assert_eq!(ch["address"], "egov.meetings.participant.{key}.joined");
        assert!(ch["x-lienthong-readers"]
            .as_array()
            .unwrap()
            .contains(&json!("auditor")));
        assert_eq!(ch["x-lienthong-grantable"], true);
        assert_eq!(
            doc["channels"]["agencies.agency.granted"]["x-lienthong-publishers"],
            json!(["operator", "deliver"])
        );
        assert_eq!(doc["servers"]["nats-1"]["host"], "127.0.0.1:4222");
        // The payload embeds what the event's schema refers to.
        let payload =
            &doc["components"]["messages"]["meetings.participant.joined.v1"]["payload"]["schema"];
        assert!(payload["$defs"]["meetings/defs/v1.json"].is_object());
        assert!(payload["$defs"]["common/v1.json"].is_object());
    }

    #[test]
    fn fields_include_what_the_schema_refers_to() {
        let schemas = SchemaRegistry::embedded().unwrap();
        let f = fields(
            &schemas,
            "https://lienthong.vn/schemas/meetings/participant.joined/v1.json",
        );
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        for n in [
            "meeting_id",
            "engine",
            "participant_ref",
            "ward",
            "joined_at",
        ] {
            assert!(names.contains(&n), "{names:?}");
        }
        let engine = f.iter().find(|f| f.name == "engine").unwrap();
        assert!(
            engine.required && engine.kind.contains("bigbluebutton"),
            "{engine:?}"
        );
        let joined = f.iter().find(|f| f.name == "joined_at").unwrap();
        assert_eq!(joined.kind, "date-time");
    }
}
