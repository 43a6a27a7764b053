//! The demo city's online meetings in 2023: the weekly briefing of the city with every ward and
//! commune (Mondays 08:00, BigBlueButton), the monthly review (last Friday, 14:00,
//! BigBlueButton), and ad-hoc meetings with a few wards (Jitsi), plus the fixtures' two
//! meetings. They are fed to the adapter as the meeting systems send them: bbb-webhooks posts
//! with their checksums, and Jitsi event_sync posts with the bearer token — names, account
//! names and IP addresses included, as the real systems send them.
//!
//! The totals are counted from those raw records ([`totals`]), not from the adapter's mapping.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use lienthong_bus::Shutdown;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::adapter::{BbbConfig, JitsiConfig, MeetingsConfig};
use super::bbb::{checksum, ChecksumAlgorithm};
use crate::demo::{free_addr, scaled, tz, wait_until_up, year_start, DemoPart, DemoSettings};
use crate::error::AdapterError;
use crate::wards::{fold, Wards};
use crate::AdapterConfig;

const CITY: &str = "UBND thành phố Phan Thiết";
const DEPARTMENTS: &[&str] = &[
    "Phòng Quản lý đô thị",
    "Phòng Tài nguyên và Môi trường",
    "Phòng Văn hóa và Thông tin",
];
const SURNAMES: &[&str] = &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi"];
const GIVEN: &[&str] = &[
    "Văn An",
    "Thị Hoa",
    "Minh Tuấn",
    "Thị Lan",
    "Quốc Bảo",
    "Thanh Hải",
    "Thị Mai",
    "Đức Long",
];

/// Someone who takes part in the city's meetings.
#[derive(Debug, Clone)]
struct Person {
    internal: String,
    /// The account name (BigBlueButton `external-user-id`; Jitsi `<unit>.<account>`).
    account: String,
    name: String,
    organ: String,
    ip: String,
}

/// What the meeting systems send for the year.
#[derive(Debug, Clone, Default)]
pub struct MeetingsYear {
    /// BigBlueButton events (as in `event` arrays), in time order.
    pub bbb_events: Vec<Value>,
    /// Jitsi posts: (path under `/events/`, body), in time order.
    pub jitsi_posts: Vec<(String, Value)>,
}

fn people(rng: &mut StdRng) -> (Vec<Person>, BTreeMap<String, Vec<Person>>, Vec<Person>) {
    let mut n = 0u32;
    let mut person = |rng: &mut StdRng, organ: &str, unit: &str| {
        n += 1;
        let name = format!(
            "{} {}",
            SURNAMES[rng.random_range(0..SURNAMES.len())],
            GIVEN[rng.random_range(0..GIVEN.len())]
        );
        Person {
            internal: format!("w_{:012x}", rng.random::<u64>() & 0xffff_ffff_ffff),
            account: format!("{unit}.{}{n}", fold(&name).replace(' ', "")),
            name,
            organ: organ.to_string(),
            ip: format!("203.0.113.{}", rng.random_range(1..255)),
        }
    };
    let city: Vec<Person> = (0..4)
        .map(|_| person(rng, CITY, "ubnd-phanthiet"))
        .collect();
    let mut wards = BTreeMap::new();
    for w in Wards::phan_thiet().all() {
        let organ = format!("UBND {}", w.in_sentence());
        let unit = format!("ubnd-{}", w.slug);
        wards.insert(
            w.slug.clone(),
            (0..3).map(|_| person(rng, &organ, &unit)).collect(),
        );
    }
    let departments = DEPARTMENTS
        .iter()
        .enumerate()
        .map(|(i, d)| person(rng, d, &format!("phong-{i}")))
        .collect();
    (city, wards, departments)
}

/// One meeting as it happened.
struct Held {
    start: DateTime<Utc>,
    minutes: i64,
    /// (person, joined after start in minutes, left before the end in minutes when early).
    attendance: Vec<(Person, i64, Option<i64>)>,
}

fn attendance(
    rng: &mut StdRng,
    minutes: i64,
    people: &[&Person],
    early: f64,
) -> Vec<(Person, i64, Option<i64>)> {
    people
        .iter()
        .map(|p| {
            let join = rng.random_range(0..6);
            let leave = rng
                .random_bool(early)
                .then(|| rng.random_range(join + 10..minutes - 1));
            ((*p).clone(), join, leave)
        })
        .collect()
}

fn bbb_meeting(rng: &mut StdRng, m: &Held, external: &str, title: &str, kind: &str) -> Vec<Value> {
    let create = m.start.timestamp_millis() + rng.random_range(0..999);
    let internal = format!("{:040x}-{create}", rng.random::<u128>());
    let meeting = |extra: Value| {
        let mut v = json!({"internal-meeting-id": internal, "external-meeting-id": external});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    };
    let event = |id: &str, ts: i64, attributes: Value| json!({"data": {"type": "event", "id": id, "attributes": attributes, "event": {"ts": ts}}});
    let mut out = vec![event(
        "meeting-created",
        create + 7,
        json!({"meeting": meeting(json!({
            "name": title, "is-breakout": false, "parent-id": "bbb-none", "duration": 0,
            "create-time": create, "moderator-pass": format!("mp-{:08x}", rng.random::<u32>()),
            "viewer-pass": format!("ap-{:08x}", rng.random::<u32>()), "record": false,
            "voice-conf": format!("{}", rng.random_range(70000..79999)), "max-users": 0,
            "metadata": {"meta_organ": CITY, "meta_kind": kind, "meta_bbb-origin": "Greenlight", "meta_chair": m.attendance[0].0.name},
        }))}),
    )];
    let mut timed = Vec::new();
    for (i, (p, join, leave)) in m.attendance.iter().enumerate() {
        let user = json!({
            "internal-user-id": p.internal, "external-user-id": p.account.split_once('.').map(|(_, a)| a).unwrap_or(&p.account),
            "name": p.name, "role": if i == 0 { "MODERATOR" } else { "VIEWER" }, "presenter": i == 0,
            "ip-address": p.ip, "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/114.0",
            "session-token": format!("stk_{:x}", rng.random::<u64>()), "userdata": {"bbb_organ": p.organ},
            "stream": "", "guest": false,
        });
        let at = create + join * 60_000 + i as i64 * 500;
        timed.push((
            at,
            event(
                "user-joined",
                at,
                json!({"meeting": meeting(json!({})), "user": user.clone()}),
            ),
        ));
        if let Some(l) = leave {
            let at = create + l * 60_000 + i as i64 * 500;
            timed.push((
                at,
                event(
                    "user-left",
                    at,
                    json!({"meeting": meeting(json!({})), "user": user}),
                ),
            ));
        }
    }
    timed.sort_by_key(|(t, _)| *t);
    out.extend(timed.into_iter().map(|(_, e)| e));
    out.push(event(
        "meeting-ended",
        create + m.minutes * 60_000 + 450,
        json!({"meeting": meeting(json!({}))}),
    ));
    out
}

fn jitsi_meeting(m: &Held, room: &str) -> Vec<(String, Value)> {
    let jid = format!("{room}@conference.hop.phanthiet.binhthuan.gov.vn");
    let created = m.start.timestamp();
    let destroyed = created + m.minutes * 60;
    let occupant = |p: &Person, i: usize, join: i64, leave: Option<i64>| {
        let mut o = json!({
            "occupant_jid": format!("{jid}/{:08x}", (i as u64 + 1) * 2_654_435_761 % 0xffff_ffff),
            "joined_at": created + join * 60 + i as i64,
            "name": p.name, "email": format!("{}@phanthiet.binhthuan.gov.vn", p.account.replace('.', "_")),
            "id": p.account,
        });
        if let Some(l) = leave {
            o["left_at"] = json!(created + l * 60 + i as i64);
        }
        o
    };
    let base = json!({"room_name": room, "room_jid": jid, "is_breakout": false});
    let with = |extra: Value| {
        let mut v = base.clone();
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    };
    let mut out = vec![(
        "room/created".to_string(),
        with(json!({"event_name": "muc-room-created", "created_at": created})),
    )];
    let mut timed = Vec::new();
    for (i, (p, join, leave)) in m.attendance.iter().enumerate() {
        timed.push((
            created + join * 60 + i as i64,
            ("occupant/joined".to_string(), with(json!({"event_name": "muc-occupant-joined", "occupant": occupant(p, i, *join, None)}))),
        ));
        if let Some(l) = leave {
            timed.push((
                created + l * 60 + i as i64,
                ("occupant/left".to_string(), with(json!({"event_name": "muc-occupant-left", "occupant": occupant(p, i, *join, Some(*l))}))),
            ));
        }
    }
    timed.sort_by_key(|(t, _)| *t);
    out.extend(timed.into_iter().map(|(_, p)| p));
    let all: Vec<Value> = m
        .attendance
        .iter()
        .enumerate()
        .map(|(i, (p, join, leave))| occupant(p, i, *join, Some(leave.unwrap_or(m.minutes - 1))))
        .collect();
    out.push((
        "room/destroyed".to_string(),
        with(json!({"event_name": "muc-room-destroyed", "created_at": created, "destroyed_at": destroyed, "all_occupants": all})),
    ));
    out
}

fn at_local(day: chrono::NaiveDate, hour: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, 0, 0)
        .expect("time")
        .and_local_timezone(tz())
        .single()
        .expect("unambiguous")
        .to_utc()
}

/// The fixtures' two meetings, as their systems sent them.
fn fixtures() -> MeetingsYear {
    let bbb = include_str!("../../fixtures/meetings/bbb/mapped-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture"))
        .collect();
    let jitsi: Value = serde_json::from_str(include_str!(
        "../../fixtures/meetings/jitsi/event-sync-posts.json"
    ))
    .expect("fixture");
    MeetingsYear {
        bbb_events: bbb,
        jitsi_posts: jitsi["posts"]
            .as_array()
            .expect("posts")
            .iter()
            .map(|p| {
                (
                    p["path"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("/events/")
                        .to_string(),
                    p["body"].clone(),
                )
            })
            .collect(),
    }
}

/// The year's meetings: weekly briefings and monthly reviews with every ward, ad-hoc
/// meetings with a few; fewer at smaller scales (never fewer than one of each).
pub fn year(settings: &DemoSettings) -> MeetingsYear {
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(3));
    let (city, wards, departments) = people(&mut rng);
    let mut out = fixtures();
    let first = year_start(settings.year).date_naive();
    let mondays: Vec<chrono::NaiveDate> = first
        .iter_days()
        .take_while(|d| d.year() == settings.year)
        .filter(|d| d.weekday() == Weekday::Mon)
        .collect();
    // The fixtures stand for the briefings of 5 and 12 June.
    let fixture_days = [
        chrono::NaiveDate::from_ymd_opt(2023, 6, 5),
        chrono::NaiveDate::from_ymd_opt(2023, 6, 12),
    ];
    let weeks = scaled(mondays.len(), settings.scale);
    let step = (mondays.len() / weeks).max(1);
    for (n, day) in mondays.iter().enumerate().step_by(step).take(weeks) {
        if fixture_days.contains(&Some(*day)) {
            continue;
        }
        let minutes = rng.random_range(90..150);
        let mut present: Vec<&Person> = city.iter().take(rng.random_range(2..4)).collect();
        for staff in wards.values() {
            // The first briefing of the year has every ward; later, a ward is sometimes absent.
            if n == 0 || !rng.random_bool(0.03) {
                present.extend(staff.iter().take(rng.random_range(1..3)));
            }
        }
        present.extend(departments.iter().filter(|_| rng.random_bool(0.4)));
        let held = Held {
            start: at_local(*day, 8),
            minutes,
            attendance: attendance(&mut rng, minutes, &present, 0.15),
        };
        let week = day.iso_week().week();
        out.bbb_events.extend(bbb_meeting(
            &mut rng,
            &held,
            &format!("giaoban-tuan-{week}-{}", settings.year),
            &format!("Giao ban trực tuyến tuần {week} — {CITY} với các phường, xã"),
            "giao-ban-tuan",
        ));
    }
    let months = scaled(12, settings.scale);
    for month in (1..=12u32).step_by((12 / months).max(1)).take(months) {
        let last = (1..=31)
            .rev()
            .filter_map(|d| chrono::NaiveDate::from_ymd_opt(settings.year, month, d))
            .find(|d| d.weekday() == Weekday::Fri)
            .expect("a Friday");
        let minutes = rng.random_range(120..180);
        let mut present: Vec<&Person> = city.iter().collect();
        for staff in wards.values() {
            present.extend(staff.iter().take(2));
        }
        present.extend(departments.iter());
        let held = Held {
            start: at_local(last, 14),
            minutes,
            attendance: attendance(&mut rng, minutes, &present, 0.1),
        };
        out.bbb_events.extend(bbb_meeting(
            &mut rng,
            &held,
            &format!("soket-thang-{month}-{}", settings.year),
            &format!("Sơ kết công tác tháng {month}/{} — {CITY}", settings.year),
            "so-ket-thang",
        ));
    }
    let topics = [
        "phong-chong-bao",
        "ve-sinh-moi-truong",
        "trat-tu-do-thi",
        "phong-dich",
    ];
    for i in 0..scaled(18, settings.scale) {
        let day = first + Duration::days(rng.random_range(0..364));
        let minutes = rng.random_range(30..90);
        let mut present: Vec<&Person> = vec![&city[0]];
        let chosen: BTreeSet<usize> = (0..rng.random_range(3..8))
            .map(|_| rng.random_range(0..wards.len()))
            .collect();
        for (j, staff) in wards.values().enumerate() {
            if chosen.contains(&j) {
                present.push(&staff[0]);
            }
        }
        let held = Held {
            start: at_local(day, 15),
            minutes,
            attendance: attendance(&mut rng, minutes, &present, 0.2),
        };
        let room = format!(
            "hop-dotxuat-{}-{}",
            topics[i % topics.len()],
            day.format("%Y-%m-%d")
        );
        out.jitsi_posts.extend(jitsi_meeting(&held, &room));
    }
    out
}

/// The year's totals, counted from the raw records: meetings (started in the year, UTC+7),
/// per month and kind, participations (a participant in a meeting), distinct participants,
/// wards connected (whose People's Committee joined at least one meeting) and meetings per
/// ward, and the average duration in minutes (meetings with a known start and end).
pub fn totals(y: &MeetingsYear, year: i32) -> Value {
    #[derive(Default)]
    struct M {
        start: Option<i64>,
        end: Option<i64>,
        kind: String,
        people: BTreeSet<String>,
        wards: BTreeSet<String>,
    }
    let wards_table = Wards::phan_thiet();
    let ward_of_organ = |organ: &str| {
        let f = fold(organ);
        let bare = f
            .strip_prefix("ubnd phuong ")
            .or_else(|| f.strip_prefix("ubnd xa "))?;
        wards_table
            .all()
            .iter()
            .find(|w| fold(&w.name).ends_with(bare))
            .map(|w| w.slug.clone())
    };
    let mut meetings: BTreeMap<String, M> = BTreeMap::new();
    for e in &y.bbb_events {
        let d = &e["data"];
        let m = &d["attributes"]["meeting"];
        let Some(id) = m["internal-meeting-id"].as_str() else {
            continue;
        };
        let entry = meetings.entry(format!("bbb:{id}")).or_default();
        match d["id"].as_str() {
            Some("meeting-created") => {
                entry.start = m["create-time"].as_i64();
                entry.kind = match m["metadata"]["meta_kind"].as_str() {
                    Some("giao-ban-tuan") => "weekly_briefing",
                    Some("so-ket-thang") => "monthly_review",
                    _ => "other",
                }
                .into();
            }
            Some("meeting-ended") => entry.end = d["event"]["ts"].as_i64(),
            Some("user-joined") => {
                let u = &d["attributes"]["user"];
                entry.people.insert(
                    u["external-user-id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                if let Some(w) = u["userdata"]["bbb_organ"].as_str().and_then(ward_of_organ) {
                    entry.wards.insert(w);
                }
            }
            _ => {}
        }
    }
    for (path, b) in &y.jitsi_posts {
        let Some(room) = b["room_name"].as_str() else {
            continue;
        };
        let created = b["created_at"].as_i64().or_else(|| {
            b["occupant"]["joined_at"].as_i64().and_then(|t| {
                y.jitsi_posts
                    .iter()
                    .filter(|(p, x)| p == "room/created" && x["room_name"] == room)
                    .filter_map(|(_, x)| x["created_at"].as_i64())
                    .filter(|c| *c <= t)
                    .max()
            })
        });
        let Some(created) = created else { continue };
        let entry = meetings
            .entry(format!("jitsi:{room}@{created}"))
            .or_default();
        entry.start = Some(created * 1000);
        entry.kind = if room.starts_with("hop-dotxuat") {
            "ad_hoc"
        } else {
            "weekly_briefing"
        }
        .into();
        let mut occupants: Vec<&Value> = b["all_occupants"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if path == "occupant/joined" {
            occupants.push(&b["occupant"]);
        }
        if path == "room/destroyed" {
            entry.end = b["destroyed_at"].as_i64().map(|t| t * 1000);
        }
        for o in occupants {
            let id = o["id"]
                .as_str()
                .or(o["occupant_jid"].as_str())
                .unwrap_or_default();
            entry.people.insert(format!("jitsi:{id}"));
            if let Some(slug) = id
                .split_once('.')
                .and_then(|(u, _)| u.strip_prefix("ubnd-"))
            {
                if wards_table.by_slug(slug).is_some() {
                    entry.wards.insert(slug.to_string());
                }
            }
        }
    }
    let local_year = |ms: i64| DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz()));
    let mut by_month: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_ward: BTreeMap<String, usize> = BTreeMap::new();
    let (mut participations, mut people, mut durations) = (0usize, BTreeSet::new(), Vec::new());
    let mut count = 0usize;
    for (id, m) in &meetings {
        let Some(start) = m.start.and_then(local_year) else {
            continue;
        };
        if start.year() != year {
            continue;
        }
        count += 1;
        *by_month
            .entry(start.format("%Y-%m").to_string())
            .or_default() += 1;
        *by_kind.entry(m.kind.clone()).or_default() += 1;
        for w in &m.wards {
            *by_ward.entry(w.clone()).or_default() += 1;
        }
        participations += m.people.len();
        let engine = id.split(':').next().unwrap_or_default();
        people.extend(m.people.iter().map(|p| format!("{engine}:{p}")));
        if let (Some(s), Some(e)) = (m.start, m.end) {
            durations.push((e - s) as f64 / 60_000.0);
        }
    }
    let average = (!durations.is_empty())
        .then(|| (durations.iter().sum::<f64>() / durations.len() as f64 * 10.0).round() / 10.0);
    json!({
        "meetings": count,
        "by_month": by_month,
        "by_kind": by_kind,
        "wards_connected": by_ward.len(),
        "by_ward": by_ward,
        "participations": participations,
        "participants": people.len(),
        "average_duration_minutes": average,
    })
}

/// Posts the year to the adapter as the meeting systems would.
async fn feed(
    y: MeetingsYear,
    base: String,
    callback: String,
    secret: String,
    token: String,
) -> Result<(), AdapterError> {
    wait_until_up(&format!("{base}/healthz")).await?;
    let http = reqwest::Client::new();
    let fail = |url: &str, reason: String| AdapterError::Source {
        url: url.to_string(),
        reason,
    };
    for chunk in y.bbb_events.chunks(10) {
        let ts = chunk
            .last()
            .and_then(|e| e["data"]["event"]["ts"].as_i64())
            .unwrap_or_default();
        let event = serde_json::to_string(chunk).map_err(|e| fail(&callback, e.to_string()))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("domain", "hop.phanthiet.binhthuan.gov.vn")
            .append_pair("event", &event)
            .append_pair("timestamp", &ts.to_string())
            .finish();
        let sum = checksum(ChecksumAlgorithm::Sha1, &callback, body.as_bytes(), &secret);
        let url = format!("{callback}?checksum={sum}");
        let r = http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(&url, e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(&url, format!("answered {}", r.status())));
        }
    }
    for (path, body) in &y.jitsi_posts {
        let url = format!("{base}/meetings/jitsi/events/{path}");
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .json(body)
            .send()
            .await
            .map_err(|e| fail(&url, e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(&url, format!("answered {}", r.status())));
        }
    }
    Ok(())
}

pub async fn start(settings: DemoSettings, _shutdown: Shutdown) -> Result<DemoPart, AdapterError> {
    let y = year(&settings);
    let totals = totals(&y, settings.year);
    let (key_file, _) = settings.secret("meetings-pseudonymization.key")?;
    let (secret_file, secret) = settings.secret("bbb-webhooks.secret")?;
    let (token_file, token) = settings.secret("jitsi-event-sync.token")?;
    let listen = free_addr()?;
    let base = format!("http://{listen}");
    let callback = format!("{base}/meetings/bbb");
    let feed = (!settings.done("meetings-pushed")).then(|| {
        let settings = settings.clone();
        let (base, callback) = (base.clone(), callback.clone());
        Box::pin(async move {
            let events = y.bbb_events.len() + y.jitsi_posts.len();
            feed(y, base, callback, secret, token).await?;
            settings.mark_done("meetings-pushed")?;
            tracing::info!(events, "posted the demo's meetings to the adapter");
            Ok(())
        }) as crate::demo::Feed
    });
    Ok(DemoPart {
        subsystem: "meetings",
        config: AdapterConfig::Meetings(MeetingsConfig {
            source: "urn:lienthong:phanthiet:meetings".into(),
            instance: None,
            listen,
            pseudonymization_key_file: key_file,
            host_organ: CITY.into(),
            city_unit: "ubnd-phanthiet".into(),
            hold_secs: 30,
            bbb: Some(BbbConfig {
                callback_url: callback.clone(),
                shared_secret_file: secret_file,
                checksum_algorithm: ChecksumAlgorithm::Sha1,
            }),
            jitsi: Some(JitsiConfig { token_file }),
        }),
        totals,
        tasks: Vec::new(),
        feed,
        lines: vec![format!(
            "  Meetings webhooks  {callback}  (Jitsi: {base}/meetings/jitsi/events/…)"
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(scale: f64) -> DemoSettings {
        DemoSettings::in_data_dir(std::path::Path::new("/nonexistent"), scale)
    }

    #[test]
    fn the_year_connects_all_eighteen_wards_at_every_scale() {
        for scale in [1.0, 0.05] {
            let y = year(&settings(scale));
            let t = totals(&y, 2023);
            assert_eq!(t["wards_connected"], 18, "scale {scale}: {t}");
            assert!(t["meetings"].as_u64().unwrap() >= 4, "{t}");
            assert!(t["average_duration_minutes"].as_f64().unwrap() > 30.0);
        }
        let full = totals(&year(&settings(1.0)), 2023);
        let weekly = full["by_kind"]["weekly_briefing"].as_u64().unwrap();
        assert!((50..=54).contains(&weekly), "{full}");
        assert_eq!(full["by_kind"]["monthly_review"], 12);
    }

    #[test]
    fn the_fixtures_are_counted_from_their_raw_records() {
        let t = totals(&fixtures(), 2023);
        assert_eq!(t["meetings"], 2);
        assert_eq!(t["participations"], 4 + 2);
        assert_eq!(t["wards_connected"], 4, "{t}");
        // 75.0 and 60.0 minutes.
        assert_eq!(t["average_duration_minutes"], 67.5);
    }
}
