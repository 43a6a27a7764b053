//! The shared datasets end to end, on a demo city run in-process (`lienthong::Stack`, as `up
//! --demo` runs it): the DCAT-AP catalogue read as linked data offline by another language's
//! library (PyLD), every distribution answering with the columns its schema describes, the
//! OpenAPI 3.1 document valid and true, a snapshot that verifies against the audited history
//! and one changed figure that does not, and publication to CKAN that is idempotent and that
//! the open-data adapter recognises when it comes back.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use lienthong::{Stack, StackOptions};
use serde_json::Value;

async fn get(http: &reqwest::Client, url: &str) -> (u16, String, String) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Runs the binary without blocking the runtime the in-process stack serves from.
async fn lienthong(env: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .arg("--env")
        .arg(env)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Whether `cell` is a value of the Table Schema type `ty` (empty: missing, allowed).
fn conforms(ty: &str, cell: &str) -> bool {
    if cell.is_empty() {
        return true;
    }
    match ty {
        "integer" => cell.parse::<i64>().is_ok(),
        "number" => cell.parse::<f64>().is_ok(),
        "yearmonth" => {
            cell.len() == 7
                && cell.as_bytes()[4] == b'-'
                && cell[..4].parse::<u16>().is_ok()
                && cell[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        }
        _ => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_are_catalogued_verifiable_and_published_idempotently() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(StackOptions {
        data: data.clone(),
        nats_host: "127.0.0.1".into(),
        nats_port: 0,
        http: "127.0.0.1:0".parse().unwrap(),
        ingress: "127.0.0.1:0".parse().unwrap(),
        ingress_config: None,
        demo: Some(0.05),
        adapters: Vec::new(),
        durable: false,
        max_store: None,
        schemas: std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap()),
        publication: Default::default(),
        verify_every: std::time::Duration::from_secs(60),
        cluster: None,
        leaf_port: None,
        transport: Default::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", stack.http);
    let http = reqwest::Client::new();
    let creds = data.join("credentials");

    // `up --demo` publishes the datasets to the demo's portal once the demo has settled, and
    // the open-data adapter recognises them when they come back: counted apart.
    let start = Instant::now();
    loop {
        let (_, _, kpi) = get(&http, &format!("{base}/api/v1/kpi")).await;
        let kpi: Value = serde_json::from_str(&kpi).unwrap_or_default();
        if kpi["open_data"]["bus_datasets"] == 5 {
            assert!(kpi["open_data"]["datasets"].as_u64().unwrap() > 5);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the demo never published its datasets: {}",
            kpi["open_data"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The list and the DCAT-AP catalogue, read as linked data without the network.
    let (status, _, list) = get(&http, &format!("{base}/api/v1/datasets")).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let datasets = list["datasets"].as_array().unwrap().clone();
    assert!(datasets.len() >= 5);
    let (status, ct, catalog) = get(&http, &format!("{base}/api/v1/datasets/catalog.jsonld")).await;
    assert_eq!((status, ct.as_str()), (200, "application/ld+json"));
    let catalog_file = dir.path().join("catalog.jsonld");
    std::fs::write(&catalog_file, &catalog).unwrap();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/python");
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/dcat_check.py"))
        .arg(&catalog_file)
        .env("PYTHONPATH", &tools)
        .output()
        .await
        .expect("python3 with PyLD (./scripts/install-python-sdk)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let described = read["datasets"].as_array().unwrap();
    assert_eq!(described.len(), datasets.len());
    for d in described {
        let id = d["id"].as_str().unwrap();
        assert!(
            d["titles"]["vi"].is_string() && d["titles"]["en"].is_string(),
            "{id}"
        );
        assert_eq!(d["descriptions"], serde_json::json!(["en", "vi"]), "{id}");
        assert_eq!(
            d["licence"][0],
            "https://creativecommons.org/licenses/by/4.0/"
        );
        assert_eq!(
            d["publisher"].as_array().unwrap().len(),
            2,
            "{id}: vi and en"
        );
        assert_eq!(d["contact"].as_array().unwrap().len(), 1);
        assert!(!d["keywords"].as_array().unwrap().is_empty());
        assert!(d["frequency"][0].as_str().unwrap().ends_with("UPDATE_CONT"));
        assert!(!d["spatial"].as_array().unwrap().is_empty());
        if id != "open-data-catalogue" {
            assert_eq!(d["temporal"][0]["startDate"], "2023-01", "{id}");
        }
        let dists = d["distributions"].as_array().unwrap();
        assert_eq!(dists.len(), 2, "{id}: CSV and JSON");
        for dist in dists {
            // Every distribution answers, with the columns its schema describes.
            let url = dist["download"][0].as_str().unwrap();
            let (status, ct, body) = get(&http, url).await;
            assert_eq!(status, 200, "{url}");
            let (_, _, schema) = get(&http, dist["conforms_to"][0].as_str().unwrap()).await;
            let schema: Value = serde_json::from_str(&schema).unwrap();
            let fields: Vec<(&str, &str)> = schema["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
                .collect();
            if url.ends_with(".csv") {
                assert!(ct.starts_with("text/csv"), "{ct}");
                let mut r = csv::Reader::from_reader(body.as_bytes());
                let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
                assert_eq!(
                    header,
                    fields.iter().map(|f| f.0).collect::<Vec<_>>(),
                    "{url}"
                );
                let mut rows = 0;
                for rec in r.records() {
                    let rec = rec.unwrap();
                    for ((name, ty), cell) in fields.iter().zip(rec.iter()) {
                        assert!(conforms(ty, cell), "{id} {name}: {cell:?} is not a {ty}");
                    }
                    rows += 1;
                }
                assert!(rows > 0, "{id} has rows");
            } else {
                let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
                for row in &rows {
                    let keys: Vec<&str> = row
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let mut want: Vec<&str> = fields.iter().map(|f| f.0).collect();
                    want.sort();
                    assert_eq!(keys, want, "{url}");
                }
            }
        }
    }
    // Small counts are withheld, and the metadata says so.
    let (_, _, fr_schema) = get(
        &http,
        &format!("{base}/api/v1/datasets/field-reports-monthly/schema.json"),
    )
    .await;
    assert!(fr_schema.contains("x-withheld-below"), "{fr_schema}");
    let fr = datasets
        .iter()
        .find(|d| d["id"] == "field-reports-monthly")
        .unwrap();
    assert!(fr["withheld_cells"].as_u64().unwrap() > 0);

    // The OpenAPI document: valid OpenAPI 3.1, and every path it lists is served.
    let (status, _, openapi) = get(&http, &format!("{base}/openapi.json")).await;
    assert_eq!(status, 200);
    let openapi: Value = serde_json::from_str(&openapi).unwrap();
    let official: Value = serde_json::from_str(include_str!("fixtures/openapi/3.1.json")).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&official)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&openapi)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for (path, ops) in openapi["paths"].as_object().unwrap() {
        if ops.get("get").is_none() {
            continue;
        }
        let url = format!(
            "{base}{}",
            path.replace("{id}", "field-reports-monthly")
                .replace("{path}", "field_reports/report.submitted/v1.json")
                .replace("{panel}", "wards")
        );
        if ops["get"]["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some()
        {
            // An endless stream: its answer's head only.
            let r = http.get(&url).send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(
                r.status() == 200 && ct == "text/event-stream",
                "{path}: {ct}"
            );
            continue;
        }
        let (status, ct, _) = get(&http, &url).await;
        let routed = status != 404 || ct.contains("problem+json");
        assert!(routed && status < 500, "{path}: {status} {ct}");
    }

    // A snapshot of the year, verified against the audited history by the auditor; one
    // figure changed, and verification names the dataset and the row.
    let auditor = creds.join("auditor.env");
    let snap = dir.path().join("snapshot");
    let (ok, out) = lienthong(
        &auditor,
        &[
            "datasets",
            "snapshot",
            "--as-of",
            "2023-12-31T23:59:59+07:00",
            "--out",
            snap.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(snap.join("provenance.json")).unwrap()).unwrap();
    for s in provenance["streams"].as_array().unwrap() {
        if s["folded_to"].as_u64().unwrap() > 0 {
            assert!(
                s["checkpoint"].is_object(),
                "{s}: covered by a signed checkpoint"
            );
        }
    }
    assert!(provenance["code_version"]
        .as_str()
        .unwrap()
        .starts_with("lienthong "));
    let key = data.join("audit-public.key");
    let (ok, out) = lienthong(
        &auditor,
        &[
            "datasets",
            "verify",
            snap.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let csv_path = snap.join("documents-exchange-monthly.csv");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[2].split(',').map(str::to_string).collect();
    let sent: u64 = cells[3].parse().unwrap();
    cells[3] = (sent + 1).to_string();
    let (month, agency) = (cells[0].clone(), cells[1].clone());
    lines[2] = cells.join(",");
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();
    let (ok, out) = lienthong(
        &auditor,
        &[
            "datasets",
            "verify",
            snap.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "dataset documents-exchange-monthly, row 2 (month={month}, agency={agency}), column sent"
        )),
        "{out}"
    );

    // Publishing again changes nothing.
    let ckan = lienthong_bus::credentials::read_env_file(&creds.join("ckan-demo.env")).unwrap();
    let (ok, out) = lienthong(
        &auditor,
        &[
            "datasets",
            "publish",
            "--ckan",
            &ckan["CKAN_URL"],
            "--token-file",
            &ckan["CKAN_API_TOKEN_FILE"],
            "--from",
            &format!("{base}/"),
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("created 0, updated 0, unchanged 5 (0 CKAN writes)"),
        "{out}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn publishing_creates_one_package_per_dataset_once_and_reports_refusals() {
    use lienthong_adapters::open_data::simulator::{fixture_packages, CkanSimulator};
    let bus = common::Bus::start().await;
    let (replay, _stop) = common::serve_replay(&bus).await;
    let ckan = CkanSimulator::new(fixture_packages()).with_token("the-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal: url::Url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (_t, shutdown) = lienthong_bus::Shutdown::new();
    tokio::spawn(ckan.clone().serve(listener, shutdown.signalled()));
    let target = |token: &str, org: &str| lienthong::datasets::ckan::Target {
        ckan: portal.clone(),
        token: token.into(),
        organization: org.into(),
        from: format!("http://{replay}/").parse().unwrap(),
    };
    // Refused calls say what CKAN said.
    let e = lienthong::datasets::ckan::publish(&target("wrong", "ubnd-tp-phan-thiet"))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("Authorization Error"), "{e:#}");
    let e = lienthong::datasets::ckan::publish(&target("the-token", "no-such-org"))
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("owner_org")
            && format!("{e:#}").contains("Organization does not exist"),
        "{e:#}"
    );
    // One package per dataset, with its CSV and JSON; a second run writes nothing.
    let r = lienthong::datasets::ckan::publish(&target("the-token", "ubnd-tp-phan-thiet"))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 5);
    let ours: Vec<Value> = ckan
        .packages()
        .into_iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("lienthong-"))
        .collect();
    assert_eq!(ours.len(), 5);
    for p in &ours {
        assert_eq!(p["resources"].as_array().unwrap().len(), 2);
        assert_eq!(p["license_id"], "cc-by");
        assert!(p["extras"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "lienthong_dataset"));
    }
    let writes = ckan.writes();
    let r = lienthong::datasets::ckan::publish(&target("the-token", "ubnd-tp-phan-thiet"))
        .await
        .unwrap();
    assert_eq!((r.created.len(), r.updated.len(), r.writes), (0, 0, 0));
    assert_eq!(ckan.writes(), writes, "nothing written the second time");
    // New figures: the version and the resources' digests change, nothing is created.
    bus.publisher("adapter-sso", "urn:test:sso")
        .await
        .publish(lienthong_bus::EventDraft::new(
            lienthong_bus::EventType::new("sso", "session", "started"),
            "s-1",
            "S-1",
            chrono::Utc::now(),
            serde_json::json!({"user_ref": "u-0123456789abcdef0123456789abcdef", "realm": "binhthuan", "client_id": "qlvb", "at": "2023-11-20T02:16:42Z", "session_ref": "s-0123456789abcdef0123456789abcdef", "auth_method": "openid-connect"}),
            lienthong_bus::Classification::Internal,
        ))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let r = lienthong::datasets::ckan::publish(&target("the-token", "ubnd-tp-phan-thiet"))
            .await
            .unwrap();
        if r.updated == vec!["sign-on-monthly".to_string()] {
            assert!(r.created.is_empty());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{r:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
