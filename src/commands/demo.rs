//! The demo behind `lienthong up --demo`: a synthetic city year served by one simulator per
//! subsystem, the four adapters configured against them, and a demo caller of the ingress.
//! Secrets (pseudonymisation key, webhook token, client secret, ingress token) are generated
//! into `data/credentials/` on first run; what is fed once (files, webhook pushes) is marked
//! in `data/demo/` so a restart does not feed it again.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lienthong_adapters::demo::{self, CityYear};
use lienthong_adapters::documents::DocumentsConfig;
use lienthong_adapters::field_reports::Open311Simulator;
use lienthong_adapters::ingress::{token_hash, Caller, IngressConfig};
use lienthong_adapters::open_data::{CkanSimulator, OpenDataConfig};
use lienthong_adapters::sso::adapter::AdminApiConfig;
use lienthong_adapters::sso::simulator::push_user_events;
use lienthong_adapters::sso::{KeycloakSimulator, SsoConfig};
use lienthong_adapters::{AdapterConfig, FieldReportsConfig};
use lienthong_bus::credentials::write_private;
use serde_json::Value;
use tokio::net::TcpListener;
use tracing::info;

use super::secret;
use super::up::Task;

/// The demo caller of the ingress.
pub const DEMO_SOURCE: &str = "urn:lienthong:phanthiet:demo-caller";
pub const DEMO_TYPES: &str = "vn.egov.field_reports.*";

pub struct Demo {
    pub configs: Vec<AdapterConfig>,
    pub tasks: Vec<(&'static str, Task)>,
    /// Where to push the sign-on user events once the SSO adapter listens, and with what token.
    pub sso_push: Option<(String, String, Vec<Value>)>,
    pub lines: Vec<String>,
}

/// A free loopback port (the listener is dropped; the adapter binds it right after).
fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn listener() -> anyhow::Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", l.local_addr()?);
    Ok((l, url))
}

fn once(marker: &Path) -> bool {
    !marker.exists()
}

pub async fn prepare(
    data: &Path,
    scale: f64,
    stop: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> anyhow::Result<(Demo, IngressConfig, String)> {
    let creds = data.join("credentials");
    let marks = data.join("demo");
    std::fs::create_dir_all(&marks)?;
    let city: CityYear = demo::generate(2023, scale, 2023);
    std::fs::write(
        marks.join("totals.json"),
        serde_json::to_vec_pretty(&city.totals)?,
    )?;
    let mut d = Demo {
        configs: Vec::new(),
        tasks: Vec::new(),
        sso_push: None,
        lines: Vec::new(),
    };

    // Field reports: Open311.
    let (l, url) = listener().await?;
    let sim = Open311Simulator::new(city.field_reports.clone());
    let s = stop();
    d.tasks.push((
        "simulator field_reports",
        tokio::spawn(async move { sim.serve(l, s).await.map_err(Into::into) }),
    ));
    let mut fr = FieldReportsConfig::new(url.parse()?);
    fr.poll_interval_secs = 5;
    fr.start_date = "2023-01-01T00:00:00+07:00".parse()?;
    d.configs.push(AdapterConfig::FieldReports(fr));
    d.lines
        .push(format!("  Open311 simulator  {url}requests.json"));

    // Documents: files dropped into the inbox (once), plus the push endpoint.
    let inbox = data.join("inbox").join("documents");
    std::fs::create_dir_all(&inbox)?;
    if once(&marks.join("documents-written")) {
        for (name, xml) in &city.edxml {
            std::fs::write(inbox.join(name), xml)?;
        }
        let lines: Vec<String> = city.register.iter().map(|v| v.to_string()).collect();
        std::fs::write(inbox.join("register-2023.jsonl"), lines.join("\n"))?;
        std::fs::write(marks.join("documents-written"), "")?;
    }
    let docs_push = free_port()?;
    d.configs.push(AdapterConfig::Documents(DocumentsConfig {
        source: "urn:lienthong:phanthiet:documents".into(),
        inbox: Some(inbox.clone()),
        listen: Some(docs_push),
        poll_interval_secs: 5,
    }));
    d.lines.push(format!(
        "  Documents inbox    {}  (push: http://{docs_push}/edxml, /register)",
        inbox.display()
    ));

    // Sign-on: a Keycloak stand-in for admin events; user events pushed to the webhook once.
    let key_file = creds.join("sso-pseudonymization.key");
    secret(&key_file)?;
    let token_file = creds.join("sso-webhook.token");
    let webhook_token = secret(&token_file)?;
    let client_secret_file = creds.join("keycloak-client.secret");
    let client_secret = secret(&client_secret_file)?;
    let kc = KeycloakSimulator::new(city.sso_admin_events.clone(), "lienthong", &client_secret);
    let (l, kc_url) = listener().await?;
    let s = stop();
    d.tasks.push((
        "simulator keycloak",
        tokio::spawn(async move { kc.serve(l, s).await.map_err(Into::into) }),
    ));
    let webhook = free_port()?;
    d.configs.push(AdapterConfig::Sso(SsoConfig {
        source: "urn:lienthong:phanthiet:sso".into(),
        realm: "binhthuan".into(),
        pseudonymization_key_file: key_file,
        listen: Some(webhook),
        push_token_file: Some(token_file),
        admin_api: Some(AdminApiConfig {
            base_url: kc_url.parse()?,
            client_id: "lienthong".into(),
            client_secret_file,
            poll_interval_secs: 10,
            page_size: 100,
        }),
    }));
    if once(&marks.join("sso-pushed")) {
        d.sso_push = Some((
            format!("http://{webhook}/keycloak/events"),
            webhook_token,
            city.sso_user_events.clone(),
        ));
    }
    d.lines.push(format!("  Keycloak simulator {kc_url}admin/realms/binhthuan/admin-events  (webhook: http://{webhook}/keycloak/events)"));

    // Open data: CKAN.
    let ckan = CkanSimulator::new(city.ckan_packages.clone());
    let (l, ckan_url) = listener().await?;
    let s = stop();
    d.tasks.push((
        "simulator ckan",
        tokio::spawn(async move { ckan.serve(l, s).await.map_err(Into::into) }),
    ));
    d.configs.push(AdapterConfig::OpenData(OpenDataConfig {
        endpoint: ckan_url.parse()?,
        source: "urn:lienthong:phanthiet:open_data".into(),
        poll_interval_secs: 10,
        rows: 100,
    }));
    d.lines.push(format!(
        "  CKAN simulator     {ckan_url}api/3/action/package_search"
    ));

    // The ingress's demo caller.
    let token = secret(&creds.join("ingress-demo.token"))?;
    let ingress = IngressConfig {
        listen: "127.0.0.1:8090".parse()?,
        max_body_bytes: 1024 * 1024,
        callers: vec![Caller {
            name: "demo".into(),
            token_sha256: token_hash(&token),
            sources: vec![DEMO_SOURCE.into()],
            types: vec![DEMO_TYPES.into()],
        }],
    };
    info!(totals = %serde_json::to_string(&city.totals)?, "demo city year");
    Ok((d, ingress, token))
}

/// Writes `data/credentials/ingress-demo.env` for the demo caller.
pub fn write_ingress_env(creds: &Path, url: &str, token: &str) -> anyhow::Result<PathBuf> {
    let path = creds.join("ingress-demo.env");
    write_private(
        &path,
        &format!(
            "# The demo caller of the HTTP CloudEvents ingress. Generated; keep private.\n\
             LIENTHONG_INGRESS_URL={url}/events\nLIENTHONG_INGRESS_TOKEN={token}\n\
             LIENTHONG_INGRESS_SOURCE={DEMO_SOURCE}\nLIENTHONG_INGRESS_TYPES={DEMO_TYPES}\n"
        ),
    )
    .context("writing ingress-demo.env")?;
    Ok(path)
}

/// Pushes the sign-on user events once the webhook answers, then marks it done.
pub async fn push_sso(
    data: &Path,
    url: String,
    token: String,
    events: Vec<Value>,
) -> anyhow::Result<()> {
    let health = url.replace("/keycloak/events", "/healthz");
    for _ in 0..100 {
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    push_user_events(&url, Some(&token), &events, 500)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    std::fs::write(data.join("demo").join("sso-pushed"), "")?;
    info!(
        events = events.len(),
        "pushed the demo's sign-on events to the webhook"
    );
    Ok(())
}
