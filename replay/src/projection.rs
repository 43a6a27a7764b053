//! Projections: deterministic folds of events into a tree, with no side effects.

use chrono::{DateTime, Utc};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::ReceivedEvent;
use serde_json::Value;

use crate::error::Result;
use crate::store::Changes;

/// An event's data as projections read it: parsed into one arena (sonic-rs), several times
/// cheaper to build and free than a `serde_json::Value` — a rebuild parses every event.
pub type Data = sonic_rs::Value;

/// `v` as [`Data`] (binary-mode events, upcasters, tests).
pub fn data_of(v: &Value) -> Data {
    sonic_rs::to_value(v).unwrap_or_default()
}

/// `d` as a `serde_json::Value` (what read models keep of it as JSON).
pub fn json_of(d: &Data) -> Value {
    serde_json::from_str(&sonic_rs::to_string(d).unwrap_or_default()).unwrap_or_default()
}

/// Whether an object anywhere in `d` repeats a member name. A `serde_json::Value` keeps the
/// last of them (so do the bus's validator and every other reader), an arena value keeps
/// both and finds the first: such data is read through serde_json so that the fold sees
/// what everyone else sees.
pub fn has_repeated_names(d: &Data) -> bool {
    use sonic_rs::JsonContainerTrait;
    if let Some(o) = d.as_object() {
        // Small objects (every event's data here) without allocating: names seen so far
        // on the stack, compared only when a cheap 64-bit summary (length, first and last
        // byte) says one may repeat.
        let mut small: [&str; 32] = [""; 32];
        let mut summary = 0u64;
        let mut seen: Option<std::collections::HashSet<&str>> = None;
        for (i, (name, value)) in o.iter().enumerate() {
            let repeated = match &mut seen {
                Some(set) => !set.insert(name),
                None if i < small.len() => {
                    let b = name.as_bytes();
                    let first = usize::from(b.first().copied().unwrap_or(0));
                    let last = usize::from(b.last().copied().unwrap_or(0));
                    let bit = 1u64 << ((b.len() ^ (first * 7) ^ (last * 13)) % 64);
                    let r = summary & bit != 0 && small[..i].contains(&name);
                    summary |= bit;
                    small[i] = name;
                    r
                }
                None => {
                    let mut set: std::collections::HashSet<&str> = small.into_iter().collect();
                    let r = !set.insert(name);
                    seen = Some(set);
                    r
                }
            };
            if repeated || has_repeated_names(value) {
                return true;
            }
        }
        return false;
    }
    d.as_array()
        .is_some_and(|a| a.iter().any(has_repeated_names))
}

/// The value at a JSON pointer (`/organ/organ_id`) in `d`.
pub fn pointer<'a>(d: &'a Data, p: &str) -> Option<&'a Data> {
    use sonic_rs::JsonValueTrait;
    let mut at = d;
    for token in p.split('/').skip(1) {
        // Unescaped only when escaped (the projections' pointers never are: no allocation).
        let token: std::borrow::Cow<str> = if token.contains('~') {
            token.replace("~1", "/").replace("~0", "~").into()
        } else {
            token.into()
        };
        at = match at.get(token.as_ref()) {
            Some(v) => v,
            None => at.get(token.parse::<usize>().ok()?)?,
        };
    }
    Some(at)
}

/// An event as projections see it: its attributes, JSON data and stream position.
#[derive(Debug, Clone)]
pub struct ProjectedEvent {
    pub ty: String,
    pub id: String,
    pub source: String,
    /// The aggregate key (CloudEvents `subject`).
    pub key: Option<String>,
    pub time: Option<DateTime<Utc>>,
    /// Data in the newest shape (older versions upcast).
    pub data: Data,
    /// The version of `data` after upcasting.
    pub version: u32,
    pub sequence: u64,
}

impl ProjectedEvent {
    /// Takes the event apart (its data is moved, not copied) and upcasts the data.
    pub fn from_received(ev: ReceivedEvent) -> Option<Self> {
        use lienthong_bus::cloudevents::event::Data;
        let sequence = ev.stream_sequence;
        let mut e = ev.event;
        let stored_version = e
            .dataschema()
            .and_then(|u| crate::upcast::version_of(u.as_str()))
            .unwrap_or(1);
        let raw = match e.take_data().2? {
            Data::Json(v) => v,
            Data::String(s) => serde_json::from_str(&s).ok()?,
            Data::Binary(b) => serde_json::from_slice(&b).ok()?,
        };
        let (version, data) = crate::upcast::upcast(e.ty(), stored_version, raw);
        Some(Self {
            ty: e.ty().to_string(),
            id: e.id().to_string(),
            source: e.source().to_string(),
            key: e.subject().map(str::to_string),
            time: e.time().copied(),
            data: data_of(&data),
            version,
            sequence,
        })
    }
}

/// A moment as it was on the clock in Phan Thiết (UTC+7), for per-day and per-month counts.
pub fn local_time(at: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let tz = chrono::FixedOffset::east_opt(7 * 3600)?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&tz))
}

/// A read model built by folding one stream.
pub trait Projection: Send + Sync + 'static {
    /// Name of the read model (and its trees).
    fn name(&self) -> &'static str;
    /// The stream it folds.
    fn stream(&self) -> &'static str;
    /// Subjects of that stream it needs (empty: all).
    fn filter_subjects(&self) -> Vec<String> {
        Vec::new()
    }
    /// Folds one event. Must be deterministic and only touch `changes`.
    fn apply(&self, changes: &mut Changes<'_>, event: &ProjectedEvent) -> Result<()>;
    /// The shape of what it writes. Raise it when the fold changes: a served tree of an
    /// older version is rebuilt from the stream before it is followed again.
    fn version(&self) -> u32 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::has_repeated_names;

    #[test]
    fn repeated_member_names_are_found_at_any_depth_and_size() {
        let parse = |s: &str| sonic_rs::from_str::<super::Data>(s).unwrap();
        assert!(!has_repeated_names(&parse(
            r#"{"a":1,"b":{"a":2},"c":[{"a":1,"b":2}]}"#
        )));
        assert!(has_repeated_names(&parse(r#"{"a":1,"a":2}"#)));
        // Names alike in length, first and last byte are compared, not taken for repeats.
        assert!(!has_repeated_names(&parse(r#"{"axb":1,"ayb":2,"":3}"#)));
        assert!(has_repeated_names(&parse(r#"{"axb":1,"ayb":2,"axb":3}"#)));
        assert!(has_repeated_names(&parse(r#"{"":1,"x":2,"":3}"#)));
        assert!(has_repeated_names(&parse(
            r#"{"x":{"b":[1,{"c":1,"c":2}]}}"#
        )));
        let many = |repeat: bool| {
            let mut members: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
            if repeat {
                members.push(r#""k3":0"#.into());
            }
            format!("{{{}}}", members.join(","))
        };
        assert!(!has_repeated_names(&parse(&many(false))));
        assert!(has_repeated_names(&parse(&many(true))));
    }
}
