//! The deliverer: one worker per webhook subscription in the agency registry, started and
//! stopped as the registry changes (`lienthong deliver`; `lienthong up` runs one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lienthong_bus::agencies::AgencyRegistry;
use lienthong_bus::{Metrics, Publisher, SchemaRegistry, Shutdown, ShutdownTrigger, StreamReader};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::store::EndpointStore;
use crate::worker::Worker;

/// How deliveries are retried and batched.
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    /// The first wait after a failure; doubled after each failure in a row.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Failures in a row after which the subscription is marked failing.
    pub failing_after: u64,
    /// How long one POST may take.
    pub request_timeout: Duration,
    /// Events fetched at a time.
    pub batch: usize,
    /// Certificate authorities that receivers' certificates may come from besides the
    /// public ones (a city's own CA, `--webhook-ca`). Receivers' certificates are always
    /// verified.
    pub extra_roots: Vec<reqwest::Certificate>,
}

/// The certificates of the CA in `ca` (PEM), as roots an HTTPS client may trust besides the
/// public ones (a city's own CA): for [`DeliverOptions::extra_roots`], and any client of the
/// deployment's HTTPS services.
pub fn roots_of(
    ca: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, lienthong_bus::BusError> {
    lienthong_bus::tls::load_certs(ca)?
        .into_iter()
        .map(|der| {
            reqwest::Certificate::from_der(&der).map_err(|e| lienthong_bus::BusError::Tls {
                what: ca.display().to_string(),
                reason: format!("not a usable CA certificate: {e}"),
            })
        })
        .collect()
}

impl Default for DeliverOptions {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            failing_after: 5,
            request_timeout: Duration::from_secs(10),
            batch: 100,
            extra_roots: Vec::new(),
        }
    }
}

/// Delivers every subscription of the registry.
pub struct Deliverer {
    reader: StreamReader,
    reporter: Publisher,
    credentials_dir: PathBuf,
    options: DeliverOptions,
    metrics: Metrics,
    http: reqwest::Client,
}

/// The source of the events the deliverer records.
pub const SOURCE: &str = "urn:lienthong:deliver";

impl Deliverer {
    /// Connected as the `deliver` role (reads `AGENCIES`, records subscriptions' state);
    /// agencies' administrators' credentials and subscriptions' endpoints are read from
    /// `credentials_dir` (`agencies/<name>.admin.env`, `webhooks/<id>.json`).
    pub fn new(
        client: async_nats::Client,
        refusals: lienthong_bus::Refusals,
        schemas: Arc<SchemaRegistry>,
        credentials_dir: &Path,
        options: DeliverOptions,
        metrics: Metrics,
    ) -> Self {
        let http = options
            .extra_roots
            .iter()
            .fold(reqwest::Client::builder(), |b, root| {
                b.add_root_certificate(root.clone())
            })
            .user_agent(concat!("lienthong-deliver/", env!("CARGO_PKG_VERSION")))
            // A receiver that redirects is not followed: a redirect could lead the events to
            // a plain http:// address.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            reader: StreamReader::new(client.clone(), refusals.clone()),
            reporter: Publisher::new(async_nats::jetstream::new(client), schemas, SOURCE)
                .with_refusals(refusals),
            credentials_dir: credentials_dir.to_path_buf(),
            options,
            metrics,
        }
    }

    fn worker(&self, sub: lienthong_bus::agencies::Subscription) -> Worker {
        Worker {
            admin_env: self
                .credentials_dir
                .join("agencies")
                .join(format!("{}.admin.env", sub.agency)),
            sub,
            endpoints: EndpointStore::new(&self.credentials_dir),
            reporter: self.reporter.clone(),
            http: self.http.clone(),
            options: self.options.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Runs until `stop`: follows the registry, one worker per subscription.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut workers: HashMap<String, (JoinHandle<()>, ShutdownTrigger)> = HashMap::new();
        loop {
            match AgencyRegistry::load(&self.reader, None).await {
                Ok(registry) => {
                    workers.retain(|id, (task, _)| {
                        let keep = registry.subscriptions.contains_key(id) && !task.is_finished();
                        if !keep {
                            info!(subscription = %id, "delivery stopped");
                        }
                        keep
                    });
                    for (id, sub) in registry.subscriptions {
                        if workers.contains_key(&id) {
                            continue;
                        }
                        info!(subscription = %id, stream = %sub.stream, "delivering");
                        let (trigger, shutdown) = Shutdown::new();
                        let worker = self.worker(sub);
                        let task = tokio::spawn(worker.run(shutdown.signalled()));
                        workers.insert(id, (task, trigger));
                    }
                }
                Err(e) => warn!("reading the subscriptions: {e}"),
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for (_, (task, trigger)) in workers {
            trigger.fire();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
