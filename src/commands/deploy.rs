//! `lienthong deploy …`: a city's deployment from one inventory — bundles per host, the
//! registrations on the running hub, a check from outside.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lienthong::deploy::{self, Inventory};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one bundle per host of the inventory (TLS certificates from the city CA,
    /// nats-server configuration with its node block and links, the credentials that host
    /// needs, systemd units, `install` and `run`). Secrets stay in --state.
    Plan {
        /// The inventory (see examples/city.toml).
        inventory: PathBuf,
        /// Where the bundles go (one directory per host; replaced).
        #[arg(long, default_value = "bundles")]
        out: PathBuf,
        /// The deployment's secrets: the CA and its key, every role's credentials, ingress
        /// tokens, the audit signing key. Reused when planning again.
        #[arg(long, default_value = "deploy-state")]
        state: PathBuf,
    },
    /// On the hub (the components node's bundle runs it): provision every stream at the
    /// hub's replicas, register the sites by their certificates, add the agencies.
    Apply {
        inventory: PathBuf,
        /// The sites' link certificates (`<name>.crt`).
        #[arg(long, default_value = "sites")]
        sites: PathBuf,
        /// Where the agencies' credentials are written.
        #[arg(long, default_value = "data/credentials")]
        credentials_dir: PathBuf,
    },
    /// Check a running deployment from outside: TLS and certificates of every node and
    /// site, the cluster and the streams' replicas, every ward linked and sourcing, the
    /// HTTPS services' health. Exits 1 when anything is wrong.
    Check {
        inventory: PathBuf,
        /// The city's CA (default: NATS_CA of --env).
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Plan {
            inventory,
            out,
            state,
        } => {
            let inv = Inventory::load(&inventory)?;
            let text = std::fs::read_to_string(&inventory)?;
            let planned = deploy::plan::plan(&inv, &text, &state, &out)?;
            for b in &planned.bundles {
                println!("bundle   {}", b.display());
            }
            println!("CA       {}", planned.ca.display());
            println!(
                "operator {} (keep --state private: it holds the CA key and every password)",
                planned.operator_env.display()
            );
            println!("next: copy each bundle to its host and run its ./install (or ./run); then");
            println!(
                "      lienthong deploy check {} --env {}",
                inventory.display(),
                planned.operator_env.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            inventory,
            sites,
            credentials_dir,
        } => {
            let inv = Inventory::load(&inventory)?;
            let operator = global.settings()?;
            for line in deploy::apply::apply(
                &inv,
                &sites,
                &credentials_dir,
                &operator,
                global.registry()?,
            )
            .await?
            {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            inventory,
            ca,
            json,
        } => {
            let inv = Inventory::load(&inventory)?;
            let operator = global.settings()?;
            let ca = ca
                .or_else(|| operator.ca.clone())
                .context("--ca: the city's CA certificate (or NATS_CA in --env)")?;
            let checks = deploy::check::check_deployment(&inv, &operator, &ca).await;
            let failed = checks.iter().filter(|c| !c.ok).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                for c in &checks {
                    println!(
                        "{} {:<48} {}",
                        if c.ok { "ok  " } else { "FAIL" },
                        c.what,
                        c.detail
                    );
                }
                println!("{} checks, {failed} failed", checks.len());
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
