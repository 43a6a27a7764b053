//! Every input accounted for, tried as a careless or hostile upstream would, against real
//! servers: each defect of the hardening issue, one test, and the count of records in against
//! outcomes out (`lienthong_records_total`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Bus;
use lienthong_adapters::documents::adapter::Via;
use lienthong_adapters::documents::{DocumentsAdapter, DocumentsConfig};
use lienthong_adapters::field_reports::{Open311Data, Open311Simulator};
use lienthong_adapters::open_data::simulator::fixture_packages;
use lienthong_adapters::open_data::{CkanSimulator, OpenDataAdapter, OpenDataConfig};
use lienthong_adapters::{FieldReportsAdapter, FieldReportsConfig};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use lienthong_bus::DeadLetter;
use serde_json::{json, Value};

async fn open311(data: Open311Data) -> (Open311Simulator, String) {
    let sim = Open311Simulator::new(data);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener, std::future::pending()));
    (sim, endpoint)
}

fn fr_config(endpoint: &str) -> FieldReportsConfig {
    let mut c = FieldReportsConfig::new(endpoint.parse().unwrap());
    c.start_date = "2023-01-01T00:00:00+07:00".parse().unwrap();
    c
}

/// Polls until a poll finds nothing new.
async fn drain(a: &mut FieldReportsAdapter) {
    for _ in 0..50 {
        let r = a.poll_once().await.unwrap();
        if r.published == 0 && r.duplicates == 0 && r.dead_lettered == 0 && !r.more {
            return;
        }
    }
    panic!("the feed never settled");
}

/// (type, CloudEvents subject, data) of every event on `stream`.
async fn events(bus: &Bus, stream: &str) -> Vec<(String, String, Value)> {
    bus.read_all("auditor", stream)
        .await
        .iter()
        .map(|m| {
            let ev = decode_stored(m, Some(&bus.registry)).expect("a valid event");
            let data = lienthong_bus::envelope::data_json(&ev.event).unwrap_or_default();
            (
                ev.event.ty().to_string(),
                ev.event.subject().unwrap_or_default().to_string(),
                data,
            )
        })
        .collect()
}

async fn dead_letters(bus: &Bus) -> Vec<DeadLetter> {
    bus.read_all("auditor", "DLQ")
        .await
        .iter()
        .map(|m| {
            DeadLetter::from_event(&decode_stored(m, Some(&bus.registry)).unwrap().event).unwrap()
        })
        .collect()
}

fn request(id: &str, status: &str, requested: &str, updated: Option<&str>) -> Value {
    json!({
        "service_request_id": id, "status": status, "service_code": "VSMT",
        "service_name": "Vệ sinh môi trường", "description": "Rác thải ven đường",
        "requested_datetime": requested, "updated_datetime": updated,
        "address": "Trần Hưng Đạo, phường Đức Nghĩa", "first_name": "Văn", "last_name": "Công dân",
        "phone": "0905111222", "email": "congdan@example.com",
    })
}

#[tokio::test]
async fn an_open311_request_sent_again_with_a_newer_status_changes_the_read_model() {
    let bus = Bus::start().await;
    let (sim, endpoint) = open311(Open311Data::default()).await;
    sim.add_request(request("PT-9-1", "open", "2023-12-01T08:00:00+07:00", None));
    let mut a = FieldReportsAdapter::build(
        fr_config(&endpoint),
        bus.adapter_context("adapter-field_reports").await,
    )
    .await
    .unwrap();
    drain(&mut a).await;
    // The subsystem lists the same request again, now closed (no update record).
    sim.add_request(request(
        "PT-9-1",
        "closed",
        "2023-12-01T08:00:00+07:00",
        Some("2023-12-03T10:00:00+07:00"),
    ));
    drain(&mut a).await;
    let evs = events(&bus, "FIELD_REPORTS").await;
    let change = evs
        .iter()
        .find(|(t, _, _)| t == "vn.egov.field_reports.report.status_changed")
        .expect("the newer state is an event");
    assert_eq!(change.2["status"], "closed");
    assert_eq!(change.2["origin"], "request");
    drain(&mut a).await;
    assert_eq!(
        bus.messages("FIELD_REPORTS").await,
        2,
        "submitted, closed: once each"
    );
    let (store, _) = bus.rebuild(Default::default()).await;
    let tree = store.current("field_reports").unwrap();
    let report = lienthong_replay::field_reports::FieldReportsView { tree: &tree }
        .get("PT-9-1")
        .unwrap()
        .unwrap();
    assert_eq!(report.status, "closed");
}

#[tokio::test]
async fn an_unknown_open311_status_is_kept_in_the_dlq_never_published_as_open() {
    let bus = Bus::start().await;
    let (sim, endpoint) = open311(Open311Data::default()).await;
    sim.add_request(request(
        "PT-9-2",
        "chờ xác minh",
        "2023-12-01T08:00:00+07:00",
        None,
    ));
    let mut a = FieldReportsAdapter::build(
        fr_config(&endpoint),
        bus.adapter_context("adapter-field_reports").await,
    )
    .await
    .unwrap();
    drain(&mut a).await;
    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "schema_violation");
    assert!(letters[0].violations.iter().any(|v| v.pointer == "/status"));
    assert_eq!(
        letters[0].original["data"]["status"], "chờ xác minh",
        "kept as it was"
    );
    assert!(!events(&bus, "FIELD_REPORTS")
        .await
        .iter()
        .any(|(t, _, d)| t.ends_with("status_changed") && d["status"] == "open"));
    let o = a.outcomes();
    assert_eq!(
        (o.dead_lettered.get(), o.published.get()),
        (1, 0),
        "one record: dead-lettered"
    );
}

#[tokio::test]
async fn a_record_with_a_very_long_key_ends_at_once_never_retried() {
    let bus = Bus::start().await;
    let (sim, endpoint) = open311(Open311Data::default()).await;
    // Open311 ids are at most 200 characters in the contract: this one is dead-lettered, and
    // its dead letter goes under a digest subject.
    let long = format!("PT/{}", "9".repeat(5000));
    sim.add_request(request(&long, "open", "2023-12-01T08:00:00+07:00", None));
    sim.add_request(request("PT-9-3", "open", "2023-12-01T09:00:00+07:00", None));
    let mut a = FieldReportsAdapter::build(
        fr_config(&endpoint),
        bus.adapter_context("adapter-field_reports").await,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    drain(&mut a).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried for ever"
    );
    assert_eq!(
        bus.messages("FIELD_REPORTS").await,
        1,
        "the next record is not held up"
    );
    let dlq = bus.read_all("auditor", "DLQ").await;
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0].subject.contains(".~~") && dlq[0].subject.len() < 120,
        "{}",
        dlq[0].subject
    );
    let letter = DeadLetter::from_event(&decode_stored(&dlq[0], None).unwrap().event).unwrap();
    assert!(letter.violations.iter().any(|v| v.pointer == "/report_id"));
}

#[tokio::test]
async fn a_ckan_dataset_missing_a_field_is_dead_lettered_once_and_links_are_http_only() {
    let bus = Bus::start().await;
    let mut packages = fixture_packages();
    packages[0]["resources"][0]["url"] = json!("javascript:alert(document.cookie)");
    let mut broken = packages[1].clone();
    broken["id"] = json!("broken-1");
    broken.as_object_mut().unwrap().remove("name");
    packages.push(broken);
    let ckan = CkanSimulator::new(packages);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(ckan.clone().serve(l, std::future::pending()));
    let cfg = OpenDataConfig {
        endpoint: url.parse().unwrap(),
        source: "urn:lienthong:phanthiet:open_data".into(),
        instance: None,
        poll_interval_secs: 1,
        rows: 100,
    };
    let a = OpenDataAdapter::build(cfg, bus.adapter_context("adapter-open_data").await)
        .await
        .unwrap();
    a.poll_once().await.unwrap();
    a.poll_once().await.unwrap();
    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 1, "once, though listed on every poll");
    assert_eq!(letters[0].original_id, "broken-1");
    assert!(
        letters[0].message.contains("name"),
        "{}",
        letters[0].message
    );
    assert!(!letters[0]
        .original
        .to_string()
        .contains("opendata@example.gov.vn"));
    let published = events(&bus, "OPEN_DATA").await;
    let wifi = &published[0].2;
    assert_eq!(wifi["resources"][0]["url"], Value::Null);
    assert_eq!(
        wifi["resources"][0]["url_rejected"],
        "javascript:alert(document.cookie)"
    );
    // The read model and its API never serve it as a link.
    let (addr, _stop) = common::serve_replay(&bus).await;
    let http = reqwest::Client::new();
    let mut text = String::new();
    for _ in 0..50 {
        text = common::get_text(&http, format!("http://{addr}/api/v1/open-data/datasets")).await;
        if text.contains("3f8a1c52-0001") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("3f8a1c52-0001"));
    assert!(!text.contains("\"url\":\"javascript"), "{text}");
    let dcat = common::get_text(
        &http,
        format!("http://{addr}/api/v1/open-data/catalog.jsonld"),
    )
    .await;
    assert!(!dcat.contains("javascript:"), "{dcat}");
    let o = a.outcomes();
    assert_eq!(o.dead_lettered.get(), 1);
    assert_eq!(o.published.get(), 4, "three published, one withdrawn");
    assert!(
        o.duplicate.get() >= 1,
        "listed again, nothing new: counted, not lost"
    );
}

#[tokio::test]
async fn an_edxml_package_without_a_time_delivered_twice_is_stored_once() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok").unwrap();
    let adapter = DocumentsAdapter::build(
        DocumentsConfig {
            source: "urn:lienthong:phanthiet:documents".into(),
            inbox: None,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            push_token_file: Some(token),
            poll_interval_secs: 1,
        },
        bus.adapter_context("adapter-documents").await,
    )
    .await
    .unwrap();
    let package = regex::Regex::new(r"<edXML:TraceHeaderList>[\s\S]*?</edXML:TraceHeaderList>")
        .unwrap()
        .replace(
            include_str!("../adapters/fixtures/documents/edxml/2023-1245-UBND-VP.edxml"),
            "",
        )
        .into_owned();
    for _ in 0..2 {
        adapter
            .take_edxml(package.as_bytes(), Via::Push)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bus.messages("DOCUMENTS").await, 1);
    let o = adapter.outcomes(Via::Push);
    assert_eq!((o.published.get(), o.duplicate.get()), (1, 1));
}

#[tokio::test]
async fn two_instances_of_one_adapter_keep_their_own_cursors() {
    let bus = Bus::start().await;
    let (_a_sim, a_url) = open311(Open311Data::demo(2023, 60, 1)).await;
    let (b_sim, b_url) = open311(Open311Data::default()).await;
    for i in 0..40 {
        b_sim.add_request(request(
            &format!("HT-{i:03}"),
            "open",
            &format!("2023-03-{:02}T08:00:00+07:00", 1 + i % 28),
            None,
        ));
    }
    let build = |url: String, source: &'static str, instance: &'static str| {
        let bus = &bus;
        async move {
            let mut c = fr_config(&url);
            c.source = source.into();
            c.instance = Some(instance.into());
            c.page_size = 10;
            c.max_records_per_poll = 10;
            FieldReportsAdapter::build(c, bus.adapter_context("adapter-field_reports").await)
                .await
                .unwrap()
        }
    };
    let mut a = build(
        a_url.clone(),
        "urn:lienthong:phanthiet:field_reports",
        "phan-thiet",
    )
    .await;
    let mut b = build(
        b_url.clone(),
        "urn:lienthong:ham-thuan-bac:field_reports",
        "ham-thuan-bac",
    )
    .await;
    // Interleaved polls, each a few pages at a time; then restarted instances finish.
    for _ in 0..3 {
        a.poll_once().await.unwrap();
        b.poll_once().await.unwrap();
    }
    drop((a, b));
    let mut a = build(a_url, "urn:lienthong:phanthiet:field_reports", "phan-thiet").await;
    let mut b = build(
        b_url,
        "urn:lienthong:ham-thuan-bac:field_reports",
        "ham-thuan-bac",
    )
    .await;
    drain(&mut a).await;
    drain(&mut b).await;
    let evs = events(&bus, "FIELD_REPORTS").await;
    let submitted: Vec<&String> = evs
        .iter()
        .filter(|(t, _, _)| t.ends_with("submitted"))
        .map(|(_, k, _)| k)
        .collect();
    let distinct: BTreeSet<&String> = submitted.iter().copied().collect();
    assert_eq!(submitted.len(), distinct.len(), "no duplicate");
    assert_eq!(
        submitted.iter().filter(|k| k.starts_with("HT-")).count(),
        40,
        "no gap in B"
    );
    assert!(
        submitted.iter().filter(|k| !k.starts_with("HT-")).count() >= 60,
        "none missing in A"
    );
}
