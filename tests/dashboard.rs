//! The operations centre's dashboard: its panels, live feed and integrity alarms over HTTP
//! against a real nats-server, and the page itself in a real browser (Debian's Chromium,
//! headless, driven by tests/js/dashboard.mjs) on `lienthong up --demo` as a real process.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use common::up::{ingress_caller, json_or_null, post_report, Up};
use common::Bus;
use ed25519_dalek::SigningKey;
use lienthong_bus::{Classification, EventDraft, EventType};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn report(id: usize, ward: &str, month: u32) -> EventDraft {
    let rid = format!("PT-2023-{id:06}");
    let at = chrono::Utc
        .with_ymd_and_hms(2023, month, 10, 2, 0, 0)
        .unwrap();
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{rid}/submitted"),
        rid.clone(),
        at,
        json!({"report_id": rid, "category": "CSDT", "category_name": "Chiếu sáng đô thị", "ward": ward,
            "status": "open", "description": format!("Đèn hỏng số {id}"),
            "requested_at": at.to_rfc3339(), "expected_at": (at + chrono::Duration::days(3)).to_rfc3339()}),
        Classification::Public,
    )
}

async fn wait_for(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = ok().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn panels_live_feed_and_integrity_alarms_over_http() {
    let bus = Bus::start().await;
    let wards = ["phu-thuy", "mui-ne", "tien-thanh"];
    let publisher = bus.publisher("adapter-field_reports", "urn:test:fr").await;
    let n = 30;
    for r in publisher
        .publish_many(
            (0..n)
                .map(|i| report(i, wards[i % 3], 1 + (i % 12) as u32))
                .collect(),
        )
        .await
    {
        r.unwrap();
    }
    let options = lienthong_replay::service::ServeOptions {
        audit_key: Some(SigningKey::from_bytes(&[7; 32])),
        admin_token: Some("admin".into()),
        verify_every: Duration::from_secs(1),
        ..Default::default()
    };
    let (addr, _stop) = common::serve_replay_with(&bus, options).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    wait_for("the reports in the read model", 30, async || {
        let k = common::get_json(&http, format!("{base}/api/v1/kpi")).await;
        (k["field_reports"]["total"] == n).then_some(k)
    })
    .await;

    // The panels: every ward on the map, the trends of the year, a ward's filter.
    let p = common::get_json(&http, format!("{base}/api/v1/dashboard")).await;
    assert_eq!(p["year"], "2023");
    let map = p["wards"].as_array().unwrap();
    assert_eq!(map.len(), 18);
    let received: u64 = map.iter().map(|w| w["received"].as_u64().unwrap()).sum();
    assert_eq!(received, n as u64);
    let phu_thuy = map.iter().find(|w| w["ward"] == "phu-thuy").unwrap();
    assert_eq!(phu_thuy["name"], "Phường Phú Thủy");
    assert_eq!(phu_thuy["received"], 10);
    assert_eq!(phu_thuy["overdue"], 10, "open and past their deadline");
    let per_1000 = 10.0 * 1000.0 / phu_thuy["population"].as_f64().unwrap();
    assert!((phu_thuy["per_1000_residents"].as_f64().unwrap() - per_1000).abs() < 0.01);
    let trends = p["trends"].as_array().unwrap();
    assert_eq!(trends.len(), 12);
    assert_eq!(
        trends
            .iter()
            .map(|m| m["reports_received"].as_u64().unwrap())
            .sum::<u64>(),
        n as u64
    );
    let one = common::get_json(&http, format!("{base}/api/v1/dashboard?ward=mui-ne")).await;
    assert_eq!(one["ward"]["name"], "Phường Mũi Né");
    let listed = one["overdue"].as_array().unwrap();
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|r| r["ward_name"] == "Phường Mũi Né"));
    assert!(
        listed[0]["overdue_days"].as_i64().unwrap() >= listed[9]["overdue_days"].as_i64().unwrap()
    );
    // Each links to its history, read from the stream.
    let href = listed[0]["href"].as_str().unwrap();
    assert_eq!(
        href,
        format!(
            "/api/v1/field-reports/{}/history",
            listed[0]["report_id"].as_str().unwrap()
        )
    );
    let history = common::get_json(&http, format!("{base}{href}")).await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{history}");
    assert_eq!(events[0]["type"], "vn.egov.field_reports.report.submitted");
    assert_eq!(events[0]["status"], "open");
    let csv = common::get_text(&http, format!("{base}/api/v1/dashboard/wards?format=csv")).await;
    assert_eq!(csv.lines().count(), 19, "a header and 18 wards:\n{csv}");
    assert!(csv.starts_with("ward,name,population,"), "{csv}");
    for (query, status, says) in [
        ("dashboard?ward=atlantis", 400, "atlantis"),
        ("dashboard?year=23", 400, "four digits"),
        ("dashboard/secrets", 404, "the panels are"),
    ] {
        let r = http
            .get(format!("{base}/api/v1/{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{query}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{query}: {body}");
    }

    // The live feed: the envelope's type, stream, position, time and ward; never the data.
    let mut live = http
        .get(format!("{base}/api/v1/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    publisher.publish(report(99, "lac-dao", 12)).await.unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.contains("event: event\n") {
        let chunk = tokio::time::timeout_at(deadline.into(), live.chunk())
            .await
            .expect("the new event on the live feed")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("event: recent\n"),
        "the newest events come first:\n{text}"
    );
    let frame = text.split("event: event\n").nth(1).unwrap();
    let data: Value = serde_json::from_str(
        frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["type"], "vn.egov.field_reports.report.submitted");
    assert_eq!(data["ward"], "lac-dao");
    assert_eq!(data["stream"], "FIELD_REPORTS");
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["sequence", "stream", "time", "type", "ward"]);
    assert!(!text.contains("Đèn hỏng"), "no data on the feed");

    // Integrity: verified against the signed checkpoints, then an alarm when the stream is
    // deleted and recreated under the read model.
    wait_for("a verified FIELD_REPORTS", 30, async || {
        let i = common::get_json(&http, format!("{base}/api/v1/integrity")).await;
        let fr = i["streams"]
            .as_array()?
            .iter()
            .find(|s| s["stream"] == "FIELD_REPORTS")?
            .clone();
        (fr["covered_to"] == n as u64 + 1 && fr["alarm"].is_null()).then_some(fr)
    })
    .await;
    let js = bus.js("operator").await;
    js.delete_stream("FIELD_REPORTS").await.unwrap();
    lienthong_bus::provision(&js).await.unwrap();
    let alarm = wait_for("the integrity alarm", 30, async || {
        let i = common::get_json(&http, format!("{base}/api/v1/integrity")).await;
        let fr = i["streams"]
            .as_array()?
            .iter()
            .find(|s| s["stream"] == "FIELD_REPORTS")?
            .clone();
        (i["alarms"].as_u64() >= Some(1) && fr["read_model_ahead"] == true).then_some(fr)
    })
    .await;
    assert_eq!(alarm["read_model_folded"], n as u64 + 1);
    assert_eq!(alarm["tampering"], "missing", "{alarm}");
    assert!(
        alarm["alarm"].as_str().unwrap().contains("TAMPERED"),
        "{alarm}"
    );

    // Replay alarm: the read model stops following the recreated stream and keeps its figures
    // (the new history is not mixed in); /healthz says so with a 503, /metrics counts it.
    publisher.publish(report(500, "phu-hai", 5)).await.unwrap();
    let health = wait_for("/healthz to name the alarm", 15, async || {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 503).then_some(())?;
        let h: Value = r.json().await.ok()?;
        h["alarms"]["FIELD_REPORTS"].is_string().then_some(h)
    })
    .await;
    assert_eq!(health["status"], "error");
    assert!(
        health["alarms"]["FIELD_REPORTS"]
            .as_str()
            .unwrap()
            .contains("FIELD_REPORTS was recreated"),
        "{health}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kpi = common::get_json(&http, format!("{base}/api/v1/kpi?year=2023")).await;
    assert_eq!(
        kpi["field_reports"]["total"],
        n + 1,
        "kept as it was: {kpi}"
    );
    let metrics = common::get_text(&http, format!("{base}/metrics")).await;
    assert!(
        metrics.contains("lienthong_replay_alarms_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("lienthong_replay_alarm{stream=\"FIELD_REPORTS\"} 1"));
    let i = common::get_json(&http, format!("{base}/api/v1/integrity")).await;
    assert!(i["replay_alarms"]["FIELD_REPORTS"].is_string(), "{i}");

    // An operator rebuilds: the read model is the new stream's, and the alarm ends.
    let r = http
        .post(format!(
            "{base}/api/v1/admin/rebuild?projection=field_reports"
        ))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the alarm to end after the rebuild", 20, async || {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(Value::Null)
    })
    .await;
    let kpi = common::get_json(&http, format!("{base}/api/v1/kpi?year=2023")).await;
    assert_eq!(
        kpi["field_reports"]["total"], 1,
        "only the new stream's report: {kpi}"
    );
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser_matches_the_api_and_follows_live_events() {
    let chromium = common::browser::chromium();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let js = root.join("tests/js");
    assert!(
        js.join("node_modules/playwright-core/package.json").exists(),
        "playwright-core is missing from tests/js/node_modules: run ./scripts/install-js-sdk (./scripts/test does)"
    );
    let up = Up::start(&["--demo", "--demo-scale", "0.05", "--verify-every", "2"]);
    let (base, data) = (up.base.clone(), up.data.clone());
    let http = reqwest::Client::new();

    // Ready: every subsystem's figures are in and the history was verified once.
    let log_tail = || up.log_tail(20);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let kpi = json_or_null(&http, format!("{base}/api/v1/kpi")).await;
        let integrity = json_or_null(&http, format!("{base}/api/v1/integrity")).await;
        let filled = ["field_reports", "documents", "sso", "meetings"]
            .iter()
            .all(|s| kpi[s].is_object())
            && kpi["meetings"]["wards_connected"] == 18
            && kpi["open_data"]["datasets"].as_u64() > Some(0);
        let verified = integrity["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v["checkpoints"].as_u64() > Some(0)));
        if filled && verified {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo never filled: {kpi}\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let shots = root.join("target/dashboard");
    let mut node = tokio::process::Command::new("node")
        .arg(js.join("dashboard.mjs"))
        .arg(&base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .current_dir(&js)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("Node.js is needed for the browser test (Debian's nodejs)");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let ingress = ingress_caller(&up.credentials("ingress-demo.env"));
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "ready-for-live" {
                // A citizen's report arrives through the ingress while the page is open.
                let r = post_report(&http, &ingress, "browser-test", "LIVE-1", "ham-tien")
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
                stdin.write_all(b"published ham-tien\n").await.unwrap();
                stdin.flush().await.unwrap();
            }
            if line == "ready-for-alarm" {
                // An operator deletes MEETINGS and provisions it again, empty.
                let settings = lienthong_bus::ConnectSettings::resolve(Some(
                    &data.join("credentials/operator.env"),
                ))
                .unwrap();
                let client = settings.connect("test-operator").await.unwrap();
                let js = async_nats::jetstream::new(client);
                js.delete_stream("MEETINGS").await.unwrap();
                lienthong_bus::provision(&js).await.unwrap();
                stdin.write_all(b"recreated MEETINGS\n").await.unwrap();
                stdin.flush().await.unwrap();
            }
            out.push(line);
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(180), run).await;
    assert!(
        finished.is_ok(),
        "the browser test hung:\n{}",
        out.join("\n")
    );
    let status = node.wait().await.unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = node.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let report = out.join("\n");
    println!("{report}");
    assert!(
        status.success(),
        "the browser test failed:\n{report}\n{stderr}\nlog tail:\n{}",
        log_tail()
    );
    assert!(
        report.contains("ok the new report appears in the live feed"),
        "{report}"
    );
    assert!(
        report.contains("ok the integrity panel turns red"),
        "{report}"
    );
    assert!(shots.join("dashboard.png").exists());
}

#[tokio::test]
async fn an_open_live_feed_does_not_hold_the_service_up_when_it_stops() {
    let bus = Bus::start().await;
    let (addr, stop) = common::serve_replay(&bus).await;
    let http = reqwest::Client::new();
    let mut live = http
        .get(format!("http://{addr}/api/v1/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    // A dashboard left open on a screen, and the service is stopped.
    drop(stop);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = live.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the live feed kept the service from stopping"
    );
    // And the service is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still listening after its shutdown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
