//! Online meetings end to end against a real server: the fixtures' BigBlueButton webhook posts
//! (with their real checksums) and Jitsi event_sync posts go through the adapter's endpoints
//! as the meeting systems send them; hostile posts are refused; what lands on MEETINGS is
//! valid, pseudonymous and stored once; the read model shows the meetings.

mod common;

use std::time::Duration;

use common::Bus;
use lienthong_adapters::meetings::adapter::{BbbConfig, JitsiConfig, MeetingsConfig};
use lienthong_adapters::meetings::bbb::ChecksumAlgorithm;
use lienthong_adapters::meetings::MeetingsAdapter;
use lienthong_adapters::AdapterContext;
use lienthong_bus::subscriber::decode_stored;
use serde_json::Value;

const BBB: &str = include_str!("../adapters/fixtures/meetings/bbb/webhook-posts.json");
const JITSI: &str = include_str!("../adapters/fixtures/meetings/jitsi/event-sync-posts.json");

struct Running {
    base: String,
    adapter: MeetingsAdapter,
    _dir: tempfile::TempDir,
}

async fn adapter(bus: &Bus, hold_secs: u64) -> Running {
    let bbb: Value = serde_json::from_str(BBB).unwrap();
    let jitsi: Value = serde_json::from_str(JITSI).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let token = jitsi["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let config = MeetingsConfig {
        source: "urn:lienthong:phanthiet:meetings".into(),
        instance: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        pseudonymization_key_file: write("key", "meetings-test-key-0123456789"),
        host_organ: "UBND thành phố Phan Thiết".into(),
        city_unit: "ubnd-phanthiet".into(),
        hold_secs,
        bbb: Some(BbbConfig {
            callback_url: bbb["callback_url"].as_str().unwrap().into(),
            shared_secret_file: write("bbb", bbb["shared_secret"].as_str().unwrap()),
            checksum_algorithm: ChecksumAlgorithm::Sha1,
        }),
        jitsi: Some(JitsiConfig {
            token_file: write("jitsi", token),
        }),
    };
    // Acknowledgements wait at most a second: a stopped server shows quickly.
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(bus.client("adapter-meetings").await);
    let ctx = AdapterContext {
        js,
        registry: bus.registry.clone(),
        metrics: lienthong_bus::Metrics::new(),
        refusals: lienthong_bus::Refusals::none(),
        transport: Default::default(),
    };
    let adapter = MeetingsAdapter::build(config, ctx).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = adapter.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Running {
        base,
        adapter,
        _dir: dir,
    }
}

/// The fixture's posts: (query with the checksum, body).
fn bbb_posts() -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(BBB).unwrap();
    v["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let url = p["url"].as_str().unwrap();
            (
                url.split_once('?').unwrap().1.to_string(),
                p["body"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn jitsi_posts() -> Vec<(String, Value)> {
    let v: Value = serde_json::from_str(JITSI).unwrap();
    v["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p["body"].clone()))
        .collect()
}

async fn post_bbb(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    body: &str,
) -> reqwest::Response {
    http.post(format!("{base}/meetings/bbb?{query}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn webhooks_from_both_systems_are_stored_once_pseudonymised_and_shown() {
    let bus = Bus::start().await;
    let a = adapter(&bus, 5).await;
    let http = reqwest::Client::new();

    // Hostile first: a wrong checksum, a body changed after signing, no token, wrong token.
    let posts = bbb_posts();
    let (query, body) = &posts[0];
    let forged = query.replace(&query[query.len() - 4..], "0000");
    assert_eq!(post_bbb(&http, &a.base, &forged, body).await.status(), 401);
    let tampered = body.replace("giaoban-tuan-23", "giaoban-tuan-99");
    assert_eq!(
        post_bbb(&http, &a.base, query, &tampered).await.status(),
        401
    );
    assert_eq!(post_bbb(&http, &a.base, "", body).await.status(), 401);
    let r = http
        .post(format!("{}/meetings/jitsi/events/room/created", a.base))
        .json(&jitsi_posts()[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        bus.messages("MEETINGS").await,
        0,
        "nothing refused is stored"
    );

    // The real posts, then all of them again (a redelivery): stored once.
    for round in 0..2 {
        for (query, body) in &posts {
            let r = post_bbb(&http, &a.base, query, body).await;
            assert_eq!(
                r.status(),
                200,
                "round {round}: {}",
                r.text().await.unwrap()
            );
        }
        for (path, body) in jitsi_posts() {
            let r = http
                .post(format!("{}/meetings/jitsi{path}", a.base))
                .bearer_auth("jitsi-token-for-fixtures-only")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        }
    }
    // BigBlueButton with auth2_0: the shared secret as a bearer token.
    let r = http
        .post(format!("{}/meetings/bbb", a.base))
        .bearer_auth("bbb-shared-secret-for-fixtures-only")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(posts[1].1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stored = bus.messages("MEETINGS").await;
    // BBB: created, 4 joined, 1 left, ended; Jitsi: created, 2 joined, 2 left, destroyed.
    assert_eq!(stored, 7 + 6, "each event once");

    // What the bus cannot carry or read: an event kind it does not carry is counted; an
    // unreadable post is refused and kept as a digest.
    let chat = r#"[{"data":{"type":"event","id":"chat-group-message-sent","attributes":{"meeting":{"internal-meeting-id":"m-1"}},"event":{"ts":1685926900000}}}]"#;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("domain", "hop")
        .append_pair("event", chat)
        .append_pair("timestamp", "1")
        .finish();
    let r = http
        .post(format!("{}/meetings/bbb", a.base))
        .bearer_auth("bbb-shared-secret-for-fixtures-only")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let intake: Value = r.json().await.unwrap();
    assert_eq!(intake["not_carried"], 1);
    let r = http
        .post(format!("{}/meetings/bbb", a.base))
        .bearer_auth("bbb-shared-secret-for-fixtures-only")
        .body("domain=x&event=%5B%7Bbroken&timestamp=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        bus.read_all("auditor", "DLQ").await.is_empty(),
        "a refused post is not kept"
    );
    assert_eq!(bus.messages("MEETINGS").await, stored);
    // Every record counted once: BBB events: 7 new, 7 + 1 again, 1 not carried; refused:
    // forged, tampered, anonymous and unreadable posts. Jitsi posts: 5 twice, 1 refused.
    let (bbb, jitsi) = (a.adapter.bbb_outcomes(), a.adapter.jitsi_outcomes());
    assert_eq!(
        bbb.refused.get(),
        3 + 1,
        "forged, tampered, anonymous; unreadable"
    );
    assert_eq!(jitsi.refused.get(), 1, "no token");
    assert_eq!(bbb.published.get(), 7);
    assert_eq!(bbb.duplicate.get(), 7 + 1);
    assert_eq!(bbb.not_carried.get(), 1);
    assert_eq!(jitsi.published.get() + jitsi.duplicate.get(), 10);
    assert_eq!(
        jitsi.published.get(),
        5,
        "the closing list only adds Quân's leave and the end"
    );

    // An independent reader finds valid events, the contract's subjects, no personal data.
    let text: String = bus
        .read_all("auditor", "MEETINGS")
        .await
        .iter()
        .map(|m| {
            let ev = decode_stored(m, Some(&bus.registry)).expect("valid");
            let ty = lienthong_bus::EventType::parse(
                lienthong_bus::cloudevents::AttributesReader::ty(&ev.event),
            )
            .unwrap();
            assert_eq!(
                m.subject.as_str(),
                ty.subject(
                    lienthong_bus::cloudevents::AttributesReader::subject(&ev.event).unwrap()
                )
            );
            String::from_utf8_lossy(&m.payload).into_owned()
        })
        .collect();
    for personal in [
        "Đặng Minh Quân",
        "Nguyễn Thị Mai",
        "Võ Thị Hạnh",
        "dangminhquan",
        "vothihanh",
        "203.0.113",
        "198.51.100",
        "stk_",
        "mp-7Qx2LkPz",
        "Mozilla",
        "@phanthiet",
    ] {
        assert!(!text.contains(personal), "{personal} is on the bus");
    }

    // The read model.
    let (addr, _stop) = common::serve_replay(&bus).await;
    let mut m = Value::Null;
    for _ in 0..100 {
        m = common::get_json(&http, format!("http://{addr}/api/v1/meetings?year=2023")).await;
        if m["meetings"] == 2 && m["participations"] == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(m["meetings"], 2, "{m:#}");
    assert_eq!(m["wards_connected"], 4, "{m:#}");
    assert_eq!(m["average_duration_minutes"], 67.5);
    let id = "8f3c2a5d9e1b7a60f4c2d8e9b1a7c3d5e6f7a8b9-1685926800123";
    let one = common::get_json(&http, format!("http://{addr}/api/v1/meetings/{id}")).await;
    assert_eq!(one["kind"], "weekly_briefing");
    assert_eq!(one["participants"].as_object().unwrap().len(), 4);
    let kpi = common::get_json(&http, format!("http://{addr}/api/v1/kpi")).await;
    assert_eq!(kpi["meetings"], {
        let mut f = m.clone();
        let o = f.as_object_mut().unwrap();
        o.remove("items");
        o.remove("year");
        f
    });
}

#[tokio::test]
async fn while_the_bus_cannot_store_a_post_is_held_then_answered_503() {
    let mut bus = Bus::start().await;
    let a = adapter(&bus, 1).await;
    bus.server.kill().await;
    let http = reqwest::Client::new();
    let (query, body) = &bbb_posts()[0];
    let started = std::time::Instant::now();
    let r = post_bbb(&http, &a.base, query, body).await;
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "held before answering"
    );
}
