//! `lienthong site …`: ward and agency sites on leaf nodes of the hub.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use lienthong::site::{Role, Site, SiteOptions};
use lienthong_adapters::ingress::IngressConfig;
use lienthong_bus::credentials::{read_env_file, write_private};
use lienthong_bus::server::LeafAuth;
use lienthong_bus::sites::{self, admin, SiteCertificate, SiteKind};
use lienthong_bus::tls::TlsFiles;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// On the hub (as the operator): register a ward site — its account on the hub, and a
    /// source of its streams in each of the hub's. Writes site-NAME.env (its user and
    /// password on the hub) beside the --env file. Adding it again gives it a new password.
    Add {
        name: String,
        /// The site's JetStream domain (1–16 of a–z 0–9), unique among the sites (a ward's
        /// or a witness's; an agency's site chooses its own).
        #[arg(long)]
        domain: Option<String>,
        /// ward: the hub sources its streams; witness: an auditor's site that mirrors the
        /// hub's AUDIT (and nothing else); standby: a standby centre that mirrors every
        /// stream and bucket (`lienthong standby promote` makes it the centre); agency: an
        /// agency's site (the agency from `agency add`), registered by its certificate.
        #[arg(long, value_enum, default_value = "ward")]
        role: KindArg,
        /// Know the site by this client certificate (PEM, from `lienthong pki issue NAME
        /// --usage client --unit site` or the city's PKI) instead of a password: its link
        /// must present it (mutual TLS), and the hub maps its subject to the site's account.
        /// Adding again with a new certificate closes a link open with the old one at once.
        #[arg(long, value_name = "FILE")]
        certificate: Option<PathBuf>,
    },
    /// On the hub: the ward sites, and how far the hub's streams have sourced each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// On the hub: unregister a ward site (the hub keeps what it sourced; the site's
    /// connection is closed).
    Remove { name: String },
    /// Run a site: its own nats-server, a leaf node of the hub with its own JetStream
    /// domain, and what the site runs (ward: its streams and the ingress; agency: mirrors of
    /// its granted streams and its read models). --env: the site's credentials on the hub
    /// (site-NAME.env from `site add`, or the agency's agency-NAME.env).
    Up(Box<UpArgs>),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The site's name (a ward site: as registered; an agency site: the agency's).
    #[arg(long)]
    name: String,
    /// The site's JetStream domain (a ward site: as registered).
    #[arg(long)]
    domain: String,
    /// The hub's leaf-node address(es), comma-separated: nats-leaf://host:7422.
    #[arg(long, value_delimiter = ',', required = true)]
    hub: Vec<String>,
    #[arg(long, value_enum, default_value = "ward")]
    role: RoleArg,
    /// The site's store, credentials and read models.
    #[arg(long, default_value = "site-data")]
    data: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    nats_host: String,
    /// The site's own NATS port (0: a free one).
    #[arg(long, default_value_t = 4223)]
    nats_port: u16,
    /// Ward: the ingress's address.
    #[arg(long, default_value = "127.0.0.1:8091")]
    ingress: std::net::SocketAddr,
    /// Ward: the ingress's callers (default: one generated caller for the site).
    #[arg(long, value_name = "FILE")]
    ingress_config: Option<PathBuf>,
    /// Agency: the read models' address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: std::net::SocketAddr,
    /// The site's own listeners (its NATS port, ingress, read models): TLS with this
    /// host's certificate, or plaintext (beyond loopback only when asked for).
    #[command(flatten)]
    tls: super::TlsArgs,
    /// The most the site's JetStream store may hold on disk, e.g. `50GB` (default 64GB; a
    /// standby's must hold the whole centre's).
    #[arg(long, value_name = "SIZE")]
    max_store: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Ward,
    Agency,
    Witness,
    Standby,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Ward,
    Witness,
    Standby,
    Agency,
}

pub async fn run(global: &Global, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Add {
            name,
            domain,
            role,
            certificate,
            ..
        } => {
            let kind = match role {
                KindArg::Ward => SiteKind::Ward,
                KindArg::Witness => SiteKind::Witness,
                KindArg::Standby => SiteKind::Standby,
                KindArg::Agency => {
                    let certificate = certificate.as_deref().context(
                        "an agency's site is registered by its certificate: --certificate FILE",
                    )?;
                    return add_agency_site(global, &name, certificate).await;
                }
            };
            let domain = domain.context("--domain: the site's JetStream domain")?;
            add(global, &name, &domain, kind, certificate.as_deref()).await
        }
        Command::List { json } => list(global, json).await,
        Command::Remove { name } => remove(global, &name).await,
        Command::Up(a) => up(global, *a).await,
    }
}

async fn add(
    global: &Global,
    name: &str,
    domain: &str,
    kind: SiteKind,
    certificate: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let known_by = certificate.map(site_certificate).transpose()?;
    let session = global.session("lienthong-site-add").await?;
    // A role that may not touch the operator's bucket is told at once, not retried.
    let registered = session
        .guard(admin::register(
            &session.js,
            name,
            domain,
            kind,
            known_by.as_ref().map(|(c, _)| c.clone()),
        ))
        .await?;
    let file = site_env_file(global, name);
    let role = match kind {
        SiteKind::Ward => "ward",
        SiteKind::Witness => "witness",
        SiteKind::Standby => "standby",
    };
    let body = match (&registered.password, &known_by) {
        (Some(password), _) => format!(
            "# Site {name}'s leaf connection to the hub. Generated; keep private.\n\
             # Use: lienthong site up --role {role} --name {name} --domain {domain} --hub nats-leaf://HUB:7422 --env THIS_FILE\n\
             LIENTHONG_SITE_NAME={name}\nLIENTHONG_SITE_DOMAIN={domain}\nLIENTHONG_SITE_ROLE={role}\n\
             NATS_USER={}\nNATS_PASSWORD={password}\n",
            sites::account(name),
        ),
        (None, Some((c, files))) => {
            certificate_env(name, role, Some(domain), &sites::account(name), c, files)
        }
        (None, None) => bail!("registered without a password or a certificate"),
    };
    write_private(&file, &body)?;
    match kind {
        SiteKind::Ward => println!(
            "site {name} (domain {domain}) registered; the hub's intake sources it and the admission checks each event ({} sources added)",
            registered.sources_added
        ),
        SiteKind::Witness => println!(
            "witness {name} (domain {domain}) registered; it may mirror AUDIT and nothing else"
        ),
        SiteKind::Standby => println!(
            "standby {name} (domain {domain}) registered; it may mirror every stream and bucket of the bus (read only)"
        ),
    }
    println!("its credentials: {}", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn remove(global: &Global, name: &str) -> anyhow::Result<ExitCode> {
    let session = global.session("lienthong-site-remove").await?;
    let access = session.guard(admin::access(&session.js)).await?;
    if !access.sites.iter().any(|s| s.name == name)
        && access
            .agencies
            .get(name)
            .is_some_and(|h| h.site_certificate.is_some())
    {
        session
            .guard(admin::set_agency_site(&session.js, name, None))
            .await?;
        println!("agency {name}'s site unregistered; its link is closed");
        return Ok(ExitCode::SUCCESS);
    }
    session.guard(admin::unregister(&session.js, name)).await?;
    println!("site {name} removed; the hub keeps what it sourced from it");
    Ok(ExitCode::SUCCESS)
}

/// Registers agency `name`'s site by its certificate; writes site-NAME.env for it.
async fn add_agency_site(
    global: &Global,
    name: &str,
    certificate: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let (cert, files) = site_certificate(certificate)?;
    let session = global.session("lienthong-site-add").await?;
    session
        .guard(admin::set_agency_site(
            &session.js,
            name,
            Some(cert.clone()),
        ))
        .await?;
    let file = site_env_file(global, name);
    write_private(
        &file,
        &certificate_env(
            name,
            "agency",
            None,
            &lienthong_bus::agencies::account(name),
            &cert,
            &files,
        ),
    )?;
    println!(
        "agency {name}'s site registered by its certificate ({})",
        cert.subject
    );
    println!("its credentials: {}", file.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct SiteState {
    name: String,
    domain: String,
    kind: SiteKind,
    /// The certificate it links with (subject, key pin), when registered by one.
    certificate: Option<lienthong_bus::sites::SiteCertificate>,
    /// Per stream of the ward: messages still to source into the hub's intake, and seconds
    /// since the source was active.
    streams: Vec<admin::SourceState>,
    /// What the hub's admission did with its events: admitted, and refused by reason.
    admission: Option<lienthong_bus::sites::admission::SiteCounts>,
}

async fn list(global: &Global, json: bool) -> anyhow::Result<ExitCode> {
    let session = global.session("lienthong-site-list").await?;
    let js = &session.js;
    let mut out = Vec::new();
    let mut counts = lienthong_bus::sites::admission::counts(js)
        .await
        .unwrap_or_default();
    for site in session.guard(admin::access(js)).await?.sites {
        let streams = match site.kind {
            SiteKind::Ward => session.guard(admin::sourcing(js, &site)).await?,
            SiteKind::Witness | SiteKind::Standby => Vec::new(),
        };
        let admission = counts.remove(&site.name);
        out.push(SiteState {
            name: site.name,
            domain: site.domain,
            kind: site.kind,
            certificate: site.certificate,
            streams,
            admission,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        println!("no site (lienthong site add NAME --domain D)");
    }
    for s in out {
        println!("{} ({:?}, domain {})", s.name, s.kind, s.domain);
        if let Some(c) = &s.certificate {
            println!(
                "  certificate    {} (key {})",
                c.subject,
                &c.pin[..16.min(c.pin.len())]
            );
        }
        if s.kind == SiteKind::Ward {
            let c = s.admission.unwrap_or_default();
            println!(
                "  admitted {:>8}  refused {:>6}{}",
                c.admitted,
                c.rejected_total(),
                if c.rejected.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        c.rejected
                            .iter()
                            .map(|(r, n)| format!("{r} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        for st in s.streams {
            println!(
                "  {:<14} lag {:>8}  {}",
                st.stream,
                st.lag,
                match st.active_seconds_ago {
                    Some(a) => format!("active {a:.1} s ago"),
                    None => "not connected".into(),
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn up(global: &Global, a: UpArgs) -> anyhow::Result<ExitCode> {
    if let Some(size) = &a.max_store {
        lienthong_bus::server::check_store_size(size)?;
    }
    let env = global
        .env
        .as_ref()
        .context("--env: the site's credentials on the hub (site-NAME.env from `lienthong site add`, or agency-NAME.env)")?;
    let vars = read_env_file(env)?;
    // Paths in the file are read beside it (a bundle is copied as a whole).
    let beside = |key: &str| {
        vars.get(key).map(|p| {
            let p = PathBuf::from(p);
            match env.parent() {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            }
        })
    };
    let (user, auth) = match (
        vars.get("NATS_USER"),
        vars.get("NATS_PASSWORD"),
        beside("NATS_CERT"),
        beside("NATS_KEY"),
    ) {
        (_, _, Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert,
                key,
                ca: beside("NATS_CA"),
            };
            files.check()?;
            let user = vars
                .get("NATS_USER")
                .cloned()
                .unwrap_or_else(|| sites::account(&a.name));
            (user, LeafAuth::Certificate(files))
        }
        (Some(user), Some(password), _, _) => (
            user.clone(),
            LeafAuth::Password {
                user: user.clone(),
                password: password.clone(),
            },
        ),
        _ => bail!(
            "{} has neither NATS_CERT and NATS_KEY (a site known by certificate) nor NATS_USER and NATS_PASSWORD",
            env.display()
        ),
    };
    let user = &user;
    let role = match a.role {
        RoleArg::Ward => Role::Ward,
        RoleArg::Agency => Role::Agency,
        RoleArg::Witness => Role::Witness,
        RoleArg::Standby => Role::Standby,
    };
    // A ward's or witness's file says which domain and role it was registered with.
    if let Some(d) = vars.get("LIENTHONG_SITE_DOMAIN") {
        if *d != a.domain {
            bail!(
                "{} was registered with domain {d}, not {}: the hub sources (or serves) the site by its domain",
                env.display(),
                a.domain
            );
        }
    }
    if let Some(r) = vars.get("LIENTHONG_SITE_ROLE") {
        let asked = role.as_str();
        if r != asked {
            bail!("{} is a {r} site's; run it with --role {r}", env.display());
        }
    }
    if role != Role::Agency && *user != sites::account(&a.name) {
        bail!(
            "{} is {user}'s; site {} connects as {} (its file from `lienthong site add`)",
            env.display(),
            a.name,
            sites::account(&a.name)
        );
    }
    let ingress_config = a
        .ingress_config
        .as_ref()
        .map(|p| -> anyhow::Result<IngressConfig> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid ingress configuration", p.display()))
        })
        .transpose()?;
    let site = Site::start(SiteOptions {
        name: a.name.clone(),
        domain: a.domain.clone(),
        role,
        hub: a.hub.clone(),
        user: user.clone(),
        auth,
        transport: a.tls.transport()?,
        data: a.data,
        nats_host: a.nats_host,
        nats_port: a.nats_port,
        ingress: a.ingress,
        ingress_config,
        http: a.http,
        schemas: global.registry()?,
        max_store: a.max_store.clone(),
    })
    .await?;
    println!();
    println!(
        "Site {} is up ({}, domain {}).",
        a.name,
        role.as_str(),
        a.domain
    );
    for l in &site.lines {
        println!("{l}");
    }
    println!("It keeps working while the link to the hub is down. Ctrl-C stops it.");
    println!();
    let result = site.run_until(super::interrupted()).await;
    println!("stopped.");
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Where `site add` writes site `name`'s credentials: beside the operator's --env file.
fn site_env_file(global: &Global, name: &str) -> PathBuf {
    global
        .env
        .as_ref()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/credentials"))
        .join(format!("{}.env", sites::account(name)))
}

/// A site's credentials when it links by its certificate: no password, the certificate's
/// files (as `pki issue` wrote them) and the CA.
fn certificate_env(
    name: &str,
    role: &str,
    domain: Option<&str>,
    user: &str,
    c: &SiteCertificate,
    files: &TlsFiles,
) -> String {
    format!(
        "# Site {name}'s leaf link to the hub, by its certificate (mutual TLS: no password).\n\
         # Relative paths are read beside this file; copy the three files with it.\n\
         # Subject {}\n\
         # Use: lienthong site up --role {role} --name {name} --domain {} --hub nats-leaf://HUB:7422 --env THIS_FILE\n\
         LIENTHONG_SITE_NAME={name}\nLIENTHONG_SITE_ROLE={role}\n{}NATS_USER={user}\n\
         NATS_CERT={}\nNATS_KEY={}\nNATS_CA={}\n",
        c.subject,
        domain.unwrap_or("DOMAIN"),
        domain
            .map(|d| format!("LIENTHONG_SITE_DOMAIN={d}\n"))
            .unwrap_or_default(),
        files.cert.display(),
        files.key.display(),
        files
            .ca
            .as_deref()
            .unwrap_or(std::path::Path::new("ca.crt"))
            .display(),
    )
}

/// The subject and key pin of a site's certificate, and the files beside it (`pki issue`
/// writes NAME.crt, NAME.key and ca.crt together).
fn site_certificate(path: &std::path::Path) -> anyhow::Result<(SiteCertificate, TlsFiles)> {
    let info = lienthong_bus::tls::pki::inspect(path)?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", path.display()))?;
    if info.is_ca {
        bail!("{} is a CA's certificate, not a site's", path.display());
    }
    if info.expiry(chrono::Utc::now()) == lienthong_bus::tls::pki::Expiry::Expired {
        bail!(
            "{} has expired ({}): issue a new one",
            path.display(),
            info.not_after
        );
    }
    let cert = std::path::absolute(path)?;
    let dir = cert.parent().map(PathBuf::from).unwrap_or_default();
    let files = TlsFiles {
        key: cert.with_extension("key"),
        ca: Some(dir.join(lienthong_bus::tls::pki::CA_CERT)),
        cert,
    };
    Ok((
        SiteCertificate {
            subject: info.subject,
            pin: info.pin,
        },
        files,
    ))
}
