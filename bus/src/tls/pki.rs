//! The city's certificate authority, by one command: `lienthong pki init` makes it,
//! `lienthong pki issue` issues server certificates (nodes, HTTP services) and client
//! certificates (sites), `lienthong pki status` shows what expires when.
//!
//! A PKI directory holds the CA certificate `ca.crt` (public: every host gets a copy) and its
//! key in `private/ca.key` (mode 0600 in a 0700 directory): the key stays on the machine that
//! issues, never in what hosts receive. An issued certificate is written as
//! `<out>/<name>.crt`, its key `<out>/<name>.key` (0600) and a copy of `ca.crt` beside them:
//! exactly what one host needs. Keys are ECDSA P-256; certificates from the city's own PKI
//! work as well (every command takes PEM files).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::credentials::write_private;
use crate::error::{BusError, Result};

/// The CA certificate in a PKI directory (and beside every issued certificate).
pub const CA_CERT: &str = "ca.crt";
/// The CA key, under the PKI directory.
pub const CA_KEY: &str = "private/ca.key";
/// The organisation named in certificates when `pki init` is not given one.
pub const DEFAULT_ORGANISATION: &str = "Lienthong";
/// How long an issued certificate is valid by default (the CA/Browser Forum's longest).
pub const DEFAULT_DAYS: u32 = 397;
/// How long the CA is valid.
pub const CA_DAYS: u32 = 3650;

fn tls_error(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> BusError {
    BusError::Tls {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// A server (a nats-server node, an HTTPS service). Nodes also present it as clients
    /// (routes between them), so it serves both ways.
    Server,
    /// A client only: a site's leaf link to the hub, a role that authenticates by
    /// certificate.
    Client,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The certificate's common name, and the files' names.
    pub name: String,
    pub usage: Usage,
    /// DNS names it answers to (servers).
    pub dns: Vec<String>,
    /// Addresses it answers at (servers).
    pub ips: Vec<IpAddr>,
    /// The subject's organisational unit (e.g. `site` for sites), if any.
    pub unit: Option<String>,
    pub days: u32,
}

/// An issued certificate's files and facts.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub info: CertInfo,
}

/// A certificate authority on disk.
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    organisation: String,
    /// The CA's subject: what its certificates name as their issuer.
    subject: String,
    ca_pem: String,
    ca_not_after: DateTime<Utc>,
}

impl Authority {
    /// Creates a CA in `dir` (`ca.crt`, `private/ca.key`); refuses to overwrite one.
    pub fn init(dir: &Path, organisation: &str) -> Result<Self> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if cert_path.exists() || key_path.exists() {
            return Err(tls_error(
                dir.display(),
                "already holds a CA (ca.crt or private/ca.key); use it, or choose another directory",
            ));
        }
        let key = KeyPair::generate().map_err(|e| tls_error("generating the CA key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("{organisation} CA"), None, organisation);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_DAYS);
        params.serial_number = Some(serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("signing the CA certificate", e))?;
        let private = dir.join("private");
        std::fs::create_dir_all(&private)
            .map_err(|e| BusError::io(format!("creating {}", private.display()), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| BusError::io(format!("protecting {}", private.display()), e))?;
        }
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        Self::load(dir)
    }

    /// Opens the CA in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let ca_pem = std::fs::read_to_string(&cert_path).map_err(|e| {
            tls_error(
                cert_path.display(),
                format!("cannot read the CA certificate ({e}); create a CA with `lienthong pki init --dir {}`", dir.display()),
            )
        })?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
            tls_error(
                key_path.display(),
                format!("cannot read the CA key ({e}); issuing needs the CA's private key"),
            )
        })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| tls_error(key_path.display(), e))?;
        let info = inspect_pem(&cert_path, ca_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or_else(|| tls_error(cert_path.display(), "holds no certificate"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
            .map_err(|e| tls_error(cert_path.display(), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            issuer,
            organisation: info
                .organisation
                .unwrap_or_else(|| DEFAULT_ORGANISATION.to_string()),
            subject: info.subject,
            ca_pem,
            ca_not_after: info.not_after,
        })
    }

    /// The CA certificate's path.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// Whether `info` was issued by this CA (by name; the TLS stacks check the signature).
    pub fn issued(&self, info: &CertInfo) -> bool {
        info.issuer == self.subject
    }

    /// Issues a certificate into `out` (`<name>.crt`, `<name>.key` 0600, `ca.crt`). Issuing
    /// again replaces them with a new key (a rotation).
    pub fn issue(&self, req: &IssueRequest, out: &Path) -> Result<Issued> {
        check_file_name(&req.name)?;
        if req.days > CA_DAYS {
            return Err(tls_error(
                &req.name,
                format!("{} days: a certificate may be valid {CA_DAYS} days at most (the CA's own life)", req.days),
            ));
        }
        if req.usage == Usage::Server && req.dns.is_empty() && req.ips.is_empty() {
            return Err(tls_error(
                &req.name,
                "a server certificate needs the names or addresses it answers at (--dns, --ip)",
            ));
        }
        let key = KeyPair::generate().map_err(|e| tls_error("generating a key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&req.name, req.unit.as_deref(), &self.organisation);
        let serial = serial();
        if req.usage == Usage::Client {
            // A client is known by its subject (nats-server's verify_and_map): the serial in
            // the subject makes each issued certificate its own identity, so registering a
            // new one (a rotation) ends what the old one could do.
            params.distinguished_name.push(
                DnType::CustomDnType(vec![2, 5, 4, 5]),
                hex::encode(serial.as_ref()),
            );
        }
        if let Some(bad) = req.dns.iter().find(|d| !is_dns_name(d)) {
            return Err(tls_error(
                format!("DNS name {bad:?}"),
                "use letters, digits, - and . (a leading *. for a wildcard), 1 to 253 of them",
            ));
        }
        params.subject_alt_names = req
            .dns
            .iter()
            .map(|d| {
                d.clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| tls_error(format!("DNS name {d:?}"), e))
            })
            .chain(req.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match req.usage {
            Usage::Server => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, req.days.max(1));
        params.serial_number = Some(serial);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| tls_error(format!("signing {}", req.name), e))?;
        std::fs::create_dir_all(out)
            .map_err(|e| BusError::io(format!("creating {}", out.display()), e))?;
        let cert_path = out.join(format!("{}.crt", req.name));
        let key_path = out.join(format!("{}.key", req.name));
        let ca_path = out.join(CA_CERT);
        // Each file is replaced whole (written beside, then renamed): a rotation caught
        // half-way leaves a pair that does not go together, which every reader refuses.
        replace(&key_path, &key.serialize_pem(), true)?;
        replace(&cert_path, &cert.pem(), false)?;
        if std::fs::canonicalize(&ca_path).ok() != std::fs::canonicalize(self.ca_cert()).ok() {
            write_public(&ca_path, &self.ca_pem)?;
        }
        let info = inspect(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| tls_error(cert_path.display(), "was not written"))?;
        if info.not_after > self.ca_not_after {
            tracing::warn!(
                "{} outlives the CA that issued it ({}); renew the CA first",
                cert_path.display(),
                self.ca_not_after
            );
        }
        Ok(Issued {
            cert: cert_path,
            key: key_path,
            ca: ca_path,
            info,
        })
    }
}

fn name(common: &str, unit: Option<&str>, organisation: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organisation);
    if let Some(u) = unit {
        dn.push(DnType::OrganizationalUnitName, u);
    }
    dn.push(DnType::CommonName, common);
    dn
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back: hosts whose clocks are a little behind accept it at once.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// A host name a certificate may carry: labels of letters, digits and `-`, dot-separated, the
/// first one possibly `*`.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_file_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(tls_error(
            format!("name {name:?}"),
            "use 1 to 64 of a–z A–Z 0–9 - . _ (it names the files), not starting with a dot",
        ))
    }
}

fn replace(path: &Path, body: &str, private: bool) -> Result<()> {
    let tmp = path.with_extension("new");
    if private {
        write_private(&tmp, body)?;
    } else {
        write_public(&tmp, body)?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| BusError::io(format!("replacing {}", path.display()), e))
}

fn write_public(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, body).map_err(|e| BusError::io(format!("writing {}", path.display()), e))
}

/// What a certificate says, as `pki status` and the health checks show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub path: PathBuf,
    /// The subject as a distinguished name (RFC 4514: most specific first), the form
    /// nats-server maps a client certificate to a user by (`verify_and_map`).
    pub subject: String,
    pub issuer: String,
    pub organisation: Option<String>,
    /// DNS names, addresses, e-mails and URIs it answers to.
    pub names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub is_ca: bool,
    /// SHA-256 of its public key (hex): what nats-server pins (`pinned_certs`).
    pub pin: String,
}

/// How near a certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "days")]
pub enum Expiry {
    /// Valid for more than [`super::EXPIRY_WARNING_DAYS`] days.
    Valid(i64),
    /// Valid for this many days more, at most [`super::EXPIRY_WARNING_DAYS`].
    Expiring(i64),
    /// Past its end, or not valid yet.
    Expired,
    NotYetValid,
}

impl CertInfo {
    pub fn expiry(&self, now: DateTime<Utc>) -> Expiry {
        if now < self.not_before {
            return Expiry::NotYetValid;
        }
        if now >= self.not_after {
            return Expiry::Expired;
        }
        let days = (self.not_after - now).num_days();
        if days <= super::EXPIRY_WARNING_DAYS {
            Expiry::Expiring(days)
        } else {
            Expiry::Valid(days)
        }
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Valid(d) => write!(f, "valid, {d} days left"),
            Self::Expiring(d) => write!(f, "EXPIRES in {d} days: renew it"),
            Self::Expired => write!(f, "EXPIRED: renew it"),
            Self::NotYetValid => write!(f, "NOT YET VALID: check the clocks"),
        }
    }
}

/// Every certificate in a PEM file.
pub fn inspect(path: &Path) -> Result<Vec<CertInfo>> {
    let bytes = std::fs::read(path)
        .map_err(|e| tls_error(path.display(), format!("cannot read the certificate: {e}")))?;
    inspect_pem(path, &bytes)
}

/// What a certificate received in DER (a peer's, in a handshake) says; `from` names it.
pub fn inspect_der(from: &str, der: &[u8]) -> Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| tls_error(from, format!("not an X.509 certificate: {e}")))?;
    info_of(Path::new(from), &cert)
}

fn inspect_pem(path: &Path, bytes: &[u8]) -> Result<Vec<CertInfo>> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| tls_error(path.display(), format!("not PEM: {e}")))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| tls_error(path.display(), format!("not an X.509 certificate: {e}")))?;
        out.push(info_of(path, &cert)?);
    }
    if out.is_empty() {
        return Err(tls_error(
            path.display(),
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(out)
}

fn info_of(path: &Path, cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<CertInfo> {
    {
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        x509_parser::extensions::GeneralName::RFC822Name(e) => Some(e.to_string()),
                        x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(b) => ip_of(b),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let time = |t: x509_parser::time::ASN1Time| {
            DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or_default()
        };
        let organisation = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .map(str::to_string);
        Ok(CertInfo {
            path: path.to_path_buf(),
            subject: distinguished_name(cert.subject())
                .map_err(|reason| tls_error(path.display(), reason))?,
            issuer: distinguished_name(cert.issuer()).unwrap_or_else(|_| cert.issuer().to_string()),
            organisation,
            names,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            is_ca: cert.is_ca(),
            pin: hex::encode(Sha256::digest(cert.public_key().raw)),
        })
    }
}

fn ip_of(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// A subject as an RFC 4514 string, most specific attribute first (`CN=…,OU=…,O=…`), the
/// values escaped. nats-server parses a mapped user's name the same way and compares it with
/// the certificate's subject attribute by attribute.
pub fn distinguished_name(
    name: &x509_parser::x509::X509Name<'_>,
) -> std::result::Result<String, String> {
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.9" => "STREET",
                "2.5.4.5" => "SERIALNUMBER",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                other => {
                    return Err(format!(
                        "its subject has an attribute ({other}) that cannot be written as a name; use CN, O, OU, C, L, ST, DC"
                    ))
                }
            };
            let value = attr
                .as_str()
                .map_err(|e| format!("a subject attribute is not text: {e}"))?;
            parts.push(format!("{key}={}", escape_dn_value(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 4514 §2.4: `, + " \ < > ;` escaped, and a leading `#` or space and a trailing space.
fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str) -> IssueRequest {
        IssueRequest {
            name: name.into(),
            usage: Usage::Server,
            dns: vec!["localhost".into(), "n1.hub.phanthiet.gov.vn".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            unit: None,
            days: 90,
        }
    }

    #[test]
    fn a_ca_issues_certificates_with_private_keys_and_the_ca_key_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ca = Authority::init(&pki, "UBND TP. Phan Thiết, Sở TT&TT").unwrap();
        assert!(Authority::init(&pki, "x").is_err(), "never overwrites a CA");
        let out = dir.path().join("n1");
        let issued = ca.issue(&server("n1"), &out).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&issued.key), 0o600);
            assert_eq!(mode(&pki.join(CA_KEY)), 0o600);
            assert_eq!(mode(&pki.join("private")), 0o700);
        }
        // What a host receives: its certificate, its key, the CA's certificate — no CA key.
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["ca.crt", "n1.crt", "n1.key"]);
        let info = &issued.info;
        assert_eq!(info.subject, "CN=n1,O=UBND TP. Phan Thiết\\, Sở TT&TT");
        assert_eq!(
            info.issuer,
            "CN=UBND TP. Phan Thiết\\, Sở TT&TT CA,O=UBND TP. Phan Thiết\\, Sở TT&TT"
        );
        assert_eq!(
            info.names,
            ["localhost", "n1.hub.phanthiet.gov.vn", "127.0.0.1"]
        );
        assert!(!info.is_ca);
        assert!(matches!(info.expiry(Utc::now()), Expiry::Valid(89)));
        assert!(matches!(
            info.expiry(Utc::now() + chrono::Duration::days(70)),
            Expiry::Expiring(19)
        ));
        assert_eq!(
            info.expiry(Utc::now() + chrono::Duration::days(91)),
            Expiry::Expired
        );
        assert!(inspect(&issued.ca).unwrap()[0].is_ca);
        // The TLS stack takes them.
        crate::tls::TlsFiles::in_dir(&out, "n1").check().unwrap();
        // Issued again (a rotation): a new key, so a new pin.
        let again = ca.issue(&server("n1"), &out).unwrap();
        assert_ne!(again.info.pin, info.pin);
        assert_eq!(again.info.pin.len(), 64);
    }

    #[test]
    fn sites_get_client_certificates_named_by_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::init(dir.path(), DEFAULT_ORGANISATION).unwrap();
        let site = ca
            .issue(
                &IssueRequest {
                    name: "phu-thuy".into(),
                    usage: Usage::Client,
                    dns: vec![],
                    ips: vec![],
                    unit: Some("site".into()),
                    days: 30,
                },
                &dir.path().join("out"),
            )
            .unwrap();
        // The serial in the subject: every issued client certificate is its own identity.
        assert!(
            site.info.subject.starts_with("SERIALNUMBER=")
                && site
                    .info
                    .subject
                    .ends_with(",CN=phu-thuy,OU=site,O=Lienthong"),
            "{}",
            site.info.subject
        );
        assert!(site.info.names.is_empty());
        // A server certificate must name where it answers; names are checked.
        let mut bare = server("n2");
        bare.dns.clear();
        bare.ips.clear();
        assert!(ca.issue(&bare, dir.path()).is_err());
        assert!(ca.issue(&server("../evil"), dir.path()).is_err());
        let mut spaced = server("n4");
        spaced.dns = vec!["a b".into()];
        assert!(ca.issue(&spaced, dir.path()).is_err());
        assert!(
            is_dns_name("*.hub.phanthiet.gov.vn") && !is_dns_name("a..b") && !is_dns_name("-a")
        );
        // A life beyond the CA's is refused, not an overflow.
        let mut forever = server("n3");
        forever.days = u32::MAX;
        let e = ca.issue(&forever, dir.path()).unwrap_err().to_string();
        assert!(e.contains("3650 days at most"), "{e}");
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value(" #x "), "\\ #x\\ ");
        assert_eq!(escape_dn_value("#x"), "\\#x");
    }
}
