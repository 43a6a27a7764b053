//! Test harness: one real nats-server per test (random port, temporary store), started with
//! the project's `nats.conf` and fresh credentials, streams provisioned by the operator.
#![allow(dead_code)]

pub mod browser;
pub mod netns;
pub mod proxy;
pub mod up;

use std::sync::Arc;

use async_nats::jetstream;
use lienthong_bus::{CredentialSet, NatsServer, Publisher, SchemaRegistry};
use lienthong_replay::store::PointInTime;
use lienthong_replay::{Metrics, ReadStore};

pub struct Bus {
    pub server: NatsServer,
    pub creds: CredentialSet,
    pub registry: Arc<SchemaRegistry>,
}

impl Bus {
    /// Starts a server and provisions the contract's streams. Fails (never skips) when
    /// nats-server cannot be found, with the install hint.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server whose store is `dir` (kept: a later call starts the same server again),
    /// with the given credentials.
    pub async fn start_in(dir: &std::path::Path, creds: CredentialSet, port: u16) -> Self {
        let server = NatsServer::start(
            lienthong_bus::server::ServerOptions {
                bin: None,
                data_dir: dir.to_path_buf(),
                host: "127.0.0.1".into(),
                port: Some(port),
                sync_always: false,
                node: None,
                domain: None,
                leaf: None,
                transport: Default::default(),
                max_file_store: None,
            },
            &creds,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let bus = Self {
            server,
            creds,
            registry: Arc::new(SchemaRegistry::embedded().expect("schemas")),
        };
        lienthong_bus::provision(&bus.js("operator").await)
            .await
            .expect("provision");
        bus
    }

    /// The agency registry's configuration agent for this server (as `lienthong up` runs
    /// it), and the operator's hand on the registry, writing credentials into `dir`.
    pub async fn agencies(&self, dir: &std::path::Path) -> Agencies {
        let agent = lienthong_bus::agencies::agent::Agent::new(
            &self
                .server
                .data_dir()
                .join(lienthong_bus::server::ACCOUNTS_CONF),
            self.client("operator").await,
            self.client("system").await,
        )
        .unwrap();
        let (trigger, shutdown) = lienthong_bus::Shutdown::new();
        tokio::spawn(agent.run(shutdown.signalled()));
        Agencies {
            admin: self.agency_admin(dir).await,
            _agent: trigger,
        }
    }

    /// Another operator's hand on the agency registry (no agent of its own).
    pub async fn agency_admin(
        &self,
        dir: &std::path::Path,
    ) -> lienthong_bus::agencies::admin::AgencyAdmin {
        let (client, refusals) = self
            .creds
            .settings("operator", &self.server.url())
            .unwrap()
            .connect_watched("test-agency-admin")
            .await
            .unwrap();
        lienthong_bus::agencies::admin::AgencyAdmin::new(
            client,
            refusals,
            self.registry.clone(),
            dir,
            &self.server.url(),
            "tests@localhost",
        )
    }

    /// Connected with a credentials file, its refusals watched.
    pub async fn connect_env(
        &self,
        env: &std::path::Path,
    ) -> (async_nats::Client, lienthong_bus::Refusals) {
        lienthong_bus::ConnectSettings::resolve(Some(env))
            .unwrap()
            .connect_watched("test-env")
            .await
            .unwrap()
    }

    /// A reader (direct get) as `role`.
    pub async fn reader(&self, role: &str) -> lienthong_bus::StreamReader {
        let (client, refusals) = self
            .creds
            .settings(role, &self.server.url())
            .unwrap()
            .connect_watched(&format!("test-reader-{role}"))
            .await
            .unwrap();
        lienthong_bus::StreamReader::new(client, refusals)
    }

    /// [`Bus::start`], in durable mode (`sync_interval: always`) when asked.
    pub async fn start_with(sync_always: bool) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let creds = CredentialSet::generate();
        let server = NatsServer::start_ephemeral_with(&creds, sync_always)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let bus = Self {
            server,
            creds,
            registry: Arc::new(SchemaRegistry::embedded().expect("schemas")),
        };
        lienthong_bus::provision(&bus.js("operator").await)
            .await
            .expect("provision");
        bus
    }

    pub async fn client(&self, role: &str) -> async_nats::Client {
        self.creds
            .settings(role, &self.server.url())
            .unwrap()
            .connect(&format!("test-{role}"))
            .await
            .unwrap()
    }

    pub async fn js(&self, role: &str) -> jetstream::Context {
        jetstream::new(self.client(role).await)
    }

    /// What an adapter gets, connected as `role`, with its own counters.
    pub async fn adapter_context(&self, role: &str) -> lienthong_adapters::AdapterContext {
        let (client, refusals) = self
            .creds
            .settings(role, &self.server.url())
            .unwrap()
            .connect_watched(&format!("test-{role}"))
            .await
            .unwrap();
        lienthong_adapters::AdapterContext {
            js: jetstream::new(client),
            registry: self.registry.clone(),
            metrics: lienthong_bus::Metrics::new(),
            refusals,
            transport: Default::default(),
        }
    }

    pub async fn publisher(&self, role: &str, source: &str) -> Publisher {
        Publisher::new(self.js(role).await, self.registry.clone(), source)
    }

    /// How many messages a stream holds (as the operator sees it).
    pub async fn messages(&self, stream: &str) -> u64 {
        let mut s = self
            .js("operator")
            .await
            .get_stream(stream)
            .await
            .expect("stream");
        s.info().await.unwrap().state.messages
    }

    /// Every read model rebuilt, as the replay role, into a temporary store (as of `at`).
    pub async fn rebuild(&self, at: PointInTime) -> (ReadStore, Arc<Metrics>) {
        let store = ReadStore::temporary().unwrap();
        let metrics = Arc::new(Metrics::default());
        let js = self.js("replay").await;
        for r in lienthong_replay::service::runners(&js, &self.registry, &store, &metrics) {
            r.rebuild_at(at, &|_, _| {}).await.unwrap();
        }
        (store, metrics)
    }

    /// Every message of a stream, read with the given role by direct get (as the auditor's
    /// tools read: no consumer).
    pub async fn read_all(
        &self,
        role: &str,
        stream: &str,
    ) -> Vec<lienthong_bus::reader::StoredMessage> {
        self.reader(role)
            .await
            .read_all(stream, None)
            .await
            .unwrap_or_else(|e| panic!("reading {stream} as {role}: {e}"))
    }
}

/// The agency registry on a test server: the agent runs until this is dropped.
pub struct Agencies {
    pub admin: lienthong_bus::agencies::admin::AgencyAdmin,
    _agent: lienthong_bus::ShutdownTrigger,
}

/// A stored message as an operator could store it again: subject, headers, payload.
pub type Raw = (String, async_nats::HeaderMap, bytes::Bytes);

/// What an operator could do: delete `stream`, provision it again empty, and store its
/// history back after `edit`.
pub async fn recreate_stream(
    js: &jetstream::Context,
    stream: &str,
    edit: impl FnOnce(&mut Vec<Raw>),
) {
    let mut raw: Vec<Raw> = read_stream(js, stream)
        .await
        .into_iter()
        .map(|m| {
            (
                m.subject.to_string(),
                m.headers.clone().unwrap_or_default(),
                m.payload.clone(),
            )
        })
        .collect();
    edit(&mut raw);
    js.delete_stream(stream).await.unwrap();
    lienthong_bus::provision(js).await.unwrap();
    for (subject, headers, payload) in raw {
        js.publish_with_headers(subject, headers, payload)
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

pub async fn read_stream(js: &jetstream::Context, stream: &str) -> Vec<jetstream::Message> {
    use futures::StreamExt;
    let mut s = js.get_stream(stream).await.expect("stream");
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let consumer = s
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        out.push(m);
        if seq >= last {
            break;
        }
    }
    out
}

/// The demo token and source of the test ingress's caller (may publish field reports).
pub const INGRESS_TOKEN: &str = "token-of-the-dotnet-field-reports-system";
pub const INGRESS_SOURCE: &str = "urn:lienthong:phanthiet:field_reports:dotnet";

/// An ingress as its own role on a random port, with one caller (token [`INGRESS_TOKEN`],
/// sources [`INGRESS_SOURCE`], field-report types); returns its `/events` URL and itself.
pub async fn start_ingress(
    bus: &Bus,
    max_body_bytes: usize,
    retry: lienthong_bus::RetryPolicy,
    timeout: std::time::Duration,
) -> (String, lienthong_adapters::ingress::Ingress) {
    use lienthong_adapters::ingress::{token_hash, Caller, Ingress, IngressConfig};
    let config = IngressConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes,
        callers: vec![Caller {
            name: "dotnet".into(),
            token_sha256: token_hash(INGRESS_TOKEN),
            sources: vec![INGRESS_SOURCE.into()],
            types: vec!["vn.egov.field_reports.*".into()],
        }],
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(bus.client("ingress").await);
    let publisher =
        Publisher::new(js, bus.registry.clone(), "urn:lienthong:ingress").with_retry(retry);
    let ingress = Ingress::new(config, publisher, &lienthong_bus::Metrics::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let app = ingress.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, ingress)
}

/// The replay service as its own role, on a random port with a temporary store; it stops
/// when the returned trigger is dropped.
pub async fn serve_replay(bus: &Bus) -> (std::net::SocketAddr, lienthong_bus::ShutdownTrigger) {
    serve_replay_with(bus, lienthong_replay::service::ServeOptions::default()).await
}

/// [`serve_replay`] with options (the catalogue's servers default to the test server).
pub async fn serve_replay_with(
    bus: &Bus,
    mut options: lienthong_replay::service::ServeOptions,
) -> (std::net::SocketAddr, lienthong_bus::ShutdownTrigger) {
    if options.nats_urls.is_empty() {
        options.nats_urls = vec![bus.server.url()];
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = lienthong_bus::Shutdown::new();
    tokio::spawn(lienthong_replay::service::serve(
        lienthong_bus::tls::http::Listener::plain(listener).unwrap(),
        Some(bus.js("replay").await),
        bus.registry.clone(),
        ReadStore::temporary().unwrap(),
        options,
        shutdown.signalled(),
    ));
    (addr, trigger)
}

/// GET `url` and read the body as JSON (panics on a transport error or bad JSON).
pub async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// GET `url` and read the body as text (panics on a transport error).
pub async fn get_text(http: &reqwest::Client, url: String) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}
