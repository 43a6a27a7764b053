//! What only the deliverer may know of a subscription: the receiver's full URL (which may
//! hold a token in its query string) and the signing secret. Kept in a file readable by its
//! owner only, `<credentials>/webhooks/<agency>.<name>.json`; never on the bus (the
//! registry's event has the URL without query string or user information).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::signature::Secret;
use crate::DeliverError;
use lienthong_bus::agencies::events::Mode;

/// A subscription's private part.
#[derive(Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: url::Url,
    /// `whsec_…`.
    pub secret: String,
    pub mode: Mode,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redacted(&self.url))
            .field("mode", &self.mode)
            .finish()
    }
}

impl Endpoint {
    pub fn secret(&self) -> Result<Secret, DeliverError> {
        Secret::parse(&self.secret)
    }
}

/// The URL as the registry records it: no user information, query string or fragment.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Where the private parts of subscriptions are kept.
#[derive(Debug, Clone)]
pub struct EndpointStore {
    dir: PathBuf,
}

impl EndpointStore {
    /// Under `<credentials_dir>/webhooks/`.
    pub fn new(credentials_dir: &Path) -> Self {
        Self {
            dir: credentials_dir.join("webhooks"),
        }
    }

    fn path(&self, subscription: &str) -> PathBuf {
        self.dir.join(format!("{subscription}.json"))
    }

    pub fn put(&self, subscription: &str, endpoint: &Endpoint) -> Result<(), DeliverError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| DeliverError::Io(format!("creating {}", self.dir.display()), e))?;
        let body = serde_json::to_string_pretty(endpoint).expect("serialises");
        lienthong_bus::credentials::write_private(&self.path(subscription), &body)?;
        Ok(())
    }

    pub fn get(&self, subscription: &str) -> Result<Endpoint, DeliverError> {
        let path = self.path(subscription);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            DeliverError::Io(
                format!(
                    "reading {} (the subscription's URL and secret; it is written where `lienthong agency subscribe` ran)",
                    path.display()
                ),
                e,
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| DeliverError::Secret(format!("{}: {e}", path.display())))
    }

    pub fn remove(&self, subscription: &str) {
        let _ = std::fs::remove_file(self.path(subscription));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_and_endpoints_round_trip_privately() {
        let u: url::Url = "https://bot:pw@health.example.vn/hook?token=s3cret#x"
            .parse()
            .unwrap();
        assert_eq!(redacted(&u), "https://health.example.vn/hook");
        let dir = tempfile::tempdir().unwrap();
        let store = EndpointStore::new(dir.path());
        let e = Endpoint {
            url: u,
            secret: Secret::generate().to_text(),
            mode: Mode::Binary,
        };
        store.put("health.hook", &e).unwrap();
        let back = store.get("health.hook").unwrap();
        assert_eq!(back.url, e.url);
        assert!(!format!("{back:?}").contains("s3cret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("webhooks/health.hook.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        store.remove("health.hook");
        assert!(store.get("health.hook").is_err());
    }
}
