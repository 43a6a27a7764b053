//! The event catalogue: valid AsyncAPI 3.0 against the official JSON Schema (vendored, its
//! version pinned in tests/fixtures/asyncapi/README.md), naming every schema and stream; the
//! same document from the command line and from the replay service.

mod common;

use std::collections::BTreeSet;

use lienthong_bus::catalog::{asyncapi, CatalogServers};
use lienthong_bus::SchemaRegistry;
use serde_json::Value;

fn official_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("fixtures/asyncapi/3.0.0.json"))
        .expect("vendored schema");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .expect("the official schema compiles")
}

fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(20)
        .collect()
}

#[test]
fn the_catalogue_is_valid_asyncapi_3_and_names_every_schema_and_stream() {
    let schemas = SchemaRegistry::embedded().unwrap();
    let doc = asyncapi(
        &schemas,
        &CatalogServers(vec![
            "nats://127.0.0.1:4222".into(),
            "nats://10.0.0.2:4222".into(),
        ]),
    );
    let validator = official_validator();
    assert_eq!(problems(&validator, &doc), Vec::<String>::new());

    let text = doc.to_string();
    for f in schemas.files() {
        if f.event.is_some() {
            assert!(text.contains(&f.id), "{} is not in the catalogue", f.id);
        }
    }
    let streams: BTreeSet<&str> = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["x-lienthong-stream"].as_str())
        .collect();
    for s in lienthong_bus::registry::stream_names() {
        assert!(streams.contains(s), "stream {s} is not in the catalogue");
    }

    // The validator is not a rubber stamp: a document that breaks the specification fails.
    let mut broken = doc.clone();
    broken["asyncapi"] = "3.0".into();
    broken["servers"]["nats-1"]
        .as_object_mut()
        .unwrap()
        .remove("protocol");
    assert!(problems(&validator, &broken).len() >= 2);
}

#[tokio::test]
async fn the_replay_service_and_the_command_serve_the_same_catalogue() {
    let bus = common::Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    agencies
        .admin
        .add(
            "roads",
            lienthong_bus::agencies::grants(
                &["FIELD_REPORTS".into()],
                &["egov.field_reports.report.*.reopened".into()],
            )
            .unwrap(),
            None,
        )
        .await
        .unwrap();
    let (addr, _stop) = common::serve_replay(&bus).await;
    let http = reqwest::Client::new();
    let served = common::get_json(&http, format!("http://{addr}/asyncapi.json")).await;
    assert_eq!(served["asyncapi"], "3.0.0");
    assert_eq!(
        problems(&official_validator(), &served),
        Vec::<String>::new()
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["catalog", "asyncapi", "--server", &bus.server.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["channels"], served["channels"]);
    assert_eq!(
        printed["servers"]["nats-1"]["host"],
        served["servers"]["nats-1"]["host"]
    );

    // The human catalogue: Vietnamese, every subsystem, who may read.
    let page = common::get_text(&http, format!("http://{addr}/catalog")).await;
    assert!(
        page.contains("Danh mục sự kiện"),
        "{}",
        &page[..page.len().min(300)]
    );
    for s in lienthong_bus::registry::SUBSYSTEMS {
        assert!(page.contains(s.title_vi), "{}", s.title_vi);
        assert!(page.contains(s.stream));
    }
    assert!(page.contains("vn.egov.meetings.participant.joined"));
    // Who may read: the roles, and the agencies granted each stream (from the registry).
    assert!(page.contains("<code>auditor</code>"));
    assert!(page.contains(
        "<code>agency-roads</code> <small>(egov.field_reports.report.*.reopened)</small>"
    ));
    assert!(!page.contains("<script src=\"http"), "no network needed");
}
