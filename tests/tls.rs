//! TLS on every link: a server with the city CA's certificate, clients that trust it and
//! clients that do not, plaintext refused, HTTPS for the HTTP services, and nothing listening
//! beyond loopback in the clear unless asked for by name.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use common::up::{free_port, lienthong_status};
use lienthong_bus::server::{NatsServer, ServerOptions};
use lienthong_bus::tls::pki::{Authority, IssueRequest, Usage};
use lienthong_bus::tls::{TlsFiles, Transport};
use lienthong_bus::{ConnectSettings, CredentialSet};

/// A CA in `dir/pki` and a server certificate `name` for loopback in `dir/name`.
fn city(dir: &Path, name: &str) -> (Authority, TlsFiles) {
    let ca = Authority::init(&dir.join("pki"), "UBND TP. Phan Thiết").unwrap();
    let out = dir.join(name);
    ca.issue(
        &IssueRequest {
            name: name.into(),
            usage: Usage::Server,
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            unit: None,
            days: 90,
        },
        &out,
    )
    .unwrap();
    (ca, TlsFiles::in_dir(&out, name))
}

async fn tls_server(dir: &Path, files: &TlsFiles, creds: &CredentialSet) -> NatsServer {
    NatsServer::start(
        ServerOptions {
            bin: None,
            data_dir: dir.join("nats"),
            host: "127.0.0.1".into(),
            port: None,
            sync_always: false,
            node: None,
            domain: None,
            leaf: None,
            transport: Transport::tls(files.clone()),
            max_file_store: None,
        },
        creds,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_server_with_tls_takes_clients_that_trust_its_ca_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = city(dir.path(), "n1");
    let creds = CredentialSet::load_or_generate_with(
        &dir.path().join("credentials"),
        "tls://127.0.0.1:4222",
        files.ca.as_deref(),
    )
    .unwrap();
    let server = tls_server(dir.path(), &files, &creds).await;
    assert!(server.url().starts_with("tls://"), "{}", server.url());

    // The credentials files carry what every standard client needs, with the nats CLI's names.
    let env = lienthong_bus::credentials::read_env_file(
        &dir.path().join("credentials").join("operator.env"),
    )
    .unwrap();
    assert!(env["NATS_URL"].starts_with("tls://"), "{env:?}");
    assert!(Path::new(&env["NATS_CA"]).is_absolute() && Path::new(&env["NATS_CA"]).exists());

    // A client given the CA connects, provisions and publishes.
    let operator = creds.settings("operator", &server.url()).unwrap();
    let js = async_nats::jetstream::new(operator.connect("test-tls").await.unwrap());
    lienthong_bus::provision(&js).await.unwrap();

    // Without the CA: refused, and told what to set.
    let mut no_ca = operator.clone();
    no_ca.ca = None;
    let e = no_ca.connect("test-no-ca").await.unwrap_err().to_string();
    assert!(e.contains("NATS_CA"), "{e}");
    eprintln!("a client without the CA: {e}");
    // Asking for plaintext (a nats:// URL, no CA) does not get it either.
    let plain = ConnectSettings {
        url: server.url().replace("tls://", "nats://"),
        ..no_ca
    };
    let e = plain.connect("test-plain").await.unwrap_err().to_string();
    eprintln!("a client asking for nats:// : {e}");

    // A raw plaintext CONNECT (what an old or misconfigured client sends) is refused by the
    // server itself, with its reason.
    let port = server.port();
    let said = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut info = [0u8; 4096];
        let n = s.read(&mut info).unwrap();
        let info = String::from_utf8_lossy(&info[..n]).to_string();
        let _ = s.write_all(
            b"CONNECT {\"verbose\":false,\"user\":\"operator\",\"pass\":\"x\"}\r\nPING\r\n",
        );
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (info, String::from_utf8_lossy(&rest).to_string())
    })
    .await
    .unwrap();
    assert!(said.0.contains("\"tls_required\":true"), "{}", said.0);
    assert!(
        !said.1.contains("PONG"),
        "a plaintext client was served: {}",
        said.1
    );
    eprintln!("a plaintext client: {}", said.1.trim());
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_a_wrong_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = city(dir.path(), "n1");
    let (_, other) = city(&dir.path().join("other"), "n1");
    // A key that does not go with the certificate: the HTTPS listener says so at start.
    let mixed = TlsFiles {
        key: other.key.clone(),
        ..files.clone()
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = lienthong_bus::tls::http::Listener::new("HTTP", tcp, &Transport::tls(mixed))
        .err()
        .expect("a key of another certificate is refused")
        .to_string();
    assert!(e.contains("does not go with the certificate"), "{e}");
}

#[tokio::test]
async fn https_listeners_serve_with_the_certificate_and_refuse_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = city(dir.path(), "replay");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener =
        lienthong_bus::tls::http::Listener::new("HTTP", tcp, &Transport::tls(files.clone()))
            .unwrap();
    let url = listener.url();
    assert!(url.starts_with("https://"), "{url}");
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ca = reqwest::Certificate::from_pem(&std::fs::read(files.ca.unwrap()).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = trusting.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    // A client without the CA does not take the certificate.
    let e = reqwest::get(format!("{url}/healthz")).await.unwrap_err();
    eprintln!("a client without the CA: {e:?}");
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = url.replace("https://", "http://");
    assert!(reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_err());
    // A connection that never says hello does not hold up the others.
    let addr = url.trim_start_matches("https://").to_string();
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let r = trusting.get(format!("{url}/healthz")).send().await.unwrap();
    assert!(r.status().is_success());
}

#[test]
fn nothing_listens_beyond_loopback_in_the_clear_unless_asked_for_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = lienthong_status(&[
        "up",
        "--nats-host",
        "0.0.0.0",
        "--nats-port",
        &free_port().to_string(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("--tls-cert") && out.contains("--insecure-plaintext"),
        "{out}"
    );
    eprintln!("up on 0.0.0.0: {}", out.trim());
    let (ok, out) = lienthong_status(&[
        "replay",
        "serve",
        "--read-only",
        "--db",
        dir.path().join("replay").to_str().unwrap(),
        "--listen",
        &format!("0.0.0.0:{}", free_port()),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("--tls-cert") && out.contains("--insecure-plaintext"),
        "{out}"
    );
    eprintln!("replay serve on 0.0.0.0: {}", out.trim());
}

#[tokio::test]
async fn healthz_degrades_and_the_integrity_panel_warns_30_days_before_a_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, long) = city(dir.path(), "replay");
    let short = ca
        .issue(
            &IssueRequest {
                name: "short".into(),
                usage: Usage::Server,
                dns: vec!["localhost".into()],
                ips: vec![],
                unit: None,
                days: 20,
            },
            &dir.path().join("short"),
        )
        .unwrap();
    let bus = common::Bus::start().await;
    let http = reqwest::Client::new();
    let serve = |certificates: Vec<std::path::PathBuf>| {
        common::serve_replay_with(
            &bus,
            lienthong_replay::service::ServeOptions {
                certificates,
                ..Default::default()
            },
        )
    };
    let (addr, _a) = serve(long.certificates()).await;
    let health = common::get_json(&http, format!("http://{addr}/healthz")).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["certificates"][0]["state"], "valid", "{health}");

    let (addr, _b) = serve(vec![short.cert.clone(), short.ca.clone()]).await;
    let health = common::get_json(&http, format!("http://{addr}/healthz")).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["certificates"][0]["state"], "expiring", "{health}");
    assert!(health["certificates"][0]["days_left"].as_i64().unwrap() <= 20);
    let integrity = common::get_json(&http, format!("http://{addr}/api/v1/integrity")).await;
    let warned = integrity["certificates"].as_array().unwrap();
    assert_eq!(
        warned.len(),
        1,
        "only the expiring one is warned: {integrity}"
    );
    assert!(
        warned[0]["warning"].as_str().unwrap().contains("CN=short"),
        "{integrity}"
    );
    assert_eq!(integrity["alarms"], 1, "{integrity}");

    // A certificate file that cannot be read is an error, not a silence.
    let (addr, _c) = serve(vec![dir.path().join("missing.crt")]).await;
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

/// The key pin of the certificate a TLS server presents at `addr` (after NATS's INFO when
/// `nats`).
async fn presented_pin(addr: std::net::SocketAddr, ca: &Path, nats: bool) -> String {
    let config = std::sync::Arc::new(lienthong_bus::tls::client_config(Some(ca)).unwrap());
    let der = lienthong_bus::tls::presented_certificate(addr, config, nats)
        .await
        .unwrap();
    lienthong_bus::tls::pki::inspect_der("peer", &der)
        .unwrap()
        .pin
}

#[tokio::test]
async fn certificates_are_rotated_without_restarting_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = city(dir.path(), "n1");
    let reissue = || {
        ca.issue(
            &IssueRequest {
                name: "n1".into(),
                usage: Usage::Server,
                dns: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().unwrap()],
                unit: None,
                days: 90,
            },
            &dir.path().join("n1"),
        )
        .unwrap()
        .info
        .pin
    };
    let ca_file = files.ca.clone().unwrap();
    let first = lienthong_bus::tls::pki::inspect(&files.cert).unwrap()[0]
        .pin
        .clone();

    // nats-server: the files replaced, then a reload (what `systemctl reload` and the agent's
    // reloads do); a connection open before keeps working, new ones see the new certificate.
    let creds = CredentialSet::load_or_generate_with(
        &dir.path().join("credentials"),
        "tls://127.0.0.1:1",
        Some(&ca_file),
    )
    .unwrap();
    let server = tls_server(dir.path(), &files, &creds).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    assert_eq!(presented_pin(addr, &ca_file, true).await, first);
    let before = creds
        .settings("operator", &server.url())
        .unwrap()
        .connect("test-before")
        .await
        .unwrap();
    let second = reissue();
    let system = creds
        .settings("system", &server.url())
        .unwrap()
        .connect("test-reload")
        .await
        .unwrap();
    let id = system.server_info().server_id;
    let answer = system
        .request(format!("$SYS.REQ.SERVER.{id}.RELOAD"), "".into())
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&answer.payload).contains("error"),
        "{answer:?}"
    );
    assert_eq!(
        presented_pin(addr, &ca_file, true).await,
        second,
        "the old certificate is still served"
    );
    before
        .flush()
        .await
        .expect("a connection opened before the rotation still works");

    // HTTPS: the files replaced are read again at the next handshake after they changed.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener =
        lienthong_bus::tls::http::Listener::new("HTTP", tcp, &Transport::tls(files.clone()))
            .unwrap();
    let http_addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(presented_pin(http_addr, &ca_file, false).await, second);
    let third = reissue();
    tokio::time::sleep(lienthong_bus::tls::http::RELOAD_EVERY + Duration::from_millis(500)).await;
    assert_eq!(
        presented_pin(http_addr, &ca_file, false).await,
        third,
        "HTTPS still serves the old certificate"
    );
}
