//! The whole bus on one machine, in one process: nats-server, provisioning, the adapters (and
//! in demo mode the simulators feeding them), the HTTP ingress, and the replay service with
//! its dashboard and audit checkpoints. `lienthong up` is [`Stack::start`] then
//! [`Stack::run_until`] Ctrl-C; tests start it in-process the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lienthong_adapters::demo::{DemoPart, DemoSettings};
use lienthong_adapters::ingress::{token_hash, Caller, Ingress, IngressConfig};
use lienthong_adapters::{AdapterConfig, AdapterContext};
use lienthong_bus::credentials::write_private;
use lienthong_bus::server::{LeafNodes, NatsServer, ServerOptions};
use lienthong_bus::tls::http::Listener as HttpListener;
use lienthong_bus::{CredentialSet, Publisher, SchemaRegistry, Shutdown};
use lienthong_replay::service::ServeOptions;
use lienthong_replay::ReadStore;
use tracing::{error, info, warn};

use crate::error::StackError;
use crate::supervise::Supervised;

/// The demo caller of the ingress.
pub const DEMO_SOURCE: &str = "urn:lienthong:phanthiet:demo-caller";
pub const DEMO_TYPES: &str = "vn.egov.field_reports.*";

/// What to run, and where.
#[derive(Clone)]
pub struct StackOptions {
    /// Server store, read models, credentials and demo marks.
    pub data: PathBuf,
    pub nats_host: String,
    /// 0: a free port.
    pub nats_port: u16,
    /// The read models' HTTP address (port 0: a free port).
    pub http: SocketAddr,
    /// The ingress's address (with `demo` or `ingress_config`).
    pub ingress: SocketAddr,
    pub ingress_config: Option<IngressConfig>,
    /// Feed the adapters from the subsystem simulators, at this scale.
    pub demo: Option<f64>,
    /// Adapters to run besides the demo's.
    pub adapters: Vec<AdapterConfig>,
    /// Every acknowledged event on disk before its acknowledgement.
    pub durable: bool,
    /// Each node's JetStream store limit (`max_file_store`); `None`: 64GB.
    pub max_store: Option<String>,
    pub schemas: Arc<SchemaRegistry>,
    /// How the shared datasets are published (licence, smallest count shown).
    pub publication: lienthong_replay::datasets::dcat::Publication,
    /// A cluster of this many nats-server nodes on this machine (routes between them, every
    /// stream at as many replicas); `None`: one server.
    pub cluster: Option<usize>,
    /// How often the replay service verifies the audited streams (integrity panel).
    pub verify_every: std::time::Duration,
    /// Listen for ward and agency sites (leaf nodes) here (a cluster: here and the next
    /// ports); the JetStream domain is then `hub`. `None`: no sites.
    pub leaf_port: Option<u16>,
    /// TLS on every listener (NATS clients, routes, sites' links; HTTPS for the read models
    /// and the ingress), or plaintext — refused beyond loopback unless asked for.
    pub transport: lienthong_bus::tls::Transport,
}

/// The name of the cluster `up --cluster` runs (its nodes are `n1`…).
pub const CLUSTER_NAME: &str = "lienthong";

/// A running stack.
pub struct Stack {
    /// The nats-server nodes and every task on them, watched together.
    supervised: Supervised,
    /// Where the read models, KPIs and dashboard answer.
    pub http: SocketAddr,
    pub nats_url: String,
    /// The ingress's address, when it runs.
    pub ingress: Option<SocketAddr>,
    pub credentials_dir: PathBuf,
    /// What runs where, for the banner.
    pub lines: Vec<String>,
}

/// Listens on `addr` (port 0: a free one) as `transport` says (HTTPS, or plaintext where
/// allowed); an address in use is named with `hint`.
/// Opens the read models' store again (off the async workers: it reads the whole store to
/// check its seals), trying again with a growing wait while it fails (the disk filled again,
/// a rebuild still holding it); `None` once `stopping` is signalled.
async fn reopen_store(dir: &std::path::Path, stopping: &Shutdown) -> Option<ReadStore> {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let d = dir.to_path_buf();
        match tokio::task::spawn_blocking(move || ReadStore::open_checked(&d)).await {
            Ok(Ok(store)) => return Some(store),
            Ok(Err(e)) => warn!(
                "opening the read models' store again failed ({e}); trying again in {} s",
                wait.as_secs()
            ),
            Err(e) => warn!("opening the read models' store again failed ({e})"),
        }
        tokio::select! {
            _ = stopping.signalled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(30));
    }
}

pub(crate) async fn bind(
    what: &str,
    addr: SocketAddr,
    hint: &str,
    transport: &lienthong_bus::tls::Transport,
) -> Result<(HttpListener, SocketAddr), StackError> {
    // Refused before binding: a plaintext listener beyond loopback never opens.
    transport.check_listener(what, &addr.ip().to_string(), addr.port())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|_| port_in_use(what, addr, hint))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StackError::io(format!("{what} listener"), e))?;
    Ok((HttpListener::new(what, listener, transport)?, bound))
}

/// The HTTP CloudEvents ingress on `listener`, publishing as the `ingress` role of `creds`
/// at `url` (refusals answered at once), until `shutdown`.
pub(crate) async fn ingress_task(
    mut cfg: IngressConfig,
    listener: HttpListener,
    creds: &CredentialSet,
    url: &str,
    schemas: Arc<SchemaRegistry>,
    metrics: &lienthong_bus::Metrics,
    shutdown: &Shutdown,
) -> Result<crate::supervise::Task, StackError> {
    cfg.listen = axum::serve::Listener::local_addr(&listener)
        .map_err(|e| StackError::io("the ingress listener", e))?;
    let (js, refusals) = connect_watched(creds, url, "ingress").await?;
    let js = lienthong_adapters::ingress::jetstream(js.client());
    let publisher = Publisher::new(js, schemas, "urn:lienthong:ingress").with_refusals(refusals);
    let ingress = Ingress::new(cfg, publisher, metrics)?;
    let stop = shutdown.signalled();
    Ok(tokio::spawn(async move {
        Ok(ingress.serve_on(listener, stop).await?)
    }))
}

fn port_in_use(what: &str, addr: impl std::fmt::Display, hint: &str) -> StackError {
    StackError::AddressInUse {
        what: what.to_string(),
        addr: addr.to_string(),
        hint: hint.to_string(),
    }
}

async fn connect_role(
    creds: &CredentialSet,
    url: &str,
    role: &str,
) -> Result<async_nats::jetstream::Context, StackError> {
    Ok(connect_watched(creds, url, role).await?.0)
}

/// Connects, trying again for a few seconds while the server is not there yet or reloads
/// its configuration (the agents apply the registry as the stack starts: a restored bus
/// brings its agencies, and the reload may close a connection being opened).
async fn connect_retrying(
    settings: &lienthong_bus::ConnectSettings,
    name: &str,
) -> Result<(async_nats::Client, lienthong_bus::Refusals), StackError> {
    let mut attempt = 1;
    loop {
        match settings.connect_watched(name).await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_transient() && attempt < 10 => {
                tracing::debug!(error = %e, attempt, "connecting again in 0.5 s");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connected as `role`, with its refusals watched.
async fn connect_watched(
    creds: &CredentialSet,
    url: &str,
    role: &str,
) -> Result<(async_nats::jetstream::Context, lienthong_bus::Refusals), StackError> {
    let (client, refusals) =
        connect_retrying(&creds.settings(role, url)?, &format!("lienthong-up-{role}")).await?;
    Ok((async_nats::jetstream::new(client), refusals))
}

impl Stack {
    /// Starts everything; returns once every component is running.
    pub async fn start(opts: StackOptions) -> Result<Self, StackError> {
        let creds_dir = opts.data.join("credentials");
        let nodes = opts.cluster.unwrap_or(1).max(1);
        // Client ports: the one asked for and the next ones, or free ones.
        let mut ports = Vec::with_capacity(nodes);
        for i in 0..nodes {
            ports.push(match opts.nats_port {
                0 => free_port(&opts.nats_host)?,
                p => p + i as u16,
            });
        }
        let scheme = if opts.transport.tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("{scheme}://{}:{p}", opts.nats_host))
            .collect();
        // Every client connects with all the seed URLs.
        let url = urls.join(",");
        let data_dirs: Vec<PathBuf> = (0..nodes)
            .map(|i| crate::nodes::store_dir(&opts.data, nodes, i))
            .collect();
        // A previous run's servers, still ending after it was killed, are waited for: their
        // ports are theirs only for a moment. A port held by anything else is refused.
        for dir in &data_dirs {
            lienthong_bus::server::await_previous(dir).await?;
        }
        for port in &ports {
            if std::net::TcpListener::bind((opts.nats_host.as_str(), *port)).is_err() {
                return Err(port_in_use(
                    "NATS",
                    format!("{}:{port}", opts.nats_host),
                    "another nats-server (or `lienthong up`) is running; stop it, or pass --nats-port",
                ));
            }
        }
        // Only now: the credentials files name this run's server.
        let ca = opts.transport.tls.as_ref().and_then(|t| t.ca.as_deref());
        let creds = CredentialSet::load_or_generate_with(&creds_dir, &url, ca)?;
        let route_ports = if nodes > 1 {
            (0..nodes)
                .map(|_| free_port(&opts.nats_host))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        // The routes' shared secret (kept with the credentials).
        let route_secret =
            lienthong_bus::credentials::secret_file(&creds_dir.join("route.secret"))?;
        let mut servers = Vec::with_capacity(nodes);
        for (i, port) in ports.iter().enumerate() {
            let node = (nodes > 1).then(|| lienthong_bus::server::ClusterNode {
                secret: route_secret.clone(),
                name: format!("n{}", i + 1),
                cluster: CLUSTER_NAME.into(),
                route_port: route_ports[i],
                routes: route_ports
                    .iter()
                    .map(|r| format!("{}:{r}", opts.nats_host))
                    .collect(),
            });
            let data_dir = data_dirs[i].clone();
            servers.push(
                NatsServer::start(
                    ServerOptions {
                        bin: None,
                        data_dir,
                        host: opts.nats_host.clone(),
                        port: Some(*port),
                        sync_always: opts.durable,
                        node,
                        // A hub: sites connect to every node, each on its own port.
                        domain: opts
                            .leaf_port
                            .map(|_| lienthong_bus::sites::HUB_DOMAIN.to_string()),
                        leaf: opts
                            .leaf_port
                            .map(|p| LeafNodes::Listen { port: p + i as u16 }),
                        transport: opts.transport.clone(),
                        max_file_store: opts.max_store.clone(),
                    },
                    &creds,
                )
                .await?,
            );
        }
        let operator = connect_role(&creds, &url, "operator").await?;
        for p in provision_when_ready(&operator, nodes).await? {
            info!("{p}");
        }
        // Subsystems registered on this bus in an earlier run: known before anything derives
        // from the registry (their streams checked like the others').
        let registry_reader = lienthong_bus::StreamReader::new(
            operator.client().clone(),
            lienthong_bus::Refusals::none(),
        );
        if lienthong_bus::registry::live::load(&registry_reader).await? > 0 {
            for p in provision_when_ready(&operator, nodes).await? {
                info!("{p}");
            }
        }

        let (trigger, shutdown) = Shutdown::new();
        // Every component's counters, served with the read models' at /metrics.
        let metrics = lienthong_bus::Metrics::new();
        let mut stack = Self {
            supervised: Supervised::new(servers, trigger, metrics.clone()),
            http: opts.http,
            nats_url: url.clone(),
            ingress: None,
            credentials_dir: creds_dir.clone(),
            lines: Vec::new(),
        };

        // The agency registry, applied to each server's accounts as it changes (one agent per
        // node: each reloads its own server).
        for (i, server) in stack.supervised.servers.iter().enumerate() {
            let agent = lienthong_bus::agencies::agent::Agent::new(
                &server.data_dir().join(lienthong_bus::server::ACCOUNTS_CONF),
                connect_retrying(
                    &creds.settings("operator", &url)?,
                    "lienthong-up-agency-agent",
                )
                .await?
                .0,
                connect_retrying(
                    &creds.settings("system", &urls[i])?,
                    "lienthong-up-agency-agent-system",
                )
                .await?
                .0,
            )?;
            let stop = shutdown.signalled();
            stack.supervised.tasks.push((
                format!("agency agent (node {})", i + 1),
                tokio::spawn(async move {
                    agent.run(stop).await;
                    Ok(())
                }),
            ));
        }
        // Webhook subscriptions, delivered as the `deliver` role.
        let (client, refusals) =
            connect_retrying(&creds.settings("deliver", &url)?, "lienthong-up-deliver").await?;
        let deliverer = lienthong_deliver::Deliverer::new(
            client,
            refusals,
            opts.schemas.clone(),
            &creds_dir,
            lienthong_deliver::DeliverOptions {
                // Receivers with certificates from the deployment's own CA are trusted too.
                extra_roots: match creds.ca() {
                    Some(ca) => lienthong_deliver::roots_of(ca)?,
                    None => Vec::new(),
                },
                ..Default::default()
            },
            metrics.clone(),
        );
        let stop = shutdown.signalled();
        stack.supervised.tasks.push((
            "deliver".into(),
            tokio::spawn(async move {
                deliverer.run(stop).await;
                Ok(())
            }),
        ));
        // A hub admits what its ward sites send before it enters a central stream.
        if opts.leaf_port.is_some() {
            let (client, refusals) = connect_retrying(
                &creds.settings("admission", &url)?,
                "lienthong-up-admission",
            )
            .await?;
            let run = lienthong_bus::sites::admission::run(
                client,
                refusals,
                opts.schemas.clone(),
                metrics.clone(),
                shutdown.signalled(),
            );
            stack.supervised.tasks.push((
                "admission".into(),
                tokio::spawn(async move { Ok(run.await?) }),
            ));
        }
        if opts.demo.is_some() {
            seed_demo_agencies(&creds, &url, &creds_dir, &opts.schemas).await?;
            stack.lines.push(format!(
                "  Agencies           lienthong agency list --env {}/operator.env",
                creds_dir.display()
            ));
        }
        stack.lines.push(format!(
            "  Register a system  lienthong subsystem register subsystems/devices/devices.toml --env {}/operator.env",
            creds_dir.display()
        ));
        reconcile_agency_copies(&creds, &url, &creds_dir, &opts.schemas).await?;

        // What to run: the demo's parts and ingress caller, then the adapters given.
        let mut adapters = Vec::new();
        let mut feeds = Vec::new();
        let mut ingress = opts.ingress_config.clone();
        if let Some(scale) = opts.demo {
            let settings = DemoSettings::in_data_dir(&opts.data, scale);
            for part in lienthong_adapters::demo::start(&settings, &shutdown).await? {
                let DemoPart {
                    config,
                    tasks,
                    feed,
                    lines,
                    ..
                } = part;
                adapters.push(config);
                for (name, t) in tasks {
                    stack.supervised.tasks.push((
                        name,
                        tokio::spawn(async move { Ok(t.await.map_err(StackError::from)??) }),
                    ));
                }
                feeds.extend(feed);
                stack.lines.extend(lines);
            }
            let (caller, env) = demo_caller(
                &creds_dir,
                &format!("{}://{}", opts.transport.http_scheme(), opts.ingress),
            )?;
            stack
                .lines
                .push(format!("  Ingress demo       {}", env.display()));
            let cfg = ingress.get_or_insert_with(|| IngressConfig {
                listen: opts.ingress,
                max_body_bytes: 1024 * 1024,
                callers: Vec::new(),
            });
            cfg.callers.push(caller);
        }
        adapters.extend(opts.adapters.iter().cloned());

        for cfg in adapters {
            let (js, refusals) =
                connect_watched(&creds, &url, &format!("adapter-{}", cfg.subsystem())).await?;
            let ctx = AdapterContext {
                js,
                registry: opts.schemas.clone(),
                metrics: metrics.clone(),
                refusals,
                transport: opts.transport.clone(),
            };
            let stop = shutdown.signalled();
            stack.supervised.tasks.push((
                format!("adapter {}", cfg.subsystem()),
                tokio::spawn(async move { Ok(cfg.run(ctx, stop).await?) }),
            ));
        }
        let mut fed = Vec::new();
        for feed in feeds {
            fed.push(tokio::spawn(async move {
                if let Err(e) = feed.await {
                    error!("feeding the demo: {e}");
                }
            }));
        }
        if let Some(cfg) = ingress {
            let (listener, addr) = bind(
                "the ingress",
                opts.ingress,
                "pass --ingress with a free address",
                &opts.transport,
            )
            .await?;
            let task = ingress_task(
                cfg,
                listener,
                &creds,
                &url,
                opts.schemas.clone(),
                &metrics,
                &shutdown,
            )
            .await?;
            stack.supervised.tasks.push(("ingress".into(), task));
            stack.ingress = Some(addr);
            stack.lines.push(format!(
                "  CloudEvents ingress {}://{addr}/events",
                opts.transport.http_scheme()
            ));
        }

        // The audit key: checkpoints are signed with it; its public half is for auditors.
        let audit_key = lienthong_audit::checkpoint::load_or_generate_signing_key(
            &creds_dir.join("audit-signing.key"),
        )?;
        let public_key_file = opts.data.join("audit-public.key");
        std::fs::write(
            &public_key_file,
            hex::encode(audit_key.verifying_key().to_bytes()),
        )
        .map_err(|e| StackError::io(public_key_file.display().to_string(), e))?;
        let admin_token =
            lienthong_bus::credentials::secret_file(&creds_dir.join("replay-admin.token"))?;
        let options = ServeOptions {
            audit_key: Some(audit_key),
            admin_token: Some(admin_token),
            nats_urls: vec![url.clone()],
            metrics: Some(metrics.clone()),
            health: Some(stack.supervised.health.clone()),
            publication: opts.publication.clone(),
            verify_every: opts.verify_every,
            certificates: opts
                .transport
                .tls
                .as_ref()
                .map(|t| t.certificates())
                .unwrap_or_default(),
            ..Default::default()
        };

        // Replay service and dashboard.
        let store = ReadStore::open_checked(&opts.data.join("replay"))?;
        let (listener, http) = bind(
            "HTTP",
            opts.http,
            "pass --http with a free address",
            &opts.transport,
        )
        .await?;
        stack.http = http;
        let js = connect_role(&creds, &url, "replay").await?;
        let schemas = opts.schemas.clone();
        let (store_dir, http, transport, health) = (
            opts.data.join("replay"),
            stack.http,
            opts.transport.clone(),
            stack.supervised.health.clone(),
        );
        let stopping = shutdown.clone();
        stack.supervised.tasks.push((
            "replay".into(),
            tokio::spawn(async move {
                let (mut listener, mut store) = (listener, store);
                let mut reopened: Option<std::time::Instant> = None;
                loop {
                    match lienthong_replay::service::serve(
                        listener,
                        Some(js.clone()),
                        schemas.clone(),
                        store,
                        options.clone(),
                        stopping.signalled(),
                    )
                    .await
                    {
                        // Its disk was full and has room again: the store is opened again
                        // (every handle on it is gone) and the service serves on it.
                        Err(lienthong_replay::ReplayError::ReopenStore) => {
                            // Filled again within a minute (a quota, files run out): wait
                            // before trying, rather than reopening every few seconds.
                            if reopened.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60)) {
                                warn!("the read models' disk filled again within a minute of reopening; waiting 30 s");
                                tokio::select! {
                                    _ = stopping.signalled() => return Ok(()),
                                    _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                                }
                            }
                            store = match reopen_store(&store_dir, &stopping).await {
                                Some(s) => s,
                                None => return Ok(()),
                            };
                            reopened = Some(std::time::Instant::now());
                            listener = bind(
                                "HTTP",
                                http,
                                "the address was free a moment ago",
                                &transport,
                            )
                            .await?
                            .0;
                            health.up(lienthong_replay::service::READ_MODELS);
                            info!("the read models' store is open again; folding resumes");
                        }
                        r => return Ok(r?),
                    }
                }
            }),
        ));
        if opts.demo.is_some() {
            let (client, refusals) = connect_retrying(
                &creds.settings("auditor", &url)?,
                "lienthong-up-demo-publication",
            )
            .await?;
            let reader = lienthong_bus::StreamReader::new(client, refusals);
            let (dir, http) = (creds_dir.clone(), stack.http);
            let stop = shutdown.signalled();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop => {}
                    r = publish_demo_datasets(fed, reader, dir, http) => match r {
                        Ok(report) => info!(
                            created = report.created.len(),
                            updated = report.updated.len(),
                            unchanged = report.unchanged.len(),
                            "published the datasets to the demo's CKAN portal"
                        ),
                        Err(e) => error!("publishing the demo's datasets: {e:#}"),
                    },
                }
            });
            stack.lines.push(format!(
                "  Datasets           http://{}/api/v1/datasets  (DCAT: /api/v1/datasets/catalog.jsonld; published to the CKAN simulator once the demo has settled)",
                stack.http
            ));
        }
        stack.lines.push(format!(
            "  Audit              lienthong audit verify --public-key {} --env {}/auditor.env",
            public_key_file.display(),
            creds_dir.display()
        ));
        stack.lines.push(format!(
            "  Live rebuild       POST http://{}/api/v1/admin/rebuild  (Bearer: {}/replay-admin.token)",
            stack.http,
            creds_dir.display()
        ));
        let stores: Vec<String> = stack
            .supervised
            .servers
            .iter()
            .map(|s| s.data_dir().display().to_string())
            .collect();
        stack.lines.push(format!(
            "  NATS               {url}  (store {}{})",
            stores.join(", "),
            if stack.supervised.servers.len() > 1 {
                format!(
                    "; a cluster of {}, every stream at {} replicas",
                    stack.supervised.servers.len(),
                    stack.supervised.servers.len()
                )
            } else {
                String::new()
            }
        ));
        if let Some(p) = opts.leaf_port {
            let ports: Vec<String> = (0..stack.supervised.servers.len())
                .map(|i| format!("nats-leaf://{}:{}", opts.nats_host, p + i as u16))
                .collect();
            stack.lines.push(format!(
                "  Sites (leaf nodes) {}  (JetStream domain hub; lienthong site add NAME --domain D --env {}/operator.env)",
                ports.join(","),
                creds_dir.display()
            ));
        }
        Ok(stack)
    }

    /// Runs until `shutdown` completes or a component stops; then stops everything
    /// ([`Supervised::run_until`]).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), StackError> {
        self.supervised.run_until(shutdown).await
    }

    /// Stops every component (10 s each at most), then the servers.
    pub async fn stop(self) -> Result<(), StackError> {
        self.supervised.stop().await
    }
}

/// Provisions the streams and buckets (at `replicas` copies) once JetStream answers: a
/// cluster's JetStream needs its nodes to elect a meta leader first.
async fn provision_when_ready(
    js: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<Vec<lienthong_bus::Provisioned>, StackError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match lienthong_bus::topology::provision_replicated(js, replicas).await {
            Ok(done) => return Ok(done),
            Err(e @ lienthong_bus::BusError::Topology { .. }) => return Err(e.into()),
            Err(e) if std::time::Instant::now() < deadline => {
                info!(error = %e, "JetStream not ready yet; provisioning again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The demo's agencies: urban management reads field reports and open data; the operations
/// centre reads every stream agencies may be granted. Added once (they are data: a later run
/// finds them in the registry).
pub const DEMO_AGENCIES: &[(&str, &[&str])] =
    &[("urban", &["FIELD_REPORTS", "OPEN_DATA"]), ("ioc", &[])];

/// The agencies' administration as the operator, recorded as done `by`.
async fn agency_admin(
    creds: &CredentialSet,
    url: &str,
    dir: &Path,
    schemas: &Arc<SchemaRegistry>,
    by: &str,
) -> Result<lienthong_bus::agencies::admin::AgencyAdmin, StackError> {
    let (client, refusals) =
        connect_retrying(&creds.settings("operator", url)?, "lienthong-up-agencies").await?;
    Ok(lienthong_bus::agencies::admin::AgencyAdmin::new(
        client,
        refusals,
        schemas.clone(),
        dir,
        url,
        by,
    )
    .with_ca(creds.ca().map(Path::to_path_buf)))
}

/// Every agency's copies as its grants say (a restored bus has none yet); an agency whose
/// copies cannot be checked is logged, and does not stop the bus.
async fn reconcile_agency_copies(
    creds: &CredentialSet,
    url: &str,
    dir: &Path,
    schemas: &Arc<SchemaRegistry>,
) -> Result<(), StackError> {
    let admin = agency_admin(creds, url, dir, schemas, "lienthong up").await?;
    for (agency, why) in admin.reconcile_copies().await? {
        tracing::warn!(agency, "the agency's copies were not checked: {why}");
    }
    Ok(())
}

async fn seed_demo_agencies(
    creds: &CredentialSet,
    url: &str,
    dir: &Path,
    schemas: &Arc<SchemaRegistry>,
) -> Result<(), StackError> {
    let admin = agency_admin(creds, url, dir, schemas, "lienthong up --demo").await?;
    let registry = admin.registry().await?;
    for (name, streams) in DEMO_AGENCIES {
        let streams: Vec<String> = if streams.is_empty() {
            lienthong_bus::registry::grantable_streams()
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            streams.iter().map(|s| s.to_string()).collect()
        };
        let grants = lienthong_bus::agencies::grants(&streams, &[])?;
        match registry.agencies.get(*name) {
            None => {
                admin.add(name, grants, Some("demo agency".into())).await?;
            }
            // Known from a previous run: its file still names this run's server.
            Some(_) if admin.credentials(name).agency.exists() => {
                lienthong_bus::credentials::rewrite_url(&admin.credentials(name).agency, url)?;
                lienthong_bus::credentials::rewrite_url(&admin.credentials(name).admin, url)?;
            }
            Some(_) => {
                admin.rotate(name).await?;
            }
        }
    }
    Ok(())
}

/// Once the demo's feeds are done and the streams have been quiet for a while (every adapter
/// has polled since) and folded, publishes the datasets to the demo's CKAN portal — once.
async fn publish_demo_datasets(
    fed: Vec<tokio::task::JoinHandle<()>>,
    reader: lienthong_bus::StreamReader,
    credentials: PathBuf,
    http: SocketAddr,
) -> anyhow::Result<crate::datasets::ckan::Report> {
    for f in fed {
        let _ = f.await;
    }
    let streams: Vec<&str> = lienthong_bus::registry::SUBSYSTEMS
        .iter()
        .map(|s| s.stream)
        .collect();
    let heads = || async {
        let mut out = Vec::new();
        for s in &streams {
            out.push(reader.last_sequence(s).await.unwrap_or(0));
        }
        out
    };
    // Quiet for 12 s: longer than any demo adapter's poll interval (10 s).
    let mut last = heads().await;
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < std::time::Duration::from_secs(12) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = heads().await;
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        }
    }
    // Folded: the read models' checkpoints reached the heads.
    let health = format!("http://{http}/healthz");
    let client = reqwest::Client::new();
    for _ in 0..60 {
        let h: serde_json::Value = client.get(&health).send().await?.json().await?;
        let folded: u64 = h["projections"]
            .as_object()
            .map(|o| {
                o.values()
                    .filter_map(|v| v["stream_sequence"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        if folded >= last.iter().sum::<u64>() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let env = lienthong_bus::credentials::read_env_file(&credentials.join("ckan-demo.env"))?;
    let token = std::fs::read_to_string(&env["CKAN_API_TOKEN_FILE"])?;
    crate::datasets::ckan::publish(&crate::datasets::ckan::Target {
        ckan: env["CKAN_URL"].parse()?,
        token: token.trim().to_string(),
        organization: "ubnd-tp-phan-thiet".into(),
        from: format!("http://{http}/").parse()?,
    })
    .await
}

pub(crate) fn free_port(host: &str) -> Result<u16, StackError> {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StackError::io(format!("finding a free port on {host}"), e))
}

/// The ingress's demo caller, and `data/credentials/ingress-demo.env` for it.
fn demo_caller(creds: &Path, base: &str) -> Result<(Caller, PathBuf), StackError> {
    let token = lienthong_bus::credentials::secret_file(&creds.join("ingress-demo.token"))?;
    let path = creds.join("ingress-demo.env");
    write_private(
        &path,
        &format!(
            "# The demo caller of the HTTP CloudEvents ingress. Generated; keep private.\n\
             LIENTHONG_INGRESS_URL={base}/events\nLIENTHONG_INGRESS_TOKEN={token}\n\
             LIENTHONG_INGRESS_SOURCE={DEMO_SOURCE}\nLIENTHONG_INGRESS_TYPES={DEMO_TYPES}\n"
        ),
    )?;
    Ok((
        Caller {
            name: "demo".into(),
            token_sha256: token_hash(&token),
            sources: vec![DEMO_SOURCE.into()],
            types: vec![DEMO_TYPES.into()],
        },
        path,
    ))
}
