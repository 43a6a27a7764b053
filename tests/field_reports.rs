//! The field-reports slice end to end against real nats-server processes:
//! simulator → adapter → FIELD_REPORTS → replay → HTTP.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use common::Bus;
use lienthong_adapters::field_reports::{Open311Data, Open311Simulator};
use lienthong_adapters::{FieldReportsAdapter, FieldReportsConfig};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use lienthong_bus::{EventSubject, EventType};
use lienthong_replay::ReadStore;

/// Serves `data` as Open311 on a random port; returns the simulator and its endpoint.
async fn simulator(data: Open311Data) -> (Open311Simulator, String) {
    let sim = Open311Simulator::new(data);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener, std::future::pending()));
    (sim, endpoint)
}

fn config(endpoint: &str) -> FieldReportsConfig {
    let mut c = FieldReportsConfig::new(endpoint.parse().unwrap());
    c.poll_interval_secs = 1;
    c.start_date = "2023-01-01T00:00:00+07:00".parse().unwrap();
    c
}

async fn adapter(bus: &Bus, cfg: FieldReportsConfig) -> FieldReportsAdapter {
    let ctx = bus.adapter_context("adapter-field_reports").await;
    FieldReportsAdapter::build(cfg, ctx).await.unwrap()
}

/// Polls until a poll finds nothing new.
async fn drain(a: &mut FieldReportsAdapter) {
    for _ in 0..100 {
        let r = a.poll_once().await.unwrap();
        if r.published == 0 && r.duplicates == 0 && !r.more {
            return;
        }
    }
    panic!("the feed never settled");
}

/// (event ids in stream order, number of messages) of FIELD_REPORTS, read as the auditor.
async fn stream_ids(bus: &Bus) -> (Vec<String>, usize) {
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    let ids = msgs
        .iter()
        .map(|m| decode_stored(m, None).unwrap().event.id().to_string())
        .collect();
    (ids, msgs.len())
}

/// Every fixture value that is personal data, plus the synthetic reporters' details.
const PERSONAL: &[&str] = &[
    "0905123456",
    "binh.nv@example.com",
    "Nguyễn Văn",
    "5f1c2a9e-0b7d-4c55-9a0e-3d2b1e7c9a10",
    "@example.com",
    "nguoidan",
    "acc-0",
    "Công dân",
    "first_name",
    "last_name",
    "\"phone\"",
    "\"email\"",
    "account_id",
];

#[tokio::test]
async fn the_whole_slice_end_to_end() {
    let bus = Bus::start().await;
    let (sim, endpoint) = simulator(Open311Data::demo(2023, 300, 11)).await;
    let mut a = adapter(&bus, config(&endpoint)).await;
    drain(&mut a).await;

    // Replay service as its own role, on a random port.
    let dir = tempfile::tempdir().unwrap();
    let store = ReadStore::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let js = bus.js("replay").await;
    tokio::spawn(lienthong_replay::service::serve(
        lienthong_bus::tls::http::Listener::plain(listener).unwrap(),
        Some(js),
        bus.registry.clone(),
        store,
        Default::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let expected_reports = sim.report_ids().len() as u64;
    let mut stats = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(r) = http
            .get(format!("{base}/api/v1/field-reports/stats"))
            .send()
            .await
        {
            stats = r.json().await.unwrap();
            if stats["total"] == expected_reports
                && stats["stream_sequence"] == bus.messages("FIELD_REPORTS").await
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stats["total"], expected_reports, "{stats}");

    // An independent client with the auditor's credentials checks the stream.
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    let mut ids = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for m in &msgs {
        let h = &m.headers;
        assert_eq!(
            h.get("Content-Type").unwrap().as_str(),
            "application/cloudevents+json"
        );
        let ev = decode_stored(m, Some(&bus.registry))
            .expect("valid CloudEvent whose data validates against its dataschema");
        let e = &ev.event;
        let ty = EventType::parse(e.ty()).unwrap();
        assert_eq!(ty.subsystem, "field_reports");
        assert_eq!(e.source().as_str(), "urn:lienthong:phanthiet:field_reports");
        let key = e.subject().unwrap().to_string();
        assert_eq!(
            m.subject.as_str(),
            ty.subject(&key),
            "subject follows the contract"
        );
        assert_eq!(
            EventSubject::parse(&m.subject).unwrap().key,
            lienthong_bus::subject::KeyToken::Key(key.to_string())
        );
        assert!(e
            .dataschema()
            .unwrap()
            .as_str()
            .starts_with("https://lienthong.vn/schemas/field_reports/"));
        assert!(ids.insert(e.id().to_string()), "duplicate id {}", e.id());
        keys.insert(key);
        let text = String::from_utf8_lossy(&m.payload);
        for p in PERSONAL {
            assert!(!text.contains(p), "personal data {p:?} in {}", e.id());
        }
    }
    assert_eq!(
        stats["total"],
        keys.len() as u64,
        "total = distinct reports in the stream"
    );
    assert_eq!(
        stats["by_status"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        keys.len() as u64
    );
    assert_eq!(
        stats["by_ward"].as_object().unwrap().len(),
        19,
        "18 wards + unknown (the report known only by an update)"
    );

    // The other endpoints.
    let odd = http
        .get(format!("{base}/api/v1/field-reports/PT.2023%2F1003%20%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 200);
    let odd: serde_json::Value = odd.json().await.unwrap();
    assert_eq!(odd["ward"], "tien-thanh");
    let csv = http
        .get(format!("{base}/api/v1/field-reports?ward=phu-thuy"))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let rows = csv.lines().count() as u64 - 1;
    assert_eq!(rows, stats["by_ward"]["phu-thuy"].as_u64().unwrap());
    assert!(csv.starts_with("report_id,category,"));
    let listed: serde_json::Value = common::get_json(
        &http,
        format!("{base}/api/v1/field-reports?status=duplicate&limit=5"),
    )
    .await;
    assert_eq!(listed["total"], stats["by_status"]["duplicate"]);
    assert!(listed["items"].as_array().unwrap().len() <= 5);
    let missing = http
        .get(format!("{base}/api/v1/field-reports/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let schema: serde_json::Value = common::get_json(
        &http,
        format!("{base}/schemas/field_reports/report.submitted/v1.json"),
    )
    .await;
    assert_eq!(
        schema["$id"],
        "https://lienthong.vn/schemas/field_reports/report.submitted/v1.json"
    );
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = common::get_text(&http, format!("{base}/metrics")).await;
    assert!(metrics.contains("lienthong_projection_checkpoint{projection=\"field_reports\"}"));
    // Where the folds' time went: each stage has used some processor time by now.
    for stage in ["decode", "fold", "commit"] {
        let line = format!("lienthong_replay_cpu_seconds_total{{stage=\"{stage}\"}} ");
        let seconds: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("no {line} in /metrics"))
            .parse()
            .unwrap();
        assert!(seconds > 0.0, "{line}{seconds}");
    }
    let page = common::get_text(&http, format!("{base}/")).await;
    assert!(page.contains("/assets/dashboard.js"));
    let script = common::get_text(&http, format!("{base}/assets/dashboard.js")).await;
    assert!(script.contains("/api/v1/dashboard"));
}

#[tokio::test]
async fn an_adapter_restarted_mid_feed_leaves_no_duplicate_and_no_gap() {
    let (_sim, endpoint) = simulator(Open311Data::demo(2023, 400, 5)).await;
    let mut cfg = config(&endpoint);
    cfg.page_size = 40;
    cfg.max_records_per_poll = 120;

    // Reference: the same feed read without interruption.
    let reference = Bus::start().await;
    drain(&mut adapter(&reference, cfg.clone()).await).await;
    let (expected, expected_count) = stream_ids(&reference).await;
    assert!(expected_count > 1500);

    // The same feed, with the adapter killed twice at arbitrary points.
    let bus = Bus::start().await;
    for fraction in [3, 2] {
        let a = adapter(&bus, cfg.clone()).await;
        let task = tokio::spawn(a.run(std::future::pending()));
        let threshold = (expected_count / fraction) as u64;
        while bus.messages("FIELD_REPORTS").await < threshold {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let _ = task.await;
    }
    drain(&mut adapter(&bus, cfg).await).await;
    let (got, got_count) = stream_ids(&bus).await;

    let distinct: BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), got_count, "no duplicate");
    assert_eq!(
        got_count, expected_count,
        "as many events as an uninterrupted run"
    );
    assert_eq!(distinct, expected.iter().collect::<BTreeSet<_>>(), "no gap");
}

#[tokio::test]
async fn an_update_for_an_unseen_report_is_kept_and_completed_when_the_report_appears() {
    let bus = Bus::start().await;
    let (sim, endpoint) = simulator(Open311Data::fixtures()).await;
    let mut a = adapter(&bus, config(&endpoint)).await;
    let first = a.poll_once().await.unwrap();
    assert_eq!(
        first.pending, 1,
        "PT-2024-000001 is known only from update U-7"
    );
    let (ids, _) = stream_ids(&bus).await;
    assert!(ids.contains(&"report/PT-2024-000001/update/U-7".to_string()));
    assert!(!ids.contains(&"report/PT-2024-000001/submitted".to_string()));

    // A later poll sees the report (it was registered late, with an earlier time).
    sim.add_request(serde_json::json!({
        "service_request_id": "PT-2024-000001", "status": "open", "service_code": "HTGT",
        "service_name": "Hạ tầng giao thông", "description": "Sụt lún mặt đường, gọi 0912 345 678",
        "agency_responsible": "UBND phường Lạc Đạo", "address": "Lê Duẩn, phường Lạc Đạo",
        "requested_datetime": "2024-01-01T16:00:00+07:00", "updated_datetime": "2024-01-02T08:00:00+07:00",
        "lat": 10.93, "long": 108.1, "phone": "0912345678", "email": "a@example.com"
    }));
    let second = a.poll_once().await.unwrap();
    assert_eq!(second.pending, 0);
    assert_eq!(second.published, 1);
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    let last = decode_stored(msgs.last().unwrap(), Some(&bus.registry)).unwrap();
    assert_eq!(last.event.id(), "report/PT-2024-000001/submitted");
    let text = String::from_utf8_lossy(&msgs.last().unwrap().payload).into_owned();
    assert!(
        !text.contains("0912") && !text.contains("a@example.com"),
        "{text}"
    );
    assert!(text.contains("[phone]"));

    // The read model shows it once, complete, with the status from the update.
    let (store, _) = bus.rebuild(Default::default()).await;
    let tree = store.current("field_reports").unwrap();
    let view = lienthong_replay::field_reports::FieldReportsView { tree: &tree };
    let r = view.get("PT-2024-000001").unwrap().unwrap();
    assert!(r.submitted);
    assert_eq!(r.ward, "lac-dao");
    assert_eq!(r.status, "in_progress");
    assert_eq!(view.stats().unwrap().total, 8);
}

/// Every key and value of the served generation of `field_reports` in a store directory.
fn dump(dir: &std::path::Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = ReadStore::open(dir).unwrap();
    let tree = store.current("field_reports").unwrap();
    tree.iter()
        .map(|kv| kv.unwrap())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

#[tokio::test]
async fn a_replay_killed_and_restarted_equals_a_fresh_rebuild() {
    let bus = Bus::start().await;
    let (_sim, endpoint) = simulator(Open311Data::demo(2023, 600, 3)).await;
    drain(&mut adapter(&bus, config(&endpoint)).await).await;
    let head = bus.messages("FIELD_REPORTS").await;
    assert!(head > 2500);

    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("replay.env");
    bus.creds.write(dir.path(), &bus.server.url()).unwrap();
    let db = dir.path().join("db");
    let bin = env!("CARGO_BIN_EXE_lienthong");
    let serve = |port: u16| {
        std::process::Command::new(bin)
            .args([
                "replay",
                "serve",
                "--max-batch",
                "7",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--db",
            ])
            .arg(&db)
            .arg("--env")
            .arg(&env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let http = reqwest::Client::new();
    let checkpoint = |http: reqwest::Client| async move {
        match http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["projections"]["field_reports"]["stream_sequence"].as_u64()),
            Err(_) => None,
        }
    };

    // Kill -9 mid-stream.
    let mut child = serve(port);
    let mut seen = 0;
    for _ in 0..2000 {
        seen = checkpoint(http.clone()).await.unwrap_or(0);
        if seen > head / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen > 0 && seen < head,
        "killed mid-stream (at {seen} of {head})"
    );

    // Restart: it resumes from its own checkpoint and catches up.
    let mut child = serve(port);
    let mut caught_up = false;
    for _ in 0..3000 {
        if checkpoint(http.clone()).await == Some(head) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nix_term(&child);
    child.wait().unwrap();
    assert!(caught_up, "the restarted replay reached the head");

    // A fresh rebuild, with the CLI, into another store.
    let fresh = dir.path().join("fresh");
    let status = std::process::Command::new(bin)
        .args(["replay", "rebuild", "--db"])
        .arg(&fresh)
        .arg("--env")
        .arg(&env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (a, b) = (dump(&db), dump(&fresh));
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "the restarted read model differs from a fresh rebuild"
    );
}

fn nix_term(child: &std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}
