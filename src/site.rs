//! A site: a ward's or an agency's own nats-server, a leaf node of the hub with a JetStream
//! domain of its own, and what the site runs on it (`lienthong site up`). See
//! [`lienthong_bus::sites`] for how the hub and the sites are wired.
//!
//! - **ward**: the site's own streams ([`lienthong_bus::sites::ward_stream_configs`]), the
//!   adapters' cursors, and the HTTP CloudEvents ingress, all local: the ward publishes while
//!   the link is down; the hub sources what it stored when the link is back.
//! - **agency**: read-only mirrors of the agency's copies of its granted streams, and a
//!   replay service on them: its read models answer while the link is down and catch up
//!   after.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use lienthong_adapters::ingress::{token_hash, Caller, IngressConfig};
use lienthong_bus::credentials::write_private;
use lienthong_bus::server::{LeafAuth, LeafNodes, NatsServer, ServerOptions};
use lienthong_bus::{sites, CredentialSet, SchemaRegistry, Shutdown};
use lienthong_replay::service::ServeOptions;
use lienthong_replay::ReadStore;
use tracing::{info, warn};

use crate::error::StackError;
use crate::stack::{bind, ingress_task};
use crate::supervise::Supervised;

/// What a site is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes its subsystems' events locally; the hub sources them.
    Ward,
    /// Mirrors an agency's granted streams and serves read models on them.
    Agency,
    /// An auditor's witness: mirrors the hub's `AUDIT` as it is written.
    Witness,
    /// A standby centre: mirrors every stream and bucket of the hub ([`crate::standby`]).
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ward => "ward",
            Self::Agency => "agency",
            Self::Witness => "witness",
            Self::Standby => "standby",
        }
    }
}

/// How to run a site.
#[derive(Clone)]
pub struct SiteOptions {
    /// The site's name: a ward site as registered with `site add`; an agency site's is the
    /// agency's.
    pub name: String,
    pub domain: String,
    pub role: Role,
    /// The hub's leaf-node addresses (`nats-leaf://host:7422`; a cluster: every node's).
    pub hub: Vec<String>,
    /// The site's user on the hub (`site-<name>`, or the agency's).
    pub user: String,
    /// How its link proves who it is: a password, or its certificate (mutual TLS).
    pub auth: LeafAuth,
    /// The site's own listeners (NATS, ingress, read models): TLS, or plaintext where
    /// allowed.
    pub transport: lienthong_bus::tls::Transport,
    /// The site's store, credentials and read models.
    pub data: PathBuf,
    pub nats_host: String,
    /// 0: a free port.
    pub nats_port: u16,
    /// Ward: the ingress's address.
    pub ingress: SocketAddr,
    /// Ward: the ingress's callers (`None`: one caller generated for the site).
    pub ingress_config: Option<IngressConfig>,
    /// Agency: the read models' address.
    pub http: SocketAddr,
    pub schemas: Arc<SchemaRegistry>,
    /// The site's JetStream store limit (`max_file_store`); `None`: 64GB.
    pub max_store: Option<String>,
}

/// A running site.
pub struct Site {
    /// The site's server and its tasks, watched as `up` watches its own.
    supervised: Supervised,
    /// The site's own NATS address.
    pub nats_url: String,
    pub credentials_dir: PathBuf,
    /// Ward: where the ingress answers.
    pub ingress: Option<SocketAddr>,
    /// Agency: where the read models answer.
    pub http: Option<SocketAddr>,
    /// Agency: the streams mirrored.
    pub mirrors: Vec<String>,
    /// What runs where, for the banner.
    pub lines: Vec<String>,
}

impl Site {
    /// Starts the site's server, linked to the hub, and what the site runs on it.
    pub async fn start(opts: SiteOptions) -> Result<Self, StackError> {
        sites::check_domain(&opts.domain)?;
        let creds_dir = opts.data.join("credentials");
        let port = match opts.nats_port {
            0 => crate::stack::free_port(&opts.nats_host)?,
            p => p,
        };
        let scheme = if opts.transport.tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        let url = format!("{scheme}://{}:{port}", opts.nats_host);
        // A running site on this folder is refused (and a dying one waited for) before its
        // credentials files are rewritten for this run.
        lienthong_bus::server::await_previous(&opts.data.join("nats")).await?;
        let ca = opts.transport.tls.as_ref().and_then(|t| t.ca.as_deref());
        let creds = CredentialSet::load_or_generate_with(&creds_dir, &url, ca)?;
        let server = NatsServer::start(
            ServerOptions {
                bin: None,
                data_dir: opts.data.join("nats"),
                host: opts.nats_host.clone(),
                port: Some(port),
                sync_always: false,
                node: None,
                domain: Some(opts.domain.clone()),
                leaf: Some(LeafNodes::Remote {
                    urls: opts.hub.clone(),
                    auth: opts.auth.clone(),
                    // Only a ward's streams are sourced by the hub; nobody else's API is
                    // the hub's business.
                    deny_imports: sites::site_denied_imports(&opts.domain, opts.role != Role::Ward),
                }),
                transport: opts.transport.clone(),
                max_file_store: opts.max_store.clone(),
            },
            &creds,
        )
        .await?;
        let (trigger, shutdown) = Shutdown::new();
        let mut site = Self {
            supervised: Supervised::new(vec![server], trigger, lienthong_bus::Metrics::new()),
            nats_url: url.clone(),
            credentials_dir: creds_dir.clone(),
            ingress: None,
            http: None,
            mirrors: Vec::new(),
            lines: Vec::new(),
        };
        let operator = creds.settings("operator", &url)?;
        match opts.role {
            Role::Ward => {
                let js = jetstream::new(operator.connect("lienthong-site-provision").await?);
                for p in sites::provision_ward(&js, &opts.domain).await? {
                    info!("{p}");
                }
                site.start_ingress(&opts, &creds, &shutdown).await?;
            }
            Role::Agency => {
                // Replies from the hub reach the site under the agency's own inbox only.
                let mut settings = operator;
                settings.inbox_prefix =
                    Some(format!("{}.site", lienthong_bus::roles::inbox(&opts.user)));
                let client = settings.connect("lienthong-site-mirrors").await?;
                let agency = opts
                    .user
                    .strip_prefix(lienthong_bus::agencies::PREFIX)
                    .unwrap_or(&opts.user)
                    .to_string();
                site.mirrors = mirror_granted(&client, &agency).await?;
                site.start_replay(&opts, &creds, &shutdown).await?;
            }
            Role::Witness => {
                let js = jetstream::new(operator.connect("lienthong-site-witness").await?);
                let audit = lienthong_bus::registry::AUDIT.name;
                if js.get_stream(audit).await.is_err() {
                    js.create_stream(sites::witness_mirror_config(&opts.name))
                        .await
                        .map_err(|e| {
                            lienthong_bus::BusError::nats("creating the witness's mirror", e)
                        })?;
                }
                site.mirrors = vec![audit.to_string()];
                site.lines.push(format!(
                    "  Witness            {audit} mirrored here; compare: lienthong audit verify --witness {}/auditor.env --public-key KEY --env CENTRAL_AUDITOR_ENV",
                    creds_dir.display()
                ));
            }
            Role::Standby => {
                let local = operator.connect("lienthong-standby").await?;
                let stop = shutdown.signalled();
                let (name, data) = (opts.name.clone(), opts.data.clone());
                site.supervised.tasks.push((
                    "standby mirrors".into(),
                    tokio::spawn(crate::standby::keep_mirroring(local, name, data, stop)),
                ));
                site.lines.push(format!(
                    "  Standby            every stream and bucket of the hub mirrored here (checked every {} s); after a disaster: lienthong standby promote --data {}",
                    crate::standby::RECONCILE_EVERY.as_secs(),
                    opts.data.display()
                ));
            }
        }
        let system = creds
            .settings("system", &url)?
            .connect("lienthong-site-link")
            .await?;
        let stop = shutdown.signalled();
        let hub = opts.hub.join(",");
        site.supervised.tasks.push((
            "link watch".into(),
            tokio::spawn(async move {
                watch_link(system, hub, stop).await;
                Ok(())
            }),
        ));
        site.lines.push(format!(
            "  NATS (this site)   {url}  (domain {}, leaf node of {}; store {})",
            opts.domain,
            opts.hub.join(","),
            opts.data.join("nats").display()
        ));
        site.lines.push(format!(
            "  Credentials        {}/<role>.env (this site's own roles)",
            creds_dir.display()
        ));
        Ok(site)
    }

    async fn start_ingress(
        &mut self,
        opts: &SiteOptions,
        creds: &CredentialSet,
        shutdown: &Shutdown,
    ) -> Result<(), StackError> {
        let (listener, addr) = bind(
            "the ingress",
            opts.ingress,
            "pass --ingress with a free address",
            &opts.transport,
        )
        .await?;
        let cfg = match &opts.ingress_config {
            Some(c) => c.clone(),
            None => {
                let (caller, env) = site_caller(
                    &self.credentials_dir,
                    &opts.name,
                    &format!("{}://{addr}", opts.transport.http_scheme()),
                )?;
                self.lines
                    .push(format!("  Ingress caller     {}", env.display()));
                IngressConfig {
                    listen: addr,
                    max_body_bytes: 1024 * 1024,
                    callers: vec![caller],
                }
            }
        };
        let task = ingress_task(
            cfg,
            listener,
            creds,
            &self.nats_url,
            opts.schemas.clone(),
            &lienthong_bus::Metrics::new(),
            shutdown,
        )
        .await?;
        self.supervised.tasks.push(("ingress".into(), task));
        self.ingress = Some(addr);
        self.lines
            .push(format!("  CloudEvents ingress http://{addr}/events"));
        self.lines.push(format!(
            "  Adapters           lienthong adapter run … --env {}/adapter-<subsystem>.env",
            self.credentials_dir.display()
        ));
        Ok(())
    }

    async fn start_replay(
        &mut self,
        opts: &SiteOptions,
        creds: &CredentialSet,
        shutdown: &Shutdown,
    ) -> Result<(), StackError> {
        let store = ReadStore::open_checked(&opts.data.join("replay"))?;
        let (listener, addr) = bind(
            "HTTP",
            opts.http,
            "pass --http with a free address",
            &opts.transport,
        )
        .await?;
        let js = jetstream::new(
            creds
                .settings("replay", &self.nats_url)?
                .connect("lienthong-site-replay")
                .await?,
        );
        let options = ServeOptions {
            nats_urls: vec![self.nats_url.clone()],
            only_streams: Some(self.mirrors.clone()),
            // `/healthz` says when the site's server is down.
            health: Some(self.supervised.health.clone()),
            // Its own listeners' certificate and its link's.
            certificates: opts
                .transport
                .tls
                .iter()
                .flat_map(|t| t.certificates())
                .chain(match &opts.auth {
                    LeafAuth::Certificate(files) => files.certificates(),
                    LeafAuth::Password { .. } => Vec::new(),
                })
                .collect(),
            ..Default::default()
        };
        let schemas = opts.schemas.clone();
        let stop = shutdown.signalled();
        self.supervised.tasks.push((
            "replay".into(),
            tokio::spawn(async move {
                Ok(lienthong_replay::service::serve(
                    listener,
                    Some(js),
                    schemas,
                    store,
                    options,
                    stop,
                )
                .await?)
            }),
        ));
        self.http = Some(addr);
        self.lines.push(format!(
            "  Read models        http://{addr}/api/v1/kpi  (mirrors: {})",
            self.mirrors.join(", ")
        ));
        Ok(())
    }

    /// Runs until `stop` completes or a component stops ([`Supervised::run_until`]: a
    /// server that dies is started again on its store; one that cannot come back, or a
    /// task that ends, is an error naming it).
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), StackError> {
        self.supervised.run_until(stop).await
    }
}

/// How many leaf links the site's server has now (its monitoring endpoint, `LEAFZ`).
async fn links(system: &async_nats::Client) -> Option<u64> {
    let id = system.server_info().server_id;
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        system.request(format!("$SYS.REQ.SERVER.{id}.LEAFZ"), "{}".into()),
    )
    .await
    .ok()?
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
    v["data"]["leafnodes"].as_u64()
}

/// Logs when the link to the hub comes up or goes down (the site works on meanwhile), and
/// warns when it has not come up 10 s after the start (a wrong address or credentials: the
/// hub refuses the link).
async fn watch_link(
    system: async_nats::Client,
    hub: String,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let start = std::time::Instant::now();
    let mut up: Option<bool> = None;
    let mut warned = false;
    let mut ever = false;
    loop {
        let now = links(&system).await.map(|n| n > 0);
        match (up, now) {
            (_, None) => {}
            (Some(was), Some(is)) if was == is => {}
            (_, Some(true)) => info!(hub, "linked to the hub"),
            (Some(true), Some(false)) => warn!(
                hub,
                "the link to the hub is down; the site goes on working and catches up when it is back"
            ),
            (_, Some(false)) => {}
        }
        if now.is_some() {
            up = now;
            ever |= now == Some(true);
        }
        if !warned && !ever && start.elapsed() > Duration::from_secs(10) {
            warn!(
                hub,
                "not linked to the hub after 10 s: check --hub (the hub's leaf-node address, `up --leaf-port`) and --env (the site's credentials; a ward's or witness's from `lienthong site add`, an agency's from `agency add`); the site works on locally meanwhile"
            );
            warned = true;
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The agency's copies on the hub, mirrored on the site: those already mirrored, and those
/// the hub lists (when the link is up). Waits for the hub when there is neither.
async fn mirror_granted(
    client: &async_nats::Client,
    agency: &str,
) -> Result<Vec<String>, StackError> {
    let local = jetstream::new(client.clone());
    let hub = jetstream::with_domain(client.clone(), sites::HUB_DOMAIN);
    let mut warned = false;
    loop {
        let mut mirrored: Vec<String> = local
            .stream_names()
            .try_collect()
            .await
            .map_err(|e| lienthong_bus::BusError::nats("listing the site's streams", e))?;
        let granted: Result<Vec<String>, _> = tokio::time::timeout(
            Duration::from_secs(5),
            hub.stream_names().try_collect::<Vec<String>>(),
        )
        .await
        .map_err(|_| "no answer in 5 s".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match granted {
            Ok(granted) => {
                for stream in granted {
                    if mirrored.contains(&stream) {
                        continue;
                    }
                    local
                        .create_stream(sites::mirror_config(agency, &stream))
                        .await
                        .map_err(|e| {
                            lienthong_bus::BusError::nats(
                                format!("creating the site's mirror of {stream}"),
                                e,
                            )
                        })?;
                    info!(stream, "mirroring the agency's copy of {stream}");
                    mirrored.push(stream);
                }
            }
            Err(e) if !mirrored.is_empty() => {
                warn!(
                    "the hub does not answer ({e}); serving the mirrors already here: {mirrored:?}"
                );
            }
            Err(e) => {
                if !warned {
                    warn!("waiting for the hub to list the agency's streams: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        }
        mirrored.sort();
        return Ok(mirrored);
    }
}

/// The ward site's own caller of its ingress: any `vn.egov.*` type from sources
/// `urn:lienthong:<site>:*`. Its token and settings are written beside the credentials.
fn site_caller(
    dir: &std::path::Path,
    name: &str,
    base: &str,
) -> Result<(Caller, PathBuf), StackError> {
    let token = lienthong_bus::credentials::secret_file(&dir.join("ingress-site.token"))?;
    let source = format!("urn:lienthong:{name}:*");
    let path = dir.join("ingress-site.env");
    write_private(
        &path,
        &format!(
            "# The ward site's caller of its HTTP CloudEvents ingress. Generated; keep private.\n\
             LIENTHONG_INGRESS_URL={base}/events\nLIENTHONG_INGRESS_TOKEN={token}\n\
             LIENTHONG_INGRESS_SOURCE={source}\nLIENTHONG_INGRESS_TYPES=vn.egov.*\n",
        ),
    )?;
    Ok((
        Caller {
            name: format!("site {name}"),
            token_sha256: token_hash(&token),
            sources: vec![source],
            types: vec!["vn.egov.*".into()],
        },
        path,
    ))
}
