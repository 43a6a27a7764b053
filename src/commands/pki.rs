//! `lienthong pki …`: the city's certificate authority — create it, issue certificates for
//! nodes, HTTP services and sites, and see what expires when.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lienthong_bus::tls::pki::{self, Authority, CertInfo, Expiry, IssueRequest, Usage};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a city CA: DIR/ca.crt (give it to every host) and DIR/private/ca.key (mode
    /// 0600; keep it on this machine, never in a host's bundle).
    Init {
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// The organisation named in the CA and every certificate it issues.
        #[arg(long, default_value = pki::DEFAULT_ORGANISATION)]
        organisation: String,
    },
    /// Issue a certificate into OUT: NAME.crt, NAME.key (0600) and a copy of ca.crt — what one
    /// host needs. Issuing again with the same name rotates it (a new key).
    Issue {
        /// The certificate's common name (and the files' names), e.g. n1, ingress, phu-thuy.
        name: String,
        /// The CA's directory (from `pki init`).
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// What it is for: a server (nats-server nodes — also clients of each other's routes
        /// — and HTTPS services) or a client (a site's link to the hub).
        #[arg(long, value_enum, default_value = "server")]
        usage: UsageArg,
        /// A DNS name the server answers to (repeat, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        dns: Vec<String>,
        /// An address the server answers at (repeat, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// The subject's organisational unit (sites' certificates: `site`).
        #[arg(long)]
        unit: Option<String>,
        #[arg(long, default_value_t = pki::DEFAULT_DAYS)]
        days: u32,
        /// Where to write the files (default: DIR/issued/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List certificates (files, or every *.crt in directories) with their subject, names and
    /// expiry; exits 1 when any is expired or expires within 30 days.
    Status {
        /// Certificate files or directories (default: pki).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum UsageArg {
    Server,
    Client,
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Init { dir, organisation } => {
            let ca = Authority::init(&dir, &organisation)?;
            println!("city CA created: {}", ca.ca_cert().display());
            println!(
                "its key: {} (mode 0600 — keep it here; hosts get ca.crt only)",
                dir.join(pki::CA_KEY).display()
            );
            println!(
                "next: lienthong pki issue n1 --dir {} --dns n1.example --ip 10.0.0.1",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Issue {
            name,
            dir,
            usage,
            dns,
            ip,
            unit,
            days,
            out,
        } => {
            let ca = Authority::load(&dir)?;
            let out = out.unwrap_or_else(|| dir.join("issued").join(&name));
            let issued = ca.issue(
                &IssueRequest {
                    name,
                    usage: match usage {
                        UsageArg::Server => Usage::Server,
                        UsageArg::Client => Usage::Client,
                    },
                    dns,
                    ips: ip,
                    unit,
                    days,
                },
                &out,
            )?;
            println!("certificate  {}", issued.cert.display());
            println!("key          {} (mode 0600)", issued.key.display());
            println!("CA           {}", issued.ca.display());
            println!("subject      {}", issued.info.subject);
            if !issued.info.names.is_empty() {
                println!("names        {}", issued.info.names.join(", "));
            }
            println!("valid until  {}", issued.info.not_after.to_rfc3339());
            println!("key pin      {}", issued.info.pin);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { paths, json } => status(paths, json),
    }
}

fn status(paths: Vec<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("pki")]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect(&p, &mut files)?;
        } else {
            files.push(p);
        }
    }
    let now = chrono::Utc::now();
    let mut certs: Vec<CertInfo> = Vec::new();
    for f in &files {
        certs.extend(pki::inspect(f)?);
    }
    let failing = certs
        .iter()
        .any(|c| !matches!(c.expiry(now), Expiry::Valid(_)));
    if json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            cert: &'a CertInfo,
            expiry: Expiry,
        }
        let rows: Vec<Row> = certs
            .iter()
            .map(|cert| Row {
                cert,
                expiry: cert.expiry(now),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        if certs.is_empty() {
            println!("no certificate found");
        }
        for c in &certs {
            println!("{}", c.path.display());
            println!(
                "  subject   {}{}",
                c.subject,
                if c.is_ca { "  (CA)" } else { "" }
            );
            if !c.names.is_empty() {
                println!("  names     {}", c.names.join(", "));
            }
            println!(
                "  until     {}  {}",
                c.not_after.format("%Y-%m-%d %H:%M UTC"),
                c.expiry(now)
            );
        }
    }
    Ok(if failing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every `*.crt` under `dir`, except under `private/`.
fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "private") {
                collect(&p, out)?;
            }
        } else if p.extension().is_some_and(|e| e == "crt") {
            out.push(p);
        }
    }
    Ok(())
}
