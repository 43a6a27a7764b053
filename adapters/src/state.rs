//! Adapter state in the `ADAPTER_STATE` bucket: JSON values under `<subsystem>.<name>` keys,
//! so adapters are stateless processes that can be restarted or moved at will.

use async_nats::jetstream::{self, kv};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::AdapterError;

/// One adapter's corner of `ADAPTER_STATE`.
#[derive(Clone)]
pub struct AdapterState {
    kv: kv::Store,
    subsystem: &'static str,
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

impl AdapterState {
    pub async fn open(
        js: &jetstream::Context,
        subsystem: &'static str,
    ) -> Result<Self, AdapterError> {
        let kv = js
            .get_key_value(lienthong_bus::topology::ADAPTER_STATE_BUCKET)
            .await
            .map_err(|e| {
                state_err(
                    "ADAPTER_STATE",
                    format!("{e} (run `lienthong streams provision`)"),
                )
            })?;
        Ok(Self { kv, subsystem })
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.subsystem)
    }

    /// The value under `<subsystem>.<name>`, if any.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, AdapterError> {
        let key = self.key(name);
        match self.kv.get(&key).await.map_err(|e| state_err(&key, e))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| state_err(&key, e)),
            None => Ok(None),
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
