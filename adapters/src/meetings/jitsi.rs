//! Jitsi (prosody `mod_event_sync`): room created/destroyed and occupant joined/left, POSTed
//! as JSON to `<api_prefix>/events/room/created|destroyed` and
//! `/events/occupant/joined|left`. Times are epoch seconds; an occupant's `name`, `email` and
//! `id` are present only with JWT sign-in, and `id` is `<unit>.<account>`, the unit naming
//! the organ (`ubnd-mui-ne`: the People's Committee of Mũi Né ward).
//!
//! Occupant events name only the room, and a room name can be used again: which run of the
//! room (which meeting) an occupant event belongs to is decided by [`Rooms`], the adapter's
//! memory of each room's runs, so that a post delivered twice maps to the same meeting and
//! the same event ids. `room/destroyed` lists every occupant with their join and leave
//! times: mapped into the same `joined`/`left` events (same ids) it fills in whatever was
//! missed.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::mapping::{draft, from_secs, kind_of, rfc3339, MapContext, Mapped};
use crate::error::RecordError;

pub const ENGINE: &str = "jitsi";

/// The four event paths.
pub const PATHS: &[&str] = &[
    "room/created",
    "room/destroyed",
    "occupant/joined",
    "occupant/left",
];

#[derive(Debug, Clone, Deserialize)]
pub struct RoomEvent {
    pub room_name: String,
    #[serde(default)]
    pub is_breakout: Option<bool>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub destroyed_at: Option<i64>,
    #[serde(default)]
    pub occupant: Option<Occupant>,
    #[serde(default)]
    pub all_occupants: Vec<Occupant>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Occupant {
    pub occupant_jid: String,
    #[serde(default)]
    pub joined_at: Option<i64>,
    #[serde(default)]
    pub left_at: Option<i64>,
    /// `<unit>.<account>` with JWT sign-in.
    #[serde(default)]
    pub id: Option<String>,
}

impl Occupant {
    /// The session part of the occupant's JID (`room@conference/…/<resource>`).
    fn resource(&self) -> &str {
        self.occupant_jid
            .rsplit_once('/')
            .map(|(_, r)| r)
            .unwrap_or(&self.occupant_jid)
    }
}

/// One run of a room: a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub created_at: i64,
    #[serde(default)]
    pub destroyed_at: Option<i64>,
    /// Started by an occupant before the room's creation was seen.
    #[serde(default)]
    pub inferred: bool,
}

/// What the adapter remembers of a room: its runs, newest last (at most [`Rooms::KEEP`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rooms {
    pub runs: Vec<Run>,
}

impl Rooms {
    pub const KEEP: usize = 50;

    /// The run a room creation at `created` belongs to: an open run the occupants started
    /// before the creation was seen, the run created then, or a new one.
    pub fn created(&mut self, created: i64) -> i64 {
        if let Some(r) = self.runs.iter().find(|r| r.created_at == created) {
            return r.created_at;
        }
        if let Some(r) = self
            .runs
            .iter_mut()
            .rev()
            .find(|r| r.inferred && r.destroyed_at.is_none() && r.created_at >= created)
        {
            r.inferred = false;
            return r.created_at;
        }
        self.push(Run {
            created_at: created,
            destroyed_at: None,
            inferred: false,
        })
    }

    /// The run an occupant event at `t` belongs to (a new, inferred one if none covers it).
    pub fn at(&mut self, t: i64) -> i64 {
        if let Some(r) = self
            .runs
            .iter()
            .rev()
            .find(|r| r.created_at <= t && r.destroyed_at.is_none_or(|d| t <= d))
        {
            return r.created_at;
        }
        self.push(Run {
            created_at: t,
            destroyed_at: None,
            inferred: true,
        })
    }

    /// The run a destruction ends: the one created at `created`, or the open run covering it.
    pub fn destroyed(&mut self, created: i64, destroyed: i64) -> i64 {
        let i = self
            .runs
            .iter()
            .position(|r| r.created_at == created)
            .or_else(|| {
                self.runs.iter().rposition(|r| {
                    r.created_at >= created
                        && r.created_at <= destroyed
                        && r.destroyed_at.is_none_or(|d| d == destroyed)
                })
            });
        match i {
            Some(i) => {
                self.runs[i].destroyed_at = Some(destroyed);
                self.runs[i].created_at
            }
            None => self.push(Run {
                created_at: created,
                destroyed_at: Some(destroyed),
                inferred: false,
            }),
        }
    }

    fn push(&mut self, run: Run) -> i64 {
        let at = run.created_at;
        self.runs.push(run);
        self.runs.sort_by_key(|r| r.created_at);
        if self.runs.len() > Self::KEEP {
            let drop = self.runs.len() - Self::KEEP;
            self.runs.drain(..drop);
        }
        at
    }
}

/// The meeting id of a room's run.
pub fn meeting_id(room: &str, created_at: i64) -> String {
    format!("{room}@{created_at}")
}

fn occupant_events(
    ctx: &MapContext,
    mid: &str,
    o: &Occupant,
    joined: bool,
    left: bool,
) -> Result<Vec<lienthong_bus::EventDraft>, RecordError> {
    let (organ, ward) = match o.id.as_deref().and_then(|id| id.split_once('.')) {
        Some((unit, _)) => ctx.unit(unit),
        None => (None, None),
    };
    // The account when signed in with a JWT, otherwise the session.
    let who = o.id.as_deref().unwrap_or(o.resource());
    let participant = ctx.pseudonymizer.participant(ENGINE, who);
    let mut out = Vec::new();
    let resource = o.resource();
    if joined {
        let t = o
            .joined_at
            .ok_or_else(|| RecordError::missing("occupant.joined_at"))?;
        let at = from_secs(t).ok_or_else(|| RecordError::invalid("joined_at", "not a time"))?;
        out.push(draft(
            "participant",
            "joined",
            format!("jitsi/{mid}/joined/{resource}/{t}"),
            mid,
            at,
            json!({
                "meeting_id": mid, "engine": ENGINE, "participant_ref": participant,
                "role": null, "guest": o.id.is_none(), "organ": organ, "ward": ward,
                "joined_at": rfc3339(at),
            }),
        ));
    }
    if left {
        let t = o
            .left_at
            .ok_or_else(|| RecordError::missing("occupant.left_at"))?;
        let at = from_secs(t).ok_or_else(|| RecordError::invalid("left_at", "not a time"))?;
        out.push(draft(
            "participant",
            "left",
            format!("jitsi/{mid}/left/{resource}/{t}"),
            mid,
            at,
            json!({
                "meeting_id": mid, "engine": ENGINE, "participant_ref": participant,
                "organ": organ, "ward": ward,
                "joined_at": o.joined_at.and_then(from_secs).map(rfc3339),
                "left_at": rfc3339(at),
            }),
        ));
    }
    Ok(out)
}

/// One event-sync post (`path` is one of [`PATHS`]) as bus events, given the room's memory
/// (updated here).
pub fn map_post(path: &str, body: &Value, rooms: &mut Rooms, ctx: &MapContext) -> Mapped {
    let e: RoomEvent = match RoomEvent::deserialize(body) {
        Ok(e) => e,
        Err(e) => {
            return Mapped::Unreadable(RecordError::malformed(
                "Jitsi event",
                None,
                format!("{path}: {e}"),
            ))
        }
    };
    if e.room_name.is_empty() {
        return Mapped::Unreadable(RecordError::invalid("room_name", "empty"));
    }
    let room = e.room_name.as_str();
    let result = match path {
        "room/created" => {
            let Some(created) = e.created_at else {
                return Mapped::Unreadable(RecordError::missing("created_at"));
            };
            let Some(at) = from_secs(created) else {
                return Mapped::Unreadable(RecordError::invalid("created_at", "not a time"));
            };
            let run = rooms.created(created);
            let mid = meeting_id(room, run);
            let (kind, kind_raw) = kind_of(Some(room));
            Ok(vec![draft(
                "meeting",
                "started",
                format!("jitsi/{mid}/room-created"),
                &mid,
                at,
                json!({
                    "meeting_id": mid, "engine": ENGINE, "external_id": room, "title": null,
                    "kind": kind, "kind_raw": kind_raw, "host_organ": ctx.host_organ,
                    "host_ward": null, "breakout": e.is_breakout.unwrap_or(false),
                    "started_at": rfc3339(at),
                }),
            )])
        }
        "room/destroyed" => {
            let (Some(created), Some(destroyed)) = (e.created_at, e.destroyed_at) else {
                return Mapped::Unreadable(RecordError::missing("created_at and destroyed_at"));
            };
            let (Some(start), Some(end)) = (from_secs(created), from_secs(destroyed)) else {
                return Mapped::Unreadable(RecordError::invalid(
                    "created_at/destroyed_at",
                    "not a time",
                ));
            };
            let run = rooms.destroyed(created, destroyed);
            let mid = meeting_id(room, run);
            let mut out = Vec::new();
            for o in &e.all_occupants {
                match occupant_events(ctx, &mid, o, o.joined_at.is_some(), o.left_at.is_some()) {
                    Ok(evs) => out.extend(evs),
                    Err(reason) => return Mapped::Unreadable(reason),
                }
            }
            out.push(draft(
                "meeting",
                "ended",
                format!("jitsi/{mid}/room-destroyed"),
                &mid,
                end,
                json!({
                    "meeting_id": mid, "engine": ENGINE, "external_id": room,
                    "started_at": rfc3339(start), "ended_at": rfc3339(end),
                }),
            ));
            Ok(out)
        }
        "occupant/joined" | "occupant/left" => {
            let Some(o) = &e.occupant else {
                return Mapped::Unreadable(RecordError::missing("occupant"));
            };
            let joined = path == "occupant/joined";
            let Some(t) = o.joined_at.or(o.left_at) else {
                return Mapped::Unreadable(RecordError::missing("occupant.joined_at or left_at"));
            };
            let run = rooms.at(t);
            occupant_events(ctx, &meeting_id(room, run), o, joined, !joined)
        }
        other => return Mapped::NotCarried(other.to_string()),
    };
    match result {
        Ok(events) => Mapped::Events(events),
        Err(reason) => Mapped::Unreadable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posts() -> Vec<(String, Value)> {
        let v: Value = serde_json::from_str(include_str!(
            "../../fixtures/meetings/jitsi/event-sync-posts.json"
        ))
        .unwrap();
        v["posts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("/events/")
                        .to_string(),
                    p["body"].clone(),
                )
            })
            .collect()
    }

    fn map_all(posts: &[(String, Value)], rooms: &mut Rooms) -> Vec<lienthong_bus::EventDraft> {
        let ctx = super::super::bbb::tests::ctx();
        let mut out = Vec::new();
        for (path, body) in posts {
            match map_post(path, body, rooms, &ctx) {
                Mapped::Events(e) => out.extend(e),
                other => panic!("{path}: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn the_fixture_room_maps_to_one_meeting_and_the_destruction_fills_in_the_missing_leave() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let drafts = map_all(&posts(), &mut Rooms::default());
        let mids: std::collections::BTreeSet<&str> =
            drafts.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(mids.len(), 1, "{mids:?}");
        let ids: std::collections::BTreeSet<&str> = drafts.iter().map(|d| d.id.as_str()).collect();
        // The destruction repeats both joins and Hạnh's leave (same ids) and adds Quân's leave.
        assert_eq!(ids.len(), 6, "{ids:#?}");
        let wards: Vec<&Value> = drafts.iter().map(|d| &d.data["ward"]).collect();
        assert!(wards.contains(&&json!("mui-ne")));
        let text = serde_json::to_string(
            &drafts
                .iter()
                .map(|d| (&d.data, &d.id, &d.key))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for personal in [
            "Đặng Minh Quân",
            "Võ Thị Hạnh",
            "dangminhquan",
            "vothihanh",
            "@phanthiet.binhthuan.gov.vn",
        ] {
            assert!(!text.contains(personal), "{personal} leaked");
        }
        for d in &drafts {
            let id = registry.schema_id(&d.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &d.data)
                .unwrap_or_else(|f| panic!("{}: {f:?}", d.id));
        }
    }

    #[test]
    fn the_same_posts_again_map_to_the_same_ids_and_a_reused_room_to_a_new_meeting() {
        let posts = posts();
        let mut rooms = Rooms::default();
        let first = map_all(&posts, &mut rooms);
        let again = map_all(&posts, &mut rooms);
        let ids =
            |d: &[lienthong_bus::EventDraft]| d.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&again));
        // The room used again a week later is another meeting.
        let later: Vec<(String, Value)> = posts
            .iter()
            .map(|(p, b)| {
                let shifted = serde_json::to_string(b).unwrap();
                let mut v: Value = serde_json::from_str(&shifted).unwrap();
                shift(&mut v, 7 * 86_400);
                (p.clone(), v)
            })
            .collect();
        let next = map_all(&later, &mut rooms);
        assert_ne!(next[0].key, first[0].key);
        assert_eq!(rooms.runs.len(), 2);
    }

    #[test]
    fn an_occupant_before_the_room_is_seen_starts_a_run_the_creation_then_joins() {
        let mut rooms = Rooms::default();
        let run = rooms.at(1_000);
        assert_eq!(
            rooms.created(990),
            run,
            "the creation adopts the inferred run"
        );
        assert_eq!(rooms.destroyed(990, 2_000), run);
        assert_eq!(rooms.at(3_000), 3_000, "after the end: a new run");
    }

    fn shift(v: &mut Value, by: i64) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k.ends_with("_at") {
                        if let Some(n) = x.as_i64() {
                            *x = json!(n + by);
                        }
                    } else {
                        shift(x, by);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| shift(x, by)),
            _ => {}
        }
    }
}
