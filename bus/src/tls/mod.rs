//! TLS on every link beyond loopback: the certificates a host uses ([`TlsFiles`]), the rule
//! that nothing listens beyond loopback in the clear unless plaintext is asked for by name
//! ([`Transport::check_listener`]), the city's certificate authority ([`pki`]) and HTTPS for the
//! HTTP services ([`http`]).
//!
//! nats-server reads the same files: its client port, routes and leaf-node port are given
//! `tls { … }` blocks by [`crate::server`]; clients are given the CA (`NATS_CA`) and, where a
//! client certificate is used (sites), `NATS_CERT` / `NATS_KEY`, as the `nats` CLI names them.

pub mod http;
pub mod pki;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{BusError, Result};

/// Days before a certificate's expiry from which `/healthz`, the dashboard and
/// `lienthong pki status` warn.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The certificate a host presents, its key, and the CA its peers' certificates must come
/// from (PEM files). The same files serve nats-server and the HTTP services; replacing them
/// (a rotation) takes effect without a restart: nats-server at its next reload, HTTPS
/// listeners at the next handshake after the files changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Verifies peers (routes between nodes, sites' leaf links, clients with certificates)
    /// and is what clients are given as `NATS_CA`. `None`: peers are not verified here.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// `dir/<name>.crt`, `dir/<name>.key` and `dir/ca.crt`: what `lienthong pki issue` writes.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            ca: Some(dir.join(pki::CA_CERT)),
        }
    }

    /// Every path made absolute (nats-server and credentials files are read from elsewhere).
    pub fn absolute(&self) -> Result<Self> {
        Ok(Self {
            cert: absolute(&self.cert)?,
            key: absolute(&self.key)?,
            ca: self.ca.as_deref().map(absolute).transpose()?,
        })
    }

    /// Checks that the files are there and hold what they should: a certificate chain, a
    /// private key, a CA certificate. Says which file is wrong and why.
    pub fn check(&self) -> Result<()> {
        self.certified_key()?;
        if let Some(ca) = &self.ca {
            load_certs(ca)?;
        }
        Ok(())
    }

    /// The certificate chain with its key, for rustls: the key must go with the
    /// certificate (a pair caught half-replaced does not).
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>> {
        let key = rustls::sign::CertifiedKey::from_der(
            load_certs(&self.cert)?,
            load_key(&self.key)?,
            &provider(),
        )
        .map_err(|e| BusError::Tls {
            what: format!("{} with {}", self.cert.display(), self.key.display()),
            reason: format!("the key does not go with the certificate: {e}"),
        })?;
        Ok(Arc::new(key))
    }

    /// The certificates in use (the host's and the CA's): what expiry checks look at.
    pub fn certificates(&self) -> Vec<PathBuf> {
        std::iter::once(self.cert.clone())
            .chain(self.ca.clone())
            .collect()
    }
}

/// How a component's listeners are secured: with a certificate, or in the clear — which beyond
/// loopback must be asked for by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub tls: Option<TlsFiles>,
    /// Plaintext beyond loopback, asked for explicitly (`--insecure-plaintext`).
    pub insecure_plaintext: bool,
}

impl Transport {
    pub fn tls(files: TlsFiles) -> Self {
        Self {
            tls: Some(files),
            insecure_plaintext: false,
        }
    }

    /// Refuses a listener on `host` (an address or a name) without TLS unless the host is a
    /// loopback address or plaintext was asked for by name. `what` names the listener.
    pub fn check_listener(&self, what: &str, host: &str, port: u16) -> Result<()> {
        if self.tls.is_some() || self.insecure_plaintext || is_loopback(host) {
            return Ok(());
        }
        Err(BusError::Plaintext {
            what: what.to_string(),
            addr: format!("{host}:{port}"),
        })
    }

    /// The URL scheme of an HTTP listener.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`. The unspecified
/// address (0.0.0.0, ::) listens on every interface: not loopback.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The certificate the server at `addr` presents, verified against `config`'s roots and the
/// address. For a NATS port (`nats`), after its `INFO` line, which must say TLS is required
/// (NATS speaks first, then TLS). Errors say what went wrong, for probes' reports.
pub async fn presented_certificate(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    nats: bool,
) -> std::result::Result<CertificateDer<'static>, String> {
    use tokio::io::AsyncBufReadExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let mut reader = tokio::io::BufReader::new(stream);
    if nats {
        let mut info = String::new();
        reader
            .read_line(&mut info)
            .await
            .map_err(|e| format!("no INFO: {e}"))?;
        if !info.contains("\"tls_required\":true") {
            return Err("answers WITHOUT TLS".into());
        }
    }
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
            reader.into_inner(),
        )
        .await
        .map_err(|e| format!("TLS refused: {e}"))?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| "no certificate".into())
}

/// The host of `url` when it would carry data in the clear beyond loopback: a scheme
/// without TLS (`http`, `nats`, `nats-leaf`, `ws`) to a host that is not loopback. `None`
/// for `https`, `tls`, `wss`, and for anything on loopback.
pub fn clear_beyond_loopback(url: &url::Url) -> Option<String> {
    let encrypted = matches!(url.scheme(), "https" | "tls" | "wss");
    let host = url.host_str()?;
    (!encrypted && !is_loopback(host)).then(|| host.to_string())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| BusError::io(format!("resolving {}", path.display()), e))
}

/// Reads every certificate of a PEM file; an empty or unreadable file is an error naming it.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| BusError::Tls {
        what: path.display().to_string(),
        reason: format!("cannot read the certificate: {e}"),
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| BusError::Tls {
            what: path.display().to_string(),
            reason: format!("not a PEM certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(BusError::Tls {
            what: path.display().to_string(),
            reason: "holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(|e| BusError::Tls {
        what: path.display().to_string(),
        reason: format!("cannot read the private key: {e}"),
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| BusError::Tls {
        what: path.display().to_string(),
        reason: format!("not a PEM private key: {e}"),
    })
}

/// The crypto provider every TLS configuration of the project uses (ring, as async-nats).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `ca` (or, without one, the system's roots), for HTTPS
/// clients that must verify the server they talk to.
pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| BusError::Tls {
                    what: ca.display().to_string(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| BusError::Tls {
            what: "client configuration".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listens_in_the_clear_without_asking() {
        for host in ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
            assert!(Transport::default().check_listener("x", host, 1).is_ok());
        }
        for host in ["0.0.0.0", "::", "10.1.2.3", "hub.example.vn"] {
            assert!(!is_loopback(host), "{host}");
            let e = Transport::default()
                .check_listener("NATS", host, 4222)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--tls-cert") && e.contains("--insecure-plaintext"),
                "{e}"
            );
            assert!(e.contains(&format!("{host}:4222")), "{e}");
            let asked = Transport {
                tls: None,
                insecure_plaintext: true,
            };
            assert!(asked.check_listener("NATS", host, 4222).is_ok());
        }
    }

    #[test]
    fn clear_links_beyond_loopback_are_named() {
        let host = |u: &str| clear_beyond_loopback(&url::Url::parse(u).unwrap());
        assert_eq!(
            host("http://agency.example/hook"),
            Some("agency.example".into())
        );
        assert_eq!(host("nats://10.0.0.1:4222"), Some("10.0.0.1".into()));
        assert_eq!(
            host("nats-leaf://[2001:db8::1]:7422"),
            Some("[2001:db8::1]".into())
        );
        for ok in [
            "https://agency.example/hook",
            "tls://10.0.0.1:4222",
            "http://127.0.0.1:9/x",
            "nats://localhost:4222",
            "http://[::1]:80/",
        ] {
            assert_eq!(host(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_missing_or_wrong_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::in_dir(dir.path(), "n1");
        let e = files.check().unwrap_err().to_string();
        assert!(e.contains("n1.crt") && e.contains("cannot read"), "{e}");
        std::fs::write(&files.cert, "not a certificate").unwrap();
        let e = files.check().unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
    }
}
