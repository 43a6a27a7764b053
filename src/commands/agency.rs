//! `lienthong agency …`: agencies as data — grants, credentials, webhook subscriptions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use lienthong_bus::agencies::admin::AgencyAdmin;
use lienthong_bus::agencies::events::Mode;
use lienthong_bus::agencies::{self, AgencyRegistry};
use lienthong_deliver::admin::SubscribeRequest;
use lienthong_deliver::Secret;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add an agency: grant it streams (and subject filters within them); writes
    /// data/credentials/agency-NAME.env. Takes effect on the running servers within seconds.
    Add {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Replace an agency's grants (streams and filters).
    Grant {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// The agencies and what each may read (now, or as of a past instant).
    List {
        /// As it stood at this instant (RFC 3339), e.g. 2026-06-30T23:59:59+07:00.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// One agency: grants, since when, by whom, its copies and subscriptions.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Who could read a stream (now, or at a past instant), and every change of that.
    Readers {
        /// A stream of the bus (a registered subsystem's too).
        stream: String,
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an agency: its copies and account go, its connections are closed.
    Revoke {
        name: String,
        /// Why (kept in the registry's event).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Give an agency a new password (its open connections are closed); rewrites its file.
    Rotate {
        name: String,
        #[command(flatten)]
        who: Who,
    },
    /// Have the events of a granted stream POSTed to a webhook (CloudEvents, signed as
    /// Standard Webhooks), at least once, in order, from the stream's first event.
    Subscribe {
        name: String,
        /// The agency's stream (one it is granted).
        #[arg(long)]
        stream: String,
        /// Only these event types (repeatable), e.g. vn.egov.field_reports.report.submitted.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only these subjects (repeatable), e.g. 'egov.field_reports.report.*.reopened'.
        #[arg(long = "subjects")]
        subjects: Vec<String>,
        /// The receiver's URL.
        #[arg(long)]
        webhook: url::Url,
        /// The signing secret (`whsec_…`); generated into this file when it does not exist.
        #[arg(long)]
        secret_file: PathBuf,
        /// binary (data as the body, attributes as ce- headers) or structured (the event as JSON).
        #[arg(long, default_value = "binary")]
        mode: Mode,
        /// The subscription's name (default: `hook`); it is `<agency>.<name>`.
        #[arg(long = "name", default_value = "hook")]
        subscription: String,
        #[command(flatten)]
        who: Who,
    },
    /// Webhook subscriptions (of one agency), with what each still has to deliver.
    Subscriptions {
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: Who,
    },
    /// End a webhook subscription (`<agency>.<name>`).
    Unsubscribe {
        subscription: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Run the configuration agent beside one server: applies the registry to the server's
    /// accounts and reloads it (`lienthong up` runs one for its server).
    Agent {
        /// The server's generated accounts file (accounts.conf beside its nats.conf).
        #[arg(long)]
        accounts: PathBuf,
        /// Credentials of the system account's user (data/credentials/system.env).
        #[arg(long)]
        system_env: PathBuf,
    },
}

/// Who makes a change, for the registry's events.
#[derive(Debug, Clone, clap::Args)]
pub struct Who {
    /// Who makes the change (default: user@host).
    #[arg(long)]
    by: Option<String>,
    /// Where credentials files are written (default: beside the --env file, or
    /// data/credentials).
    #[arg(long)]
    credentials_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GrantArgs {
    /// Streams granted, comma-separated (e.g. FIELD_REPORTS,OPEN_DATA).
    #[arg(long, value_delimiter = ',', required = true)]
    streams: Vec<String>,
    /// Only these subjects (repeatable), e.g. 'egov.field_reports.report.*.resolved'.
    #[arg(long = "subjects")]
    subjects: Vec<String>,
    /// A note kept with the grant (a decision number, a ticket).
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    who: Who,
}

impl Who {
    /// Who makes the change: `--by`, or user@host.
    pub fn by(&self) -> String {
        self.by.clone().unwrap_or_else(whoami)
    }

    /// Where credentials files go.
    pub fn credentials_dir(&self, global: &Global) -> PathBuf {
        credentials_dir(global, self)
    }
}

fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

fn credentials_dir(global: &Global, who: &Who) -> PathBuf {
    who.credentials_dir.clone().unwrap_or_else(|| {
        global
            .env
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("data/credentials"))
    })
}

async fn admin(global: &Global, who: &Who) -> anyhow::Result<AgencyAdmin> {
    let session = global.session("lienthong-agency").await?;
    // Streams of subsystems registered on the bus may be granted too.
    lienthong_bus::registry::live::load(&session.reader).await?;
    Ok(AgencyAdmin::new(
        session.client.clone(),
        session.refusals.clone(),
        global.registry()?,
        &credentials_dir(global, who),
        &session.settings.url,
        &who.by.clone().unwrap_or_else(whoami),
    )
    .with_ca(session.settings.ca.clone()))
}

async fn registry(global: &Global, at: Option<DateTime<Utc>>) -> anyhow::Result<AgencyRegistry> {
    let session = global.session("lienthong-agency").await?;
    Ok(AgencyRegistry::load(&session.reader, at).await?)
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { name, grant } => {
            // (The admin first: it reads which registered subsystems may be granted.)
            let admin = admin(global, &grant.who).await?;
            let grants = agencies::grants(&grant.streams, &grant.subjects)?;
            let files = admin.add(&name, grants.clone(), grant.note).await?;
            println!(
                "agency {name} may read {}",
                grants
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("  credentials: {}", files.agency.display());
            println!(
                "  try: lienthong tail {} --env {} --no-follow",
                grants[0].stream,
                files.agency.display()
            );
        }
        Command::Grant { name, grant } => {
            let admin = admin(global, &grant.who).await?;
            let grants = agencies::grants(&grant.streams, &grant.subjects)?;
            admin.grant(&name, grants.clone(), grant.note).await?;
            println!(
                "agency {name} may now read {}",
                grants
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::List { at, json } => {
            let r = registry(global, at).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.agencies)?);
            } else if r.agencies.is_empty() {
                println!(
                    "no agencies{}",
                    at.map(|t| format!(" at {t}")).unwrap_or_default()
                );
            } else {
                println!("{:<20} {:<26} {:<24} grants", "agency", "since", "by");
                for a in r.agencies.values() {
                    println!(
                        "{:<20} {:<26} {:<24} {}",
                        a.name,
                        a.since.to_rfc3339(),
                        a.granted_by,
                        a.grants
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
        }
        Command::Show { name, json } => {
            let r = registry(global, None).await?;
            let history: Vec<_> = r.history.iter().filter(|c| c.agency == name).collect();
            let Some(a) = r.agencies.get(&name) else {
                // Revoked (or never granted): what the registry remembers.
                anyhow::ensure!(
                    !history.is_empty(),
                    "no agency {name}, now or ever; `lienthong agency list` shows them"
                );
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"agency": null, "history": history})
                        )?
                    );
                } else {
                    println!("agency {name}: not granted now (revoked); its history:");
                    for c in history {
                        println!("  {}  {} by {}", c.at, c.change, c.by);
                    }
                }
                return Ok(ExitCode::SUCCESS);
            };
            let subs: Vec<_> = r
                .subscriptions
                .values()
                .filter(|s| s.agency == name)
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "agency": a, "subscriptions": subs, "history": history,
                        "account": agencies::account(&name),
                    }))?
                );
            } else {
                println!(
                    "agency {name} (account and user {})",
                    agencies::account(&name)
                );
                println!(
                    "  since {} ; last granted {} by {}",
                    a.since, a.granted_at, a.granted_by
                );
                if let Some(t) = a.rotated_at {
                    println!("  password rotated {t}");
                }
                for g in &a.grants {
                    println!("  reads {g}");
                }
                for s in subs {
                    println!(
                        "  webhook {} → {} ({}{})",
                        s.id,
                        s.webhook,
                        s.mode,
                        if s.failing.is_some() { ", FAILING" } else { "" }
                    );
                }
                for c in history {
                    println!("  {}  {} by {}", c.at, c.change, c.by);
                }
            }
        }
        Command::Readers { stream, at, json } => {
            let session = global.session("lienthong-agency").await?;
            if !lienthong_bus::registry::stream_names().contains(&stream.as_str()) {
                let _ = lienthong_bus::registry::live::load(&session.reader).await;
            }
            let streams = lienthong_bus::registry::stream_names();
            if !streams.contains(&stream.as_str()) {
                anyhow::bail!("no stream {stream:?}: use one of {}", streams.join(", "));
            }
            let r = AgencyRegistry::load(&session.reader, at).await?;
            let readers: Vec<_> = r
                .readers_of(&stream)
                .into_iter()
                .map(|(a, g)| serde_json::json!({"agency": a.name, "subjects": g.filters(), "since": a.since, "granted_by": a.granted_by}))
                .collect();
            // The changes of who could read this stream: an agency gaining it, losing it, or
            // its filters on it changing.
            let mut before: std::collections::BTreeMap<&str, Option<Vec<String>>> =
                Default::default();
            let mut changes = Vec::new();
            for c in &r.history {
                let now = c
                    .grants
                    .iter()
                    .find(|g| g.stream == stream)
                    .map(|g| g.filters());
                let was = before.insert(c.agency.as_str(), now.clone()).flatten();
                if c.change != "rotated" && was != now {
                    changes.push(c);
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "stream": stream, "at": at, "agencies": readers,
                        "roles": lienthong_bus::roles::readers(&stream), "changes": changes,
                    }))?
                );
            } else {
                let when = at
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_else(|| " now".into());
                println!("who could read {stream}{when}:");
                println!(
                    "  roles: {}",
                    lienthong_bus::roles::readers(&stream).join(", ")
                );
                for r in &readers {
                    println!(
                        "  agency {} ({}), since {}, granted by {}",
                        r["agency"].as_str().unwrap_or(""),
                        r["subjects"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default(),
                        r["since"].as_str().unwrap_or(""),
                        r["granted_by"].as_str().unwrap_or("")
                    );
                }
                println!("changes:");
                for c in changes {
                    println!(
                        "  {}  #{:<5} {} {} by {}",
                        c.at, c.sequence, c.agency, c.change, c.by
                    );
                }
            }
        }
        Command::Revoke { name, reason, who } => {
            admin(global, &who).await?.revoke(&name, reason).await?;
            println!("agency {name} revoked: its account, copies and connections are gone");
        }
        Command::Rotate { name, who } => {
            let files = admin(global, &who).await?.rotate(&name).await?;
            println!(
                "agency {name}: new password in {} (its open connections were closed)",
                files.agency.display()
            );
        }
        Command::Subscribe {
            name,
            stream,
            types,
            subjects,
            webhook,
            secret_file,
            mode,
            subscription,
            who,
        } => {
            // A secret file that exists is used; otherwise one is generated, and written only
            // once the subscription is made.
            let (secret, generated) = match std::fs::read_to_string(&secret_file) {
                Ok(text) => (
                    Secret::parse(&text)
                        .with_context(|| format!("reading {}", secret_file.display()))?,
                    false,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Secret::generate(), true),
                Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", secret_file.display())),
            };
            let secret_text = secret.to_text();
            let admin = admin(global, &who).await?;
            let id = lienthong_deliver::admin::subscribe(
                &admin,
                SubscribeRequest {
                    agency: name,
                    name: subscription,
                    stream,
                    types,
                    subjects,
                    webhook,
                    secret,
                    mode,
                },
            )
            .await?;
            if generated {
                lienthong_bus::credentials::write_private(&secret_file, &secret_text)?;
                eprintln!(
                    "generated a signing secret in {} (give it to the receiver)",
                    secret_file.display()
                );
            }
            println!(
                "subscription {id}: delivered by `lienthong deliver` (which `lienthong up` runs)"
            );
        }
        Command::Subscriptions { name, json, who } => {
            let admin = admin(global, &who).await?;
            let subs = lienthong_deliver::admin::subscriptions(&admin, name.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&subs)?);
            } else if subs.is_empty() {
                println!("no webhook subscriptions");
            } else {
                println!(
                    "{:<28} {:<14} {:<10} {:>9} {:>9}  {:<10} webhook",
                    "subscription", "stream", "mode", "acked to", "pending", "state"
                );
                for s in subs {
                    let state = match &s.subscription.failing {
                        Some(f) => format!("FAILING since {} ({})", f.since, f.error),
                        None => "ok".into(),
                    };
                    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
                    println!(
                        "{:<28} {:<14} {:<10} {:>9} {:>9}  {:<10} {}",
                        s.subscription.id,
                        s.subscription.stream,
                        s.subscription.mode,
                        n(s.acknowledged_to),
                        n(s.pending),
                        state,
                        s.subscription.webhook
                    );
                }
            }
        }
        Command::Unsubscribe {
            subscription,
            reason,
            who,
        } => {
            let admin = admin(global, &who).await?;
            lienthong_deliver::admin::unsubscribe(&admin, &subscription, reason).await?;
            println!("subscription {subscription} ended");
        }
        Command::Agent {
            accounts,
            system_env,
        } => {
            let operator = global.settings()?.connect("lienthong-agency-agent").await?;
            let system = lienthong_bus::ConnectSettings::resolve(Some(&system_env))?
                .connect("lienthong-agency-agent-system")
                .await?;
            let agent = agencies::agent::Agent::new(&accounts, operator, system)?;
            eprintln!(
                "applying the agency registry to {} (Ctrl-C stops)",
                accounts.display()
            );
            agent.run(super::interrupted()).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
