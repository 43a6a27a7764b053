//! Adapter state in the `ADAPTER_STATE` bucket: JSON values under
//! `<subsystem>.<instance>.<name>` keys, so adapters are stateless processes that can be
//! restarted or moved at will, and two instances of one adapter (two districts' Open311
//! endpoints, two CKAN portals) never touch each other's cursor or memory.
//!
//! The instance is named in the adapter's configuration (`instance`), or derived from its
//! `source` ([`instance_name`]). State written before instances existed (keys
//! `<subsystem>.<name>`) is taken over by the first instance that opens the bucket, once:
//! it records the claim under `<subsystem>.legacy-claimed-by`, and reads fall back to the old
//! keys for that instance only.

use async_nats::jetstream::kv;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::AdapterError;

/// One adapter instance's corner of `ADAPTER_STATE`.
#[derive(Clone)]
pub struct AdapterState {
    kv: kv::Store,
    /// `<subsystem>.<instance>`.
    prefix: String,
    /// `<subsystem>`, when this instance took over the state of before instances.
    legacy: Option<String>,
}

fn state_err(key: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::State {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// A KV-safe key for any text (KV keys allow only `[-/_=.a-zA-Z0-9]`).
pub fn hashed(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

/// The instance name for a configured name or a `source`: the configured name as is (it must
/// be `[a-z0-9_-]`, 1–64), else the source's letters and digits when they fit (64), else a
/// digest of it.
pub fn instance_name(configured: Option<&str>, source: &str) -> Result<String, AdapterError> {
    if let Some(name) = configured {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        return if ok {
            Ok(name.to_string())
        } else {
            Err(AdapterError::Config(format!(
                "instance {name:?}: use 1-64 of a-z, 0-9, - and _"
            )))
        };
    }
    let readable: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let readable = readable.trim_matches('_').to_string();
    Ok(if !readable.is_empty() && readable.len() <= 64 {
        readable
    } else {
        format!("src-{}", hashed(source))
    })
}

impl AdapterState {
    /// Opens the state of `subsystem`'s instance `instance` (see [`instance_name`]).
    pub async fn open(
        ctx: &crate::AdapterContext,
        subsystem: &str,
        instance: &str,
    ) -> Result<Self, AdapterError> {
        let opening = async {
            let kv = ctx
                .js
                .get_key_value(lienthong_bus::topology::ADAPTER_STATE_BUCKET)
                .await
                .map_err(|e| {
                    state_err(
                        "ADAPTER_STATE",
                        format!("{e} (run `lienthong streams provision`)"),
                    )
                })?;
            // Take over the state of before instances, if nobody has.
            let claim = format!("{subsystem}.legacy-claimed-by");
            let claimed_by = match kv.create(&claim, instance.as_bytes().to_vec().into()).await {
                Ok(_) => Some(instance.to_string()),
                Err(_) => kv
                    .get(&claim)
                    .await
                    .map_err(|e| state_err(&claim, e))?
                    .map(|v| String::from_utf8_lossy(&v).into_owned()),
            };
            Ok::<_, AdapterError>((kv, claimed_by))
        };
        // A role that may not keep this subsystem's state is told at once.
        let refused = ctx.refusals.watch(|_| true);
        let (kv, claimed_by) = tokio::select! {
            biased;
            r = opening => r?,
            refusal = refused => return Err(lienthong_bus::BusError::from(refusal).into()),
        };
        Ok(Self {
            kv,
            prefix: format!("{subsystem}.{instance}"),
            legacy: (claimed_by.as_deref() == Some(instance)).then(|| subsystem.to_string()),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The value under `<subsystem>.<instance>.<name>`, if any.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, AdapterError> {
        let key = self.key(name);
        let mut found = self.kv.get(&key).await.map_err(|e| state_err(&key, e))?;
        if found.is_none() {
            if let Some(legacy) = &self.legacy {
                let old = format!("{legacy}.{name}");
                found = self.kv.get(&old).await.map_err(|e| state_err(&old, e))?;
            }
        }
        match found {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| state_err(&key, e)),
            None => Ok(None),
        }
    }

    /// Whether `name` is seen for the first time (it is then marked, atomically): for what
    /// must happen once per record, such as dead-lettering an unreadable record a source lists
    /// on every poll.
    pub async fn first_time(&self, name: &str) -> Result<bool, AdapterError> {
        let key = self.key(name);
        match self.kv.create(&key, b"1".to_vec().into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(state_err(&key, e)),
        }
    }

    pub async fn put<T: Serialize>(&self, name: &str, value: &T) -> Result<(), AdapterError> {
        let key = self.key(name);
        let body = serde_json::to_vec(value).map_err(|e| state_err(&key, e))?;
        self.kv
            .put(&key, body.into())
            .await
            .map_err(|e| state_err(&key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_kv_safe_and_stable() {
        assert_eq!(
            instance_name(None, "urn:lienthong:phanthiet:field_reports").unwrap(),
            "urn_lienthong_phanthiet_field_reports"
        );
        let long = format!("https://{}.example/open311", "x".repeat(80));
        let n = instance_name(None, &long).unwrap();
        assert!(n.starts_with("src-") && n == instance_name(None, &long).unwrap());
        assert_eq!(instance_name(Some("ham-thuan"), "x").unwrap(), "ham-thuan");
        assert!(instance_name(Some("Hàm Thuận"), "x").is_err());
        assert!(instance_name(Some("a.b"), "x").is_err());
    }
}
