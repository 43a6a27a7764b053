//! The auditor's witness: a leaf-node site mirroring the hub's AUDIT as it is written, and
//! `audit verify --witness`, which finds a history rewritten and signed again centrally —
//! which the central checkpoints alone cannot.

mod common;

use std::time::{Duration, Instant};

use chrono::TimeZone;
use common::up::{free_port, json_or_null, lienthong, lienthong_status, SiteUp, Up};
use lienthong_bus::{Classification, ConnectSettings, EventDraft, EventType, Publisher};
use serde_json::json;

fn report(i: u32) -> EventDraft {
    let id = format!("PT-2023-{i:06}");
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{id}/submitted"),
        id.clone(),
        chrono::Utc
            .with_ymd_and_hms(2023, 11, 18, 12, 0, 0)
            .unwrap(),
        json!({
            "report_id": id, "category": "CSDT", "category_name": "Chiếu sáng đô thị",
            "ward": "phu-thuy", "status": "open", "description": format!("Đèn hỏng số {i}"),
            "requested_at": "2023-11-18T19:00:00+07:00"
        }),
        Classification::Public,
    )
}

async fn connect(env: &std::path::Path) -> async_nats::Client {
    ConnectSettings::resolve(Some(env))
        .unwrap()
        .connect("test-witness")
        .await
        .unwrap()
}

/// The last sequence the checkpoints of FIELD_REPORTS in this AUDIT cover.
async fn covered(env: &std::path::Path) -> u64 {
    let reader = lienthong_bus::StreamReader::new(connect(env).await, Default::default());
    lienthong_audit::verify::checkpoints_from_audit(&reader, "FIELD_REPORTS")
        .await
        .map(|c| c.iter().map(|c| c.last_seq).max().unwrap_or(0))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_site_catches_a_history_rewritten_and_signed_again_centrally() {
    let leaf = free_port();
    let hub = Up::start(&["--leaf-port", &leaf.to_string()]);
    let http = reqwest::Client::new();
    let start = Instant::now();
    while json_or_null(&http, format!("{}/healthz", hub.base)).await["status"] != "ok" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            hub.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cred = |f: &str| hub.credentials(f).to_str().unwrap().to_string();
    let (operator, replay, auditor) = (
        cred("operator.env"),
        cred("replay.env"),
        cred("auditor.env"),
    );
    let key = cred("audit-signing.key");
    let public = hub.data.join("audit-public.key");
    let public = public.to_str().unwrap();

    // The auditor's witness site, registered by the operator, mirrors AUDIT from its own
    // machine.
    let out = lienthong(&[
        "site",
        "add",
        "kiem-toan",
        "--domain",
        "kiemtoan",
        "--role",
        "witness",
        "--env",
        &operator,
    ]);
    assert!(out.contains("mirror AUDIT and nothing else"), "{out}");
    let witness = SiteUp::start(&[
        "--role",
        "witness",
        "--name",
        "kiem-toan",
        "--domain",
        "kiemtoan",
        "--hub",
        &format!("nats-leaf://127.0.0.1:{leaf}"),
        "--env",
        &cred("site-kiem-toan.env"),
    ]);
    let witness_env = witness.data.join("credentials/auditor.env");
    // Its credentials open a leaf link only: as a client of the hub they are refused.
    let mut as_client =
        ConnectSettings::resolve(Some(&hub.credentials("site-kiem-toan.env"))).unwrap();
    as_client.url = ConnectSettings::resolve(Some(&hub.credentials("operator.env")))
        .unwrap()
        .url;
    assert!(
        as_client.connect("test-site-as-client").await.is_err(),
        "a site's credentials must not connect as a client of the hub"
    );

    // 25 events, checkpointed with the central key; the witness receives the checkpoints.
    let registry = std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap());
    let publisher = Publisher::new(
        async_nats::jetstream::new(connect(&hub.credentials("ingress.env")).await),
        registry.clone(),
        "urn:lienthong:phanthiet:field_reports",
    );
    for i in 1..=25 {
        publisher.publish(report(i)).await.unwrap();
    }
    lienthong(&["audit", "checkpoint", "--key", &key, "--env", &replay]);
    let start = Instant::now();
    while !(witness_env.exists() && covered(&witness_env).await >= 25) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the witness did not receive the checkpoints\n{}",
            witness.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // `audit verify` of FIELD_REPORTS as the hub's auditor, against the witness or not.
    let verify = |witness: bool| {
        let mut args = vec![
            "audit",
            "verify",
            "--stream",
            "FIELD_REPORTS",
            "--public-key",
            public,
            "--env",
            &auditor,
        ];
        if witness {
            args.extend(["--witness", witness_env.to_str().unwrap()]);
        }
        lienthong_status(&args)
    };
    let (ok, out) = verify(true);
    assert!(ok, "an untouched history agrees with its witness:\n{out}");

    // Nobody on the hub's side reaches the witness's JetStream API: not the operator
    // through the bus account, and not a rogue leaf node linked with the witness's own
    // credentials (which the operator has seen: `site add` wrote them).
    let operator_client = connect(&hub.credentials("operator.env")).await;
    let delete = |c: async_nats::Client| async move {
        tokio::time::timeout(
            Duration::from_secs(3),
            c.request("$JS.kiemtoan.API.STREAM.DELETE.AUDIT", "".into()),
        )
        .await
    };
    let answer = delete(operator_client.clone()).await;
    assert!(
        !matches!(&answer, Ok(Ok(m)) if String::from_utf8_lossy(&m.payload).contains("success")),
        "the hub's operator deleted the witness's AUDIT: {answer:?}"
    );
    let site_env =
        lienthong_bus::credentials::read_env_file(&hub.credentials("site-kiem-toan.env")).unwrap();
    let rogue_creds = lienthong_bus::CredentialSet::generate();
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = lienthong_bus::NatsServer::start(
        lienthong_bus::server::ServerOptions {
            bin: None,
            data_dir: rogue_dir.path().to_path_buf(),
            host: "127.0.0.1".into(),
            port: None,
            sync_always: false,
            node: None,
            domain: Some("rogue".into()),
            leaf: Some(lienthong_bus::server::LeafNodes::Remote {
                urls: vec![format!("nats-leaf://127.0.0.1:{leaf}")],
                auth: lienthong_bus::server::LeafAuth::Password {
                    user: site_env["NATS_USER"].clone(),
                    password: site_env["NATS_PASSWORD"].clone(),
                },
                deny_imports: Vec::new(),
            }),
            transport: Default::default(),
            max_file_store: None,
        },
        &rogue_creds,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rogue_client = rogue_creds
        .settings("operator", &rogue.url())
        .unwrap()
        .connect("test-rogue")
        .await
        .unwrap();
    let answer = delete(rogue_client).await;
    assert!(
        !matches!(&answer, Ok(Ok(m)) if String::from_utf8_lossy(&m.payload).contains("success")),
        "a rogue leaf deleted the witness's AUDIT: {answer:?}"
    );
    drop(rogue);
    assert!(
        covered(&witness_env).await >= 25,
        "the witness's AUDIT is intact"
    );

    // The operator, who also holds the signing key, rewrites event 17, replaces AUDIT and
    // signs the rewritten history again.
    let js = async_nats::jetstream::new(connect(&hub.credentials("operator.env")).await);
    common::recreate_stream(&js, "FIELD_REPORTS", |raw| {
        assert_eq!(raw.len(), 25);
        let text = String::from_utf8(raw[16].2.to_vec())
            .unwrap()
            .replace("Đèn hỏng số 17", "Đèn đã sửa");
        raw[16].2 = text.into();
    })
    .await;
    js.delete_stream("AUDIT").await.unwrap();
    lienthong_bus::provision(&js).await.unwrap();
    lienthong(&["audit", "checkpoint", "--key", &key, "--env", &replay]);

    // Centrally, nothing shows: the new checkpoints verify the new history.
    let (ok, out) = verify(false);
    assert!(ok, "the forged checkpoints verify centrally:\n{out}");
    // Against the witness, the rewrite is found and located.
    let (ok, out) = verify(true);
    assert!(!ok, "the witness must disagree:\n{out}");
    assert!(out.contains("WITNESS DISAGREES"), "{out}");
    assert!(out.contains("FIELD_REPORTS"), "{out}");
    assert!(
        out.contains("17"),
        "the first rewritten sequence is named:\n{out}"
    );
    eprintln!("{out}");
}
