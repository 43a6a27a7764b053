//! One file per command: its arguments and what it does.

pub mod adapter;
pub mod audit;
pub mod bench;
pub mod demo;
pub mod dlq;
pub mod ingress;
pub mod publish;
pub mod replay;
pub mod schema;
pub mod simulator;
pub mod streams;
pub mod tail;
pub mod up;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use lienthong_bus::{ConnectSettings, SchemaRegistry};

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
        let client = self.settings()?.connect(client_name).await?;
        Ok(async_nats::jetstream::new(client))
    }
}

/// A secret in a file (mode 0600), generated on first use.
pub fn secret(path: &std::path::Path) -> anyhow::Result<String> {
    use rand::distr::{Alphanumeric, SampleString};
    if let Ok(s) = std::fs::read_to_string(path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let s = Alphanumeric.sample_string(&mut rand::rng(), 40);
    lienthong_bus::credentials::write_private(path, &s)?;
    Ok(s)
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
