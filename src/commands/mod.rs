//! One file per command: its arguments and what it does.

pub mod adapter;
pub mod admission;
pub mod agency;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod catalog;
pub mod chaos;
pub mod datasets;
pub mod deliver;
pub mod deploy;
pub mod dlq;
pub mod ingress;
pub mod pki;
pub mod publish;
pub mod replay;
pub mod schema;
pub mod simulator;
pub mod site;
pub mod standby;
pub mod streams;
pub mod subsystem;
pub mod tail;
pub mod up;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use lienthong_bus::{ConnectSettings, Refusals, SchemaRegistry, StreamReader};

/// Options every command has.
#[derive(Debug, Clone)]
pub struct Global {
    pub env: Option<PathBuf>,
    pub schemas: Option<PathBuf>,
}

impl Global {
    pub fn registry(&self) -> anyhow::Result<Arc<SchemaRegistry>> {
        Ok(Arc::new(
            SchemaRegistry::load(self.schemas.as_deref()).context("loading schemas")?,
        ))
    }

    pub fn settings(&self) -> anyhow::Result<ConnectSettings> {
        Ok(ConnectSettings::resolve(self.env.as_deref())?)
    }

    pub async fn jetstream(
        &self,
        client_name: &str,
    ) -> anyhow::Result<async_nats::jetstream::Context> {
        Ok(self.session(client_name).await?.js)
    }

    /// Connected, with the connection's refusals watched.
    pub async fn session(&self, client_name: &str) -> anyhow::Result<Session> {
        let settings = self.settings()?;
        let (client, refusals) = settings.connect_watched(client_name).await?;
        Ok(Session {
            js: async_nats::jetstream::new(client.clone()),
            reader: StreamReader::new(client.clone(), refusals.clone()),
            client,
            refusals,
            settings,
        })
    }
}

/// A connection as one role: what commands work with.
pub struct Session {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// Reading streams without consumers (what every role may do with a read grant).
    pub reader: StreamReader,
    /// What the server refuses this connection, at once.
    pub refusals: Refusals,
    pub settings: ConnectSettings,
}

impl Session {
    /// A publisher on this connection whose refused publishes fail at once.
    pub fn publisher(
        &self,
        registry: Arc<SchemaRegistry>,
        source: impl Into<String>,
    ) -> lienthong_bus::Publisher {
        lienthong_bus::Publisher::new(self.js.clone(), registry, source)
            .with_refusals(self.refusals.clone())
    }

    /// Runs a request; if the server refuses it, fails at once naming the role and what it
    /// may not do.
    pub async fn guard<T, E>(
        &self,
        operation: impl std::future::Future<Output = Result<T, E>>,
    ) -> anyhow::Result<T>
    where
        E: Into<anyhow::Error>,
    {
        let refused = self.refusals.watch(|_| true);
        tokio::select! {
            biased;
            r = operation => r.map_err(Into::into),
            refusal = refused => Err(lienthong_bus::BusError::from(refusal).into()),
        }
    }
}
/// How a command's listeners are secured: this host's certificate (from `lienthong pki
/// issue` or the city's own PKI), or plaintext — which beyond loopback must be asked for.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// This host's certificate (PEM) for every listener of the command: NATS (clients,
    /// routes, sites' links) and HTTP (served as HTTPS). Rotated by replacing the file.
    #[arg(
        long,
        value_name = "FILE",
        env = "LIENTHONG_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "LIENTHONG_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// The deployment's CA (PEM): verifies the other nodes and the sites, and is written into
    /// every credentials file as NATS_CA.
    #[arg(long, value_name = "FILE", env = "LIENTHONG_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Listen beyond loopback without TLS (only on a network you trust with every password
    /// and event; refused otherwise).
    #[arg(long)]
    pub insecure_plaintext: bool,
}

impl TlsArgs {
    pub fn transport(&self) -> anyhow::Result<lienthong_bus::tls::Transport> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let files = lienthong_bus::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: self.tls_ca.clone(),
                }
                .absolute()?;
                files.check()?;
                Some(files)
            }
            _ => None,
        };
        if tls.is_some() && self.insecure_plaintext {
            anyhow::bail!("--insecure-plaintext and --tls-cert contradict each other: choose one");
        }
        Ok(lienthong_bus::tls::Transport {
            tls,
            insecure_plaintext: self.insecure_plaintext,
        })
    }
}

/// How the shared datasets are published (`up`, `replay serve`, `datasets …`).
#[derive(Debug, Clone, clap::Args)]
pub struct PublicationArgs {
    /// Counts from 1 to this − 1 are withheld from the datasets (and figures computed from
    /// them), so no person can be singled out.
    #[arg(long, default_value_t = lienthong_replay::datasets::DEFAULT_MIN_CELL)]
    pub min_cell_size: u64,
    /// The datasets' licence (URL).
    #[arg(long, default_value = "https://creativecommons.org/licenses/by/4.0/")]
    pub licence: String,
    /// The licence's name.
    #[arg(
        long,
        default_value = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
    )]
    pub licence_title: String,
    /// The publisher's name in Vietnamese.
    #[arg(long, default_value = "Ủy ban nhân dân thành phố Phan Thiết")]
    pub publisher_vi: String,
    /// The publisher's name in English.
    #[arg(long, default_value = "People's Committee of Phan Thiết City")]
    pub publisher_en: String,
    /// Whom to ask about the datasets.
    #[arg(
        long,
        default_value = "Trung tâm điều hành thông minh (IOC) Phan Thiết"
    )]
    pub contact_name: String,
    /// Their e-mail address (an office's, never a person's).
    #[arg(long, default_value = "ioc@phanthiet.binhthuan.gov.vn")]
    pub contact_email: String,
}

impl PublicationArgs {
    pub fn publication(&self) -> lienthong_replay::datasets::dcat::Publication {
        lienthong_replay::datasets::dcat::Publication {
            min_cell: self.min_cell_size.max(1),
            licence: self.licence.clone(),
            licence_title: self.licence_title.clone(),
            publisher_vi: self.publisher_vi.clone(),
            publisher_en: self.publisher_en.clone(),
            contact_name: self.contact_name.clone(),
            contact_email: self.contact_email.clone(),
        }
    }
}

/// Serves `metrics` at `http://<addr>/metrics` while the returned server is kept.
pub async fn serve_metrics(
    name: &str,
    addr: Option<std::net::SocketAddr>,
    metrics: &lienthong_bus::Metrics,
    transport: &lienthong_bus::tls::Transport,
) -> anyhow::Result<Option<lienthong_adapters::push::PushServer>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let m = metrics.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = m.clone();
            async move { lienthong_adapters::push::metrics_response(m.render()) }
        }),
    );
    Ok(Some(
        lienthong_adapters::push::PushServer::start(name, addr, app, "GET /metrics", transport)
            .await?,
    ))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The line `replay rebuild` ends with, read back by `lienthong bench`.
pub const PEAK_MEMORY_LINE: &str = "peak resident memory (MB):";
/// The line `replay rebuild` ends with: how long the rebuild itself took (the benchmark's
/// growth measurement reads it, without the process's start).
pub const REBUILD_SECONDS_LINE: &str = "rebuild time (s):";

/// This process's peak resident memory in MB, from the kernel's high-water mark of its
/// address space (`VmHWM`). Not `getrusage`: for a spawned child that also counts the
/// parent's memory it was forked from (before `exec`).
pub fn peak_resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
