//! BigBlueButton webhooks (bbb-webhooks 3.x): what the callback emitter POSTs, how it is
//! authenticated, and its events as bus events.
//!
//! A post is `application/x-www-form-urlencoded` with `domain`, `event` (a JSON array of
//! events, as text) and `timestamp` (ms). Authentication: `?checksum=` on the URL, the
//! hex digest (SHA-1 by default, or SHA-256/384/512) of *callback URL + body + shared
//! secret*, or with `auth2_0` an `Authorization: Bearer <secret>` header.
//!
//! Events carry no id of their own: an event's id is built from the meeting's internal id,
//! the event kind, the user's internal id and the event's own time, so a post delivered
//! twice is stored once. Never mapped: user names, account names (`external-user-id` is only
//! pseudonymised), IP addresses, user agents, session tokens, the meeting's passwords and
//! metadata other than the organ and kind.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::mapping::{draft, from_millis, kind_of, rfc3339, MapContext, Mapped};
use crate::error::RecordError;

pub const ENGINE: &str = "bigbluebutton";

/// The checksum algorithms bbb-webhooks may be configured with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    #[default]
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// The checksum of a post: hex digest of `callback_url + body + secret`.
pub fn checksum(alg: ChecksumAlgorithm, callback_url: &str, body: &[u8], secret: &str) -> String {
    fn digest<D: Digest>(parts: [&[u8]; 3]) -> String {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        hex::encode(d.finalize())
    }
    let parts = [callback_url.as_bytes(), body, secret.as_bytes()];
    match alg {
        ChecksumAlgorithm::Sha1 => digest::<sha1::Sha1>(parts),
        ChecksumAlgorithm::Sha256 => digest::<sha2::Sha256>(parts),
        ChecksumAlgorithm::Sha384 => digest::<sha2::Sha384>(parts),
        ChecksumAlgorithm::Sha512 => digest::<sha2::Sha512>(parts),
    }
}

/// The events of one post.
pub fn parse_post(body: &[u8]) -> Result<Vec<Value>, RecordError> {
    let mut event = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        if k == "event" {
            event = Some(v.into_owned());
        }
    }
    let event = event.ok_or_else(|| RecordError::missing("the form field `event`"))?;
    match serde_json::from_str::<Value>(&event) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(RecordError::invalid("event", "not a JSON array of events")),
        Err(e) => Err(RecordError::malformed(
            "JSON",
            None,
            format!("`event`: {e}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Debug, Deserialize)]
struct Data {
    id: String,
    attributes: Attributes,
    #[serde(default)]
    event: Option<EventInfo>,
}

#[derive(Debug, Deserialize)]
struct EventInfo {
    ts: i64,
}

#[derive(Debug, Deserialize)]
struct Attributes {
    meeting: Meeting,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Meeting {
    internal_meeting_id: String,
    #[serde(default)]
    external_meeting_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    is_breakout: Option<bool>,
    #[serde(default)]
    create_time: Option<i64>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    internal_user_id: String,
    #[serde(default)]
    external_user_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    guest: Option<bool>,
    #[serde(default)]
    userdata: Option<Map<String, Value>>,
}

fn text<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// One BigBlueButton event (a member of a post's `event` array) as bus events.
pub fn map_event(raw: &Value, ctx: &MapContext) -> Mapped {
    let e: Envelope = match Envelope::deserialize(raw) {
        Ok(e) => e,
        Err(e) => {
            return Mapped::Unreadable(RecordError::malformed(
                "BigBlueButton event",
                None,
                e.to_string(),
            ))
        }
    };
    let d = e.data;
    let meeting = &d.attributes.meeting;
    let mid = meeting.internal_meeting_id.as_str();
    if mid.is_empty() {
        return Mapped::Unreadable(RecordError::missing("meeting.internal-meeting-id"));
    }
    let Some(ts) = d.event.as_ref().map(|e| e.ts) else {
        return Mapped::Unreadable(RecordError::missing(format!("event.ts of {}", d.id)));
    };
    let Some(at) = from_millis(ts) else {
        return Mapped::Unreadable(RecordError::invalid(
            "event.ts",
            format!("{ts} is not a time"),
        ));
    };
    match d.id.as_str() {
        "meeting-created" => {
            let started = meeting.create_time.and_then(from_millis).unwrap_or(at);
            let meta = meeting.metadata.as_ref();
            let (kind, kind_raw) = kind_of(text(meta, "meta_kind"));
            let host = text(meta, "meta_organ").map(str::to_string);
            let external = meeting
                .external_meeting_id
                .clone()
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| mid.to_string());
            Mapped::Events(vec![draft(
                "meeting",
                "started",
                format!("bbb/{mid}/meeting-created"),
                mid,
                started,
                json!({
                    "meeting_id": mid,
                    "engine": ENGINE,
                    "external_id": external,
                    "title": meeting.name.as_deref().map(crate::pii::mask),
                    "kind": kind,
                    "kind_raw": kind_raw,
                    "host_ward": ctx.ward_of(host.as_deref()),
                    "host_organ": host,
                    "breakout": meeting.is_breakout.unwrap_or(false),
                    "started_at": rfc3339(started),
                }),
            )])
        }
        "meeting-ended" => Mapped::Events(vec![draft(
            "meeting",
            "ended",
            format!("bbb/{mid}/meeting-ended"),
            mid,
            at,
            json!({
                "meeting_id": mid,
                "engine": ENGINE,
                "external_id": meeting.external_meeting_id,
                "started_at": meeting.create_time.and_then(from_millis).map(rfc3339),
                "ended_at": rfc3339(at),
            }),
        )]),
        kind @ ("user-joined" | "user-left") => {
            let Some(user) = &d.attributes.user else {
                return Mapped::Unreadable(RecordError::missing(format!("the user of {kind}")));
            };
            let account = user
                .external_user_id
                .as_deref()
                .filter(|x| !x.is_empty())
                .unwrap_or(&user.internal_user_id);
            let participant = ctx.pseudonymizer.participant(ENGINE, account);
            let organ = text(user.userdata.as_ref(), "bbb_organ").map(str::to_string);
            let ward = ctx.ward_of(organ.as_deref());
            let id = format!("bbb/{mid}/{kind}/{}/{ts}", user.internal_user_id);
            let event = if kind == "user-joined" {
                let role = match user.role.as_deref() {
                    Some("MODERATOR") => Some("moderator"),
                    Some("VIEWER") => Some("viewer"),
                    _ => None,
                };
                draft(
                    "participant",
                    "joined",
                    id,
                    mid,
                    at,
                    json!({
                        "meeting_id": mid, "engine": ENGINE, "participant_ref": participant,
                        "role": role, "guest": user.guest.unwrap_or(false),
                        "organ": organ, "ward": ward, "joined_at": rfc3339(at),
                    }),
                )
            } else {
                draft(
                    "participant",
                    "left",
                    id,
                    mid,
                    at,
                    json!({
                        "meeting_id": mid, "engine": ENGINE, "participant_ref": participant,
                        "organ": organ, "ward": ward, "joined_at": null, "left_at": rfc3339(at),
                    }),
                )
            };
            Mapped::Events(vec![event])
        }
        other => Mapped::NotCarried(other.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymizer;
    use crate::wards::Wards;

    pub(crate) fn ctx() -> MapContext {
        MapContext {
            pseudonymizer: Pseudonymizer::new(b"meetings-test-key-0123").unwrap(),
            wards: Wards::phan_thiet(),
            host_organ: "UBND thành phố Phan Thiết".into(),
            city_unit: "ubnd-phanthiet".into(),
        }
    }

    fn posts() -> Value {
        serde_json::from_str(include_str!(
            "../../fixtures/meetings/bbb/webhook-posts.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_fixture_checksums_verify_and_a_changed_byte_does_not() {
        let p = posts();
        let url = p["callback_url"].as_str().unwrap();
        let secret = p["shared_secret"].as_str().unwrap();
        for post in p["posts"].as_array().unwrap() {
            let body = post["body"].as_str().unwrap();
            let given = post["url"]
                .as_str()
                .unwrap()
                .split("checksum=")
                .nth(1)
                .unwrap();
            assert_eq!(
                checksum(ChecksumAlgorithm::Sha1, url, body.as_bytes(), secret),
                given
            );
            let tampered = body.replacen("domain=", "domain=x", 1);
            assert_ne!(
                checksum(ChecksumAlgorithm::Sha1, url, tampered.as_bytes(), secret),
                given
            );
        }
        assert_eq!(
            checksum(ChecksumAlgorithm::Sha256, "u", b"b", "s").len(),
            64
        );
        assert_eq!(
            checksum(ChecksumAlgorithm::Sha512, "u", b"b", "s").len(),
            128
        );
    }

    #[test]
    fn the_fixture_meeting_maps_without_personal_data_and_validates() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let c = ctx();
        let mut drafts = Vec::new();
        for post in posts()["posts"].as_array().unwrap() {
            for e in parse_post(post["body"].as_str().unwrap().as_bytes()).unwrap() {
                match map_event(&e, &c) {
                    Mapped::Events(d) => drafts.extend(d),
                    other => panic!("{other:?}"),
                }
            }
        }
        let types: Vec<String> = drafts.iter().map(|d| d.event_type.to_string()).collect();
        assert_eq!(
            types
                .iter()
                .filter(|t| t.ends_with("participant.joined"))
                .count(),
            4
        );
        assert_eq!(
            types
                .iter()
                .filter(|t| t.ends_with("participant.left"))
                .count(),
            1
        );
        assert!(
            types[0].ends_with("meeting.started")
                && types.last().unwrap().ends_with("meeting.ended")
        );
        let started = &drafts[0].data;
        assert_eq!(started["kind"], "weekly_briefing");
        assert_eq!(started["host_organ"], "UBND thành phố Phan Thiết");
        let wards: Vec<&Value> = drafts.iter().map(|d| &d.data["ward"]).collect();
        assert!(wards.contains(&&json!("phu-thuy")) && wards.contains(&&json!("tien-thanh")));
        let text = serde_json::to_string(
            &drafts
                .iter()
                .map(|d| (&d.data, &d.id, &d.key))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for personal in [
            "Đặng Minh Quân",
            "Nguyễn Thị Mai",
            "Lê Quốc Bảo",
            "Phạm Văn Hùng",
            "vpubnd.dangminhquan",
            "phuthuy.nguyenthimai",
            "203.0.113",
            "198.51.100",
            "stk_",
            "Mozilla",
            "mp-7Qx2LkPz",
            "ap-3Vn8RtYw",
            "613-555-1234",
        ] {
            assert!(!text.contains(personal), "{personal} leaked");
        }
        for d in &drafts {
            let id = registry.schema_id(&d.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &d.data)
                .unwrap_or_else(|f| panic!("{}: {f:?}", d.id));
        }
        // The same post mapped again gives the same ids.
        let again = map_event(
            &parse_post(posts()["posts"][1]["body"].as_str().unwrap().as_bytes()).unwrap()[0],
            &c,
        );
        let Mapped::Events(again) = again else {
            panic!()
        };
        assert_eq!(again[0].id, drafts[1].id);
    }

    #[test]
    fn other_events_are_not_carried_and_broken_ones_are_unreadable() {
        let c = ctx();
        let chat = json!({"data": {"type": "event", "id": "chat-group-message-sent", "attributes": {"meeting": {"internal-meeting-id": "m"}}, "event": {"ts": 1}}});
        assert!(
            matches!(map_event(&chat, &c), Mapped::NotCarried(k) if k == "chat-group-message-sent")
        );
        assert!(matches!(
            map_event(&json!({"data": 5}), &c),
            Mapped::Unreadable(_)
        ));
        let no_ts = json!({"data": {"type": "event", "id": "meeting-ended", "attributes": {"meeting": {"internal-meeting-id": "m"}}}});
        assert!(matches!(map_event(&no_ts, &c), Mapped::Unreadable(_)));
        assert!(parse_post(b"domain=x&event=%7Bnot").is_err());
        assert!(parse_post(b"domain=x").is_err());
    }
}
