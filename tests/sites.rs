//! Ward and agency sites on leaf nodes of the hub, with real servers: `lienthong up
//! --leaf-port` as the hub, `lienthong site up` as the sites, each site's link to the hub
//! through a loopback proxy the test cuts for a minute while both sides publish.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use common::proxy::Proxy;
use common::up::{free_port, json_or_null, lienthong, wait_for, SiteUp, Up};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::{Classification, ConnectSettings, EventDraft, EventType, Publisher};
use serde_json::{json, Value};

/// How long the links stay cut (the issue's "a minute").
const CUT: Duration = Duration::from_secs(60);

fn report(id: &str) -> Value {
    json!({
        "report_id": id, "category": "HTGT", "category_name": "Hạ tầng giao thông",
        "ward": "phu-thuy", "status": "open", "description": "Ổ gà",
        "requested_at": "2023-12-30T08:00:00+07:00"
    })
}

/// POSTs report `id` to the ward site's ingress; the event id is `ward/<id>`.
async fn post_at_ward(http: &reqwest::Client, site: &SiteUp, token: &str, id: &str) {
    let r = http
        .post(&site.ingress)
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .timeout(Duration::from_secs(10))
        .body(
            json!({
                "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
                "source": "urn:lienthong:phu-thuy:field_reports", "id": format!("ward/{id}"),
                "subject": id, "time": "2023-12-30T01:00:00Z",
                "datacontenttype": "application/json", "data": report(id)
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("the ward's ingress did not answer for {id}: {e}"));
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "the ward refused {id}: {status} {body}"
    );
    assert!(body.contains("FIELD_REPORTS_PHUTHUY"), "{body}");
}

/// Publishes report `id` on the hub; the event id is `hub/<id>`.
async fn publish_at_hub(p: &Publisher, id: &str) {
    p.publish(EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("hub/{id}"),
        id.to_string(),
        chrono::Utc.with_ymd_and_hms(2023, 12, 30, 1, 0, 0).unwrap(),
        report(id),
        Classification::Public,
    ))
    .await
    .unwrap_or_else(|e| panic!("the hub refused {id}: {e}"));
}

/// Every event id on a stream, with how many times it is there, and how many messages
/// came from a source.
async fn ids(env: &std::path::Path, stream: &str) -> (BTreeMap<String, usize>, usize) {
    let reader = lienthong_bus::StreamReader::new(
        ConnectSettings::resolve(Some(env))
            .unwrap()
            .connect("test-reader")
            .await
            .unwrap(),
        Default::default(),
    );
    let mut out = BTreeMap::new();
    let mut sourced = 0;
    for m in reader.read_all(stream, None).await.unwrap() {
        if m.headers.get("Nats-Stream-Source").is_some() {
            sourced += 1;
        }
        let ev = lienthong_bus::subscriber::decode_stored(&m, None).unwrap();
        *out.entry(ev.event.id().to_string()).or_default() += 1;
    }
    (out, sourced)
}

async fn field_reports_total(http: &reqwest::Client, base: &str) -> Option<u64> {
    json_or_null(http, format!("{base}/api/v1/kpi")).await["field_reports"]["total"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_and_agency_sites_keep_working_a_minute_without_the_hub_and_nothing_is_stored_twice() {
    let leaf = free_port();
    let hub = Up::start(&["--leaf-port", &leaf.to_string()]);
    let http = reqwest::Client::new();
    let operator = hub.credentials("operator.env");
    wait_for(
        "the hub is up",
        Duration::from_secs(60),
        || async { json_or_null(&http, format!("{}/healthz", hub.base)).await["status"] == "ok" },
        || hub.log_tail(20),
    )
    .await;

    // The operator registers the ward site and an agency; each site's link goes through a
    // proxy.
    let op = operator.to_str().unwrap();
    let out = lienthong(&[
        "site", "add", "phu-thuy", "--domain", "phuthuy", "--env", op,
    ]);
    assert!(out.contains("6 sources added"), "{out}");
    lienthong(&[
        "agency",
        "add",
        "xay-dung",
        "--streams",
        "FIELD_REPORTS",
        "--env",
        op,
    ]);
    let (ward_link, agency_link) = (Proxy::start(leaf).await, Proxy::start(leaf).await);
    let ward_env = hub.credentials("site-phu-thuy.env");
    let ward = SiteUp::start(&[
        "--name",
        "phu-thuy",
        "--domain",
        "phuthuy",
        "--hub",
        &format!("nats-leaf://127.0.0.1:{}", ward_link.port),
        "--env",
        ward_env.to_str().unwrap(),
    ]);
    let agency_env = hub.credentials("agency-xay-dung.env");
    let agency = SiteUp::start(&[
        "--role",
        "agency",
        "--name",
        "xay-dung",
        "--domain",
        "xaydung",
        "--hub",
        &format!("nats-leaf://127.0.0.1:{}", agency_link.port),
        "--env",
        agency_env.to_str().unwrap(),
    ]);
    let caller_env = ward.data.join("credentials/ingress-site.env");
    wait_for(
        "the ward site is up",
        Duration::from_secs(60),
        || async { caller_env.exists() },
        || ward.log_tail(20),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let token = lienthong_bus::credentials::read_env_file(&caller_env).unwrap()
        ["LIENTHONG_INGRESS_TOKEN"]
        .clone();
    let hub_js = async_nats::jetstream::new(
        ConnectSettings::resolve(Some(&hub.credentials("ingress.env")))
            .unwrap()
            .connect("test-hub-ingress")
            .await
            .unwrap(),
    );
    let hub_pub = Publisher::new(
        hub_js,
        std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap()),
        "urn:lienthong:phanthiet:field_reports",
    );

    // Link up: both sides publish; the hub stores each event once, the ward only its own.
    let mut expected: Vec<String> = Vec::new();
    for i in 0..20 {
        // Distinct reports on each side (the read models count reports, not events).
        let id = format!("UP-{i:03}");
        post_at_ward(&http, &ward, &token, &format!("PT-W-{id}")).await;
        publish_at_hub(&hub_pub, &format!("PT-H-{id}")).await;
        expected.push(format!("ward/PT-W-{id}"));
        expected.push(format!("hub/PT-H-{id}"));
    }
    let auditor = hub.credentials("auditor.env");
    let count = |n: usize| {
        let auditor = auditor.clone();
        move || {
            let auditor = auditor.clone();
            async move { ids(&auditor, "FIELD_REPORTS").await.0.len() >= n }
        }
    };
    wait_for(
        "the hub sourced the ward's events",
        Duration::from_secs(180),
        count(40),
        || hub.log_tail(20),
    )
    .await;
    let (on_hub, sourced) = ids(&auditor, "FIELD_REPORTS").await;
    assert_eq!(on_hub.len(), 40, "{on_hub:?}");
    assert!(on_hub.values().all(|n| *n == 1), "stored twice: {on_hub:?}");
    assert_eq!(
        sourced, 0,
        "the ward's events are admitted from the intake, never sourced into a central stream"
    );
    let (offered, sourced) = ids(&auditor, "INTAKE").await;
    assert_eq!(
        (offered.len(), sourced),
        (20, 20),
        "the intake holds what the ward sent, by the source: {offered:?}"
    );
    let ward_operator = ward.data.join("credentials/operator.env");
    let (at_ward, _) = ids(&ward_operator, "FIELD_REPORTS_PHUTHUY").await;
    assert_eq!(
        at_ward.len(),
        20,
        "the ward's stream holds its own events only"
    );
    assert!(at_ward.keys().all(|id| id.starts_with("ward/")));
    // The hub sources the ward's streams; it may not change or delete them.
    let hub_operator = ConnectSettings::resolve(Some(&operator))
        .unwrap()
        .connect("test-hub-operator")
        .await
        .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        hub_operator.request("$JS.phuthuy.API.STREAM.DELETE.MEETINGS_PHUTHUY", "".into()),
    )
    .await;
    assert!(
        !matches!(&answer, Ok(Ok(m)) if String::from_utf8_lossy(&m.payload).contains("success")),
        "the hub deleted a ward's stream: {answer:?}"
    );
    assert_eq!(ids(&ward_operator, "MEETINGS_PHUTHUY").await.0.len(), 0);
    wait_for(
        "the agency site's read models follow the hub",
        Duration::from_secs(180),
        || async { field_reports_total(&http, &agency.http).await == Some(40) },
        || agency.log_tail(20),
    )
    .await;

    // A minute without the hub: both sides go on publishing; the agency's read models answer.
    ward_link.cut();
    agency_link.cut();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < CUT {
        let id = format!("CUT-{i:04}");
        post_at_ward(&http, &ward, &token, &format!("PT-W-{id}")).await;
        publish_at_hub(&hub_pub, &format!("PT-H-{id}")).await;
        expected.push(format!("ward/PT-W-{id}"));
        expected.push(format!("hub/PT-H-{id}"));
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The site says so (its own log; it works on).
    assert!(
        ward.log().contains("the link to the hub is down"),
        "{}",
        ward.log_tail(10)
    );
    assert_eq!(
        field_reports_total(&http, &agency.http).await,
        Some(40),
        "the agency site answers from its mirror while the link is down\n{}",
        agency.log_tail(20)
    );
    let (on_hub, _) = ids(&auditor, "FIELD_REPORTS").await;
    assert_eq!(
        on_hub.len(),
        40 + i,
        "only the hub's own events arrived meanwhile"
    );

    // The links come back: every event on the hub exactly once; the agency catches up.
    ward_link.restore();
    agency_link.restore();
    let total = expected.len();
    wait_for(
        "the hub sourced what the ward stored while cut off",
        Duration::from_secs(180),
        count(total),
        || hub.log_tail(20),
    )
    .await;
    let (on_hub, _) = ids(&auditor, "FIELD_REPORTS").await;
    let want: BTreeMap<String, usize> = expected.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        on_hub, want,
        "every event on the central stream exactly once"
    );
    eprintln!("{} events during the cut, {total} in all", 2 * i);
    wait_for(
        "the agency site caught up",
        Duration::from_secs(180),
        || async { field_reports_total(&http, &agency.http).await == Some(total as u64) },
        || agency.log_tail(20),
    )
    .await;
    let sites = lienthong(&["site", "list", "--json", "--env", op]);
    let sites: Value = serde_json::from_str(&sites).unwrap();
    assert_eq!(sites[0]["name"], "phu-thuy");
    assert_eq!(sites[0]["streams"].as_array().unwrap().len(), 6);
}

/// Whether a site's log says its link to the hub is up (and not only that it never was).
fn linked(site: &SiteUp) -> bool {
    last_link_state(site) == Some(true)
}

/// The last link state the site logged: `Some(true)` linked, `Some(false)` down.
fn last_link_state(site: &SiteUp) -> Option<bool> {
    site.log().lines().rev().find_map(|l| {
        if l.contains("the link to the hub is down") {
            Some(false)
        } else if l.contains("linked to the hub") && !l.contains("not linked") {
            Some(true)
        } else {
            None
        }
    })
}

/// A client certificate for site `name` from `ca` into `dir`.
fn site_certificate(
    ca: &lienthong_bus::tls::pki::Authority,
    name: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    ca.issue(
        &lienthong_bus::tls::pki::IssueRequest {
            name: name.into(),
            usage: lienthong_bus::tls::pki::Usage::Client,
            dns: vec![],
            ips: vec![],
            unit: Some("site".into()),
            days: 90,
        },
        dir,
    )
    .unwrap()
    .cert
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_tls_links_ward_sites_by_certificate_and_drops_a_removed_or_rotated_one_at_once()
{
    use lienthong_bus::tls::pki::{Authority, IssueRequest, Usage};
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::init(&dir.path().join("pki"), "UBND TP. Phan Thiết").unwrap();
    let hub_cert = ca
        .issue(
            &IssueRequest {
                name: "hub".into(),
                usage: Usage::Server,
                dns: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().unwrap()],
                unit: None,
                days: 90,
            },
            &dir.path().join("hub"),
        )
        .unwrap();
    let leaf = free_port();
    let hub = Up::start(&[
        "--leaf-port",
        &leaf.to_string(),
        "--tls-cert",
        hub_cert.cert.to_str().unwrap(),
        "--tls-key",
        hub_cert.key.to_str().unwrap(),
        "--tls-ca",
        hub_cert.ca.to_str().unwrap(),
    ]);
    let base = hub.base.replace("http://", "https://");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&hub_cert.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    wait_for(
        "the hub is up with TLS",
        Duration::from_secs(60),
        || async { json_or_null(&http, format!("{base}/healthz")).await["status"] == "ok" },
        || hub.log_tail(20),
    )
    .await;
    let operator = hub.credentials("operator.env");
    let op = operator.to_str().unwrap();
    let op_env = lienthong_bus::credentials::read_env_file(&operator).unwrap();
    assert!(op_env["NATS_URL"].starts_with("tls://"), "{op_env:?}");

    // The ward is registered by its certificate: no password anywhere.
    let cert = site_certificate(&ca, "phu-thuy", &dir.path().join("phu-thuy"));
    let out = lienthong(&[
        "site",
        "add",
        "phu-thuy",
        "--domain",
        "phuthuy",
        "--certificate",
        cert.to_str().unwrap(),
        "--env",
        op,
    ]);
    assert!(out.contains("6 sources added"), "{out}");
    let ward_env = hub.credentials("site-phu-thuy.env");
    let vars = lienthong_bus::credentials::read_env_file(&ward_env).unwrap();
    assert!(
        !vars.contains_key("NATS_PASSWORD") && vars.contains_key("NATS_CERT"),
        "{vars:?}"
    );
    let hub_url = format!("nats-leaf://127.0.0.1:{leaf}");
    let start_ward = |env: &std::path::Path| {
        SiteUp::start(&[
            "--name",
            "phu-thuy",
            "--domain",
            "phuthuy",
            "--hub",
            &hub_url,
            "--env",
            env.to_str().unwrap(),
        ])
    };
    let ward = start_ward(&ward_env);
    wait_for(
        "the ward linked by certificate",
        Duration::from_secs(60),
        || async { linked(&ward) },
        || ward.log_tail(20),
    )
    .await;
    let caller_env = ward.data.join("credentials/ingress-site.env");
    wait_for(
        "the ward's ingress is up",
        Duration::from_secs(30),
        || async { caller_env.exists() },
        || ward.log_tail(20),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let token = lienthong_bus::credentials::read_env_file(&caller_env).unwrap()
        ["LIENTHONG_INGRESS_TOKEN"]
        .clone();
    for i in 0..5 {
        post_at_ward(&http, &ward, &token, &format!("PT-TLS-{i:03}")).await;
    }
    let auditor = hub.credentials("auditor.env");
    wait_for(
        "the hub sourced the ward's events over mutual TLS",
        Duration::from_secs(120),
        || {
            let auditor = auditor.clone();
            async move { ids(&auditor, "FIELD_REPORTS").await.0.len() >= 5 }
        },
        || ward.log_tail(20),
    )
    .await;

    // An agency's site, known by its certificate too, reads its copy from its own mirror.
    lienthong(&[
        "agency",
        "add",
        "xay-dung",
        "--streams",
        "FIELD_REPORTS",
        "--env",
        op,
    ]);
    let agency_cert = site_certificate(&ca, "xay-dung", &dir.path().join("xay-dung"));
    lienthong(&[
        "site",
        "add",
        "xay-dung",
        "--role",
        "agency",
        "--certificate",
        agency_cert.to_str().unwrap(),
        "--env",
        op,
    ]);
    let agency_env = hub.credentials("site-xay-dung.env");
    let agency = SiteUp::start(&[
        "--role",
        "agency",
        "--name",
        "xay-dung",
        "--domain",
        "xaydung",
        "--hub",
        &hub_url,
        "--env",
        agency_env.to_str().unwrap(),
    ]);
    let plain = reqwest::Client::new();
    wait_for(
        "the agency's site mirrored the ward's reports over mutual TLS",
        Duration::from_secs(120),
        || async { field_reports_total(&plain, &agency.http).await >= Some(5) },
        || agency.log_tail(20),
    )
    .await;
    assert!(linked(&agency), "{}", agency.log_tail(20));
    drop(agency);

    // Impostors: the same subject from another CA, and a certificate of the city's CA that
    // was never registered. Neither links.
    let rogue_ca = Authority::init(&dir.path().join("rogue-pki"), "UBND TP. Phan Thiết").unwrap();
    let rogue_cert = site_certificate(&rogue_ca, "phu-thuy", &dir.path().join("rogue"));
    let stranger = site_certificate(&ca, "mui-ne", &dir.path().join("mui-ne"));
    let impostor_env = |name: &str, cert: &std::path::Path| {
        let env = dir.path().join(format!("{name}.env"));
        std::fs::write(
            &env,
            format!(
                "NATS_CERT={}\nNATS_KEY={}\nNATS_CA={}\n",
                cert.display(),
                cert.with_extension("key").display(),
                hub_cert.ca.display()
            ),
        )
        .unwrap();
        env
    };
    let rogue = start_ward(&impostor_env("rogue", &rogue_cert));
    let unregistered = SiteUp::start(&[
        "--name",
        "mui-ne",
        "--domain",
        "muine",
        "--hub",
        &hub_url,
        "--env",
        impostor_env("mui-ne", &stranger).to_str().unwrap(),
    ]);
    wait_for(
        "the impostors say they are not linked",
        Duration::from_secs(60),
        || async {
            rogue.log().contains("not linked to the hub")
                && unregistered.log().contains("not linked to the hub")
        },
        || format!("{}\n---\n{}", rogue.log_tail(10), unregistered.log_tail(10)),
    )
    .await;
    assert!(!linked(&rogue), "{}", rogue.log_tail(20));
    assert!(!linked(&unregistered), "{}", unregistered.log_tail(20));
    drop((rogue, unregistered));

    // A rotation: the ward's certificate issued again (a new key) and registered; the link
    // open with the old one is closed at once, and the new one links.
    let rotated = site_certificate(&ca, "phu-thuy", &dir.path().join("phu-thuy-2"));
    let asked = Instant::now();
    lienthong(&[
        "site",
        "add",
        "phu-thuy",
        "--domain",
        "phuthuy",
        "--certificate",
        rotated.to_str().unwrap(),
        "--env",
        op,
    ]);
    wait_for(
        "the link with the old certificate closed",
        Duration::from_secs(20),
        || async { last_link_state(&ward) == Some(false) },
        || ward.log_tail(20),
    )
    .await;
    eprintln!(
        "rotation: the old certificate's link closed {:.1} s after `site add` was asked (the site looks every 2 s)",
        asked.elapsed().as_secs_f64()
    );
    // The old certificate does not link again (it retries every second).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(last_link_state(&ward), Some(false), "{}", ward.log_tail(20));
    drop(ward);
    let ward = start_ward(&ward_env);
    wait_for(
        "the ward linked with its new certificate",
        Duration::from_secs(60),
        || async { linked(&ward) },
        || ward.log_tail(20),
    )
    .await;

    // Removed: its link is closed at once.
    let asked = Instant::now();
    lienthong(&["site", "remove", "phu-thuy", "--env", op]);
    wait_for(
        "the removed site's link closed",
        Duration::from_secs(20),
        || async { last_link_state(&ward) == Some(false) },
        || ward.log_tail(20),
    )
    .await;
    eprintln!(
        "removal: the link closed {:.1} s after `site remove` was asked",
        asked.elapsed().as_secs_f64()
    );
}
