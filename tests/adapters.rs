//! The documents, sign-on and open-data adapters end to end against a real nats-server,
//! each fed by its simulator or its real input format.

mod common;

use common::Bus;
use lienthong_adapters::documents::adapter::Via;
use lienthong_adapters::documents::{DocumentsAdapter, DocumentsConfig};
use lienthong_adapters::open_data::simulator::fixture_packages;
use lienthong_adapters::open_data::{CkanSimulator, OpenDataAdapter, OpenDataConfig};
use lienthong_adapters::sso::adapter::AdminApiConfig;
use lienthong_adapters::sso::simulator::{
    fixture_admin_events, fixture_user_events, push_user_events,
};
use lienthong_adapters::sso::{self, KeycloakSimulator, SsoAdapter, SsoConfig};
use lienthong_adapters::AdapterContext;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use serde_json::{json, Value};

const EDXML_NEW: &str =
    include_str!("../adapters/fixtures/documents/edxml/2023-1245-UBND-VP.edxml");
const EDXML_REVOKE: &str =
    include_str!("../adapters/fixtures/documents/edxml/2023-1245-UBND-VP.revoke.edxml");
const EDXML_STATUS: &str =
    include_str!("../adapters/fixtures/documents/edxml/status-03-phu-thuy.edxml");
const REGISTER: &str = include_str!("../adapters/fixtures/documents/register.jsonl");

async fn ctx(bus: &Bus, role: &str) -> AdapterContext {
    bus.adapter_context(role).await
}

/// Every payload of a stream as text, checked to be valid events.
async fn payloads(bus: &Bus, stream: &str) -> Vec<(String, String)> {
    bus.read_all("auditor", stream)
        .await
        .iter()
        .map(|m| {
            let ev = decode_stored(m, Some(&bus.registry)).expect("valid event");
            (
                ev.event.ty().to_string(),
                String::from_utf8_lossy(&m.payload).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn documents_from_the_inbox_and_by_push_without_any_secret() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a-1245.edxml"), EDXML_NEW).unwrap();
    std::fs::write(inbox.join("b-1245.revoke.edxml"), EDXML_REVOKE).unwrap();
    std::fs::write(inbox.join("c-status.edxml"), EDXML_STATUS).unwrap();
    std::fs::write(inbox.join("d-register.jsonl"), REGISTER).unwrap();
    std::fs::write(inbox.join("e-broken.edxml"), "<edXML><oops").unwrap();
    let token_file = dir.path().join("push.token");
    std::fs::write(&token_file, "documents-push-token\n").unwrap();
    let cfg = DocumentsConfig {
        source: "urn:lienthong:phanthiet:documents".into(),
        inbox: Some(inbox.clone()),
        listen: None,
        push_token_file: Some(token_file),
        poll_interval_secs: 1,
    };
    let adapter = DocumentsAdapter::build(cfg, ctx(&bus, "adapter-documents").await)
        .await
        .unwrap();
    let intake = adapter.poll_inbox().await.unwrap();
    assert_eq!(
        intake.tally.published, 14,
        "3 packages + 11 register entries of normal secrecy"
    );
    assert_eq!(intake.withheld, 2, "the secret and top-secret entries");
    assert_eq!(intake.unreadable, 1);
    let from_inbox = adapter.outcomes(Via::Inbox);
    assert_eq!(from_inbox.withheld.get(), 2);
    assert_eq!(from_inbox.published.get(), 14);
    assert_eq!(from_inbox.dead_lettered.get(), 1, "the unreadable package");
    assert_eq!(
        std::fs::read_dir(inbox.join("processed")).unwrap().count(),
        4
    );
    assert!(inbox.join("failed").join("e-broken.edxml").exists());

    let events = payloads(&bus, "DOCUMENTS").await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    for t in ["sent", "revoked", "status_changed", "registered"] {
        assert!(
            types.contains(&format!("vn.egov.documents.document.{t}").as_str()),
            "{types:?}"
        );
    }
    let all: String = events.iter().map(|(_, p)| p.as_str()).collect();
    for secret in [
        "Nội dung mật",
        "Nội dung tối mật",
        "1247/UBND-NC",
        "1302/UBND-NC",
        "VBDI-2023-001247",
        "VBDI-2023-001302",
        "JVBERi0",
        "Nguyễn Thị Hồng",
        "hong.nt@",
        "0912345678",
        "Lê Thị Mai",
        "0987654321",
        "Trần Văn An",
        "SignatureValue",
        "c2FtcGxl",
    ] {
        assert!(!all.contains(secret), "{secret:?} reached the bus");
    }
    // The unreadable package is in the DLQ as a digest, not its content.
    let dlq = payloads(&bus, "DLQ").await;
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].1.contains("sha256") && !dlq[0].1.contains("oops"));

    // HTTP push of the same package is idempotent; a secret register line is withheld.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = adapter.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    // Anonymous and wrongly authenticated pushes are refused, and nothing is stored.
    for auth in [None, Some("Bearer wrong"), Some("documents-push-token")] {
        let mut req = http.post(format!("{base}/edxml")).body(EDXML_NEW);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{auth:?}"
        );
    }
    let push = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .bearer_auth("documents-push-token")
            .body(body)
    };
    let r = push("/edxml", EDXML_NEW.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["published"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let secret_line = REGISTER
        .lines()
        .find(|l| l.contains("\"toi_mat\""))
        .unwrap();
    let r = push("/register", secret_line.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["published"].as_u64(), body["withheld"].as_u64()),
        (Some(0), Some(1))
    );
    let r = push("/edxml", "not xml".into()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // A pushed export with a line that cannot be read is refused whole.
    let broken = format!("{}\n{{not json\n", REGISTER.lines().next().unwrap());
    let r = push("/register", broken).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("register line 2"));
    let metrics = common::get_text(&http, format!("{base}/metrics")).await;
    for line in [
        "lienthong_records_total{path=\"documents.push\",outcome=\"withheld\"} 1",
        "lienthong_records_total{path=\"documents.push\",outcome=\"duplicate\"} 1",
        // Three anonymous or wrong-token pushes, the unreadable package, the broken export's 2 lines.
        "lienthong_records_total{path=\"documents.push\",outcome=\"refused\"} 6",
        "lienthong_records_total{path=\"documents.inbox\",outcome=\"withheld\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(payloads(&bus, "DOCUMENTS").await.len(), 14);
}

#[tokio::test]
async fn sign_on_by_webhook_and_admin_api_pseudonymised() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef-test-key").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "webhook-token-1").unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "client-secret-1").unwrap();
    let kc = KeycloakSimulator::new(fixture_admin_events(), "lienthong", "client-secret-1");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kc_url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(kc.clone().serve(l, std::future::pending()));
    let cfg = SsoConfig {
        source: "urn:lienthong:phanthiet:sso".into(),
        instance: None,
        realm: "binhthuan".into(),
        pseudonymization_key_file: key,
        listen: None,
        push_token_file: Some(token),
        admin_api: Some(AdminApiConfig {
            base_url: kc_url.parse().unwrap(),
            client_id: "lienthong".into(),
            client_secret_file: secret,
            poll_interval_secs: 1,
            page_size: 2,
        }),
    };
    let adapter = SsoAdapter::build(cfg, ctx(&bus, "adapter-sso").await)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/keycloak/events", listener.local_addr().unwrap());
    let app = adapter.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The webhook wants its token.
    assert!(push_user_events(&hook, None, &fixture_user_events(), 100)
        .await
        .unwrap_err()
        .to_string()
        .contains("401"));
    assert!(
        push_user_events(&hook, Some("wrong"), &fixture_user_events(), 100)
            .await
            .is_err()
    );
    push_user_events(&hook, Some("webhook-token-1"), &fixture_user_events(), 4)
        .await
        .unwrap();
    // Pushed twice (a retrying webhook): stored once.
    push_user_events(&hook, Some("webhook-token-1"), &fixture_user_events(), 100)
        .await
        .unwrap();
    let m = adapter.outcomes(sso::adapter::Via::Webhook);
    assert_eq!(
        m.published.get(),
        10,
        "12 user events, CODE_TO_TOKEN not carried"
    );
    assert_eq!(m.duplicate.get(), 10);
    assert_eq!(m.not_carried.get(), 2);
    assert_eq!(m.refused.get(), 2, "no token, wrong token");

    // Admin events: pulled page by page from the cursor; a second poll finds nothing new.
    let first = adapter.poll_admin_events().await.unwrap();
    assert_eq!(first.tally.published, 3);
    assert_eq!(
        adapter.poll_admin_events().await.unwrap().tally.published,
        0
    );
    kc.add_admin_event(json!({"id": "adm-4", "time": 1700460000000i64, "realmId": "binhthuan", "authDetails": {"clientId": "admin-cli", "ipAddress": "198.51.100.2"},
        "operationType": "UPDATE", "resourceType": "USER", "resourcePath": "users/7a7a7a7a-2222-4bbb-8ccc-dddddddddd02", "representation": "{\"email\": \"an.tv@example.gov.vn\"}"}));
    assert_eq!(
        adapter.poll_admin_events().await.unwrap().tally.published,
        1
    );

    let events = payloads(&bus, "SSO").await;
    assert_eq!(events.len(), 14);
    let all: String = events.iter().map(|(_, p)| p.as_str()).collect();
    for personal in [
        "5f1c2a9e-0b7d-4c55-9a0e-3d2b1e7c9a10",
        "0b8e5d3a-1111",
        "7a7a7a7a-2222",
        "9c9c9c9c-3333",
        "nguyenvanbinh",
        "binh.nv@example.com",
        "Nguyễn Văn",
        "203.0.113.14",
        "198.51.100.",
        "hong.nt",
        "tran.van.an",
        "SECRET-TOKEN-ID-MUST-NOT-LEAK",
        "0905123456",
        "pham.thi.lan",
        "048190001234",
        "lan.pt@",
        "an.tv@",
        "c0a80101-6f1e",
        "representation",
        "admin-0001",
    ] {
        assert!(!all.contains(personal), "{personal:?} reached the bus");
    }
}

#[tokio::test]
async fn the_open_data_catalogue_published_updated_withdrawn() {
    let bus = Bus::start().await;
    let ckan = CkanSimulator::new(fixture_packages());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(ckan.clone().serve(l, std::future::pending()));
    let cfg = OpenDataConfig {
        endpoint: url.parse().unwrap(),
        source: "urn:lienthong:phanthiet:open_data".into(),
        instance: None,
        poll_interval_secs: 1,
        rows: 2,
    };
    let adapter = OpenDataAdapter::build(cfg, ctx(&bus, "adapter-open_data").await)
        .await
        .unwrap();
    assert_eq!(adapter.poll_once().await.unwrap().published, 4);
    assert_eq!(
        adapter.poll_once().await.unwrap().published,
        0,
        "nothing new: nothing published"
    );

    // A new revision with a changed resource list.
    let mut p = fixture_packages().remove(1);
    p["metadata_modified"] = json!("2024-01-05T08:00:00.000000");
    p["resources"].as_array_mut().unwrap().pop();
    ckan.upsert(p);
    // And a dataset made private.
    let mut q = fixture_packages().remove(0);
    q["metadata_modified"] = json!("2024-01-06T08:00:00.000000");
    q["private"] = json!(true);
    ckan.upsert(q);
    assert_eq!(adapter.poll_once().await.unwrap().published, 2);

    let events = payloads(&bus, "OPEN_DATA").await;
    let types: Vec<&str> = events
        .iter()
        .map(|(t, _)| t.rsplit('.').next().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "published",
            "published",
            "withdrawn",
            "published",
            "updated",
            "withdrawn"
        ],
        "in metadata_modified order"
    );
    let updated: Value = serde_json::from_str(&events[4].1).unwrap();
    assert_eq!(
        updated["data"]["changes"]["resources_removed"],
        json!(["r-0003"])
    );
    let private: Value = serde_json::from_str(&events[5].1).unwrap();
    assert_eq!(private["data"]["reason"], "private");
    assert!(!events
        .iter()
        .any(|(_, p)| p.contains("opendata@example.gov.vn")));
}
