//! The read store: one sled database, one tree per projection *generation*.
//!
//! The `meta` tree maps `current/<projection>` to the tree being served
//! (`<projection>@<generation>`). A rebuild writes a new generation beside the live one and
//! then swaps the pointer, so readers keep getting answers during a full rebuild, and the
//! live consumer and a rebuild never share a checkpoint: each generation carries its own.
//!
//! Within a tree, the projection's writes and its checkpoint (the last applied stream
//! sequence, under [`CHECKPOINT_KEY`]) are committed in one atomic sled batch.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{ReplayError, Result};

/// Where a generation keeps its checkpoint. Projection keys never start with `\0`.
pub const CHECKPOINT_KEY: &[u8] = b"\0checkpoint";

#[derive(Clone)]
pub struct ReadStore {
    db: sled::Db,
    meta: sled::Tree,
}

impl std::fmt::Debug for ReadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStore").finish_non_exhaustive()
    }
}

impl ReadStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|e| ReplayError::Open {
                path: path.display().to_string(),
                reason: match &e {
                    sled::Error::Io(io)
                        if io.kind() == std::io::ErrorKind::WouldBlock
                            || io.to_string().contains("could not acquire lock") =>
                    {
                        "it is in use by another process (is `lienthong replay serve` or `up` running on it?)".into()
                    }
                    other => other.to_string(),
                },
            })?;
        Self::from_db(db)
    }

    /// A store that lives in memory only (tests, benchmarks).
    pub fn temporary() -> Result<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        let meta = db.open_tree("meta")?;
        Ok(Self { db, meta })
    }

    fn pointer_key(projection: &str) -> Vec<u8> {
        format!("current/{projection}").into_bytes()
    }

    /// The name of the tree served for `projection`, if any.
    pub fn current_name(&self, projection: &str) -> Result<Option<String>> {
        Ok(self
            .meta
            .get(Self::pointer_key(projection))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The tree served for `projection`, creating generation 1 on first use.
    pub fn current(&self, projection: &str) -> Result<sled::Tree> {
        let name = match self.current_name(projection)? {
            Some(n) => n,
            None => {
                let n = format!("{projection}@1");
                // Only set it if nobody did meanwhile.
                let _ = self.meta.compare_and_swap(
                    Self::pointer_key(projection),
                    None as Option<&[u8]>,
                    Some(n.as_bytes()),
                )?;
                self.current_name(projection)?.unwrap_or(n)
            }
        };
        Ok(self.db.open_tree(name)?)
    }

    /// A fresh, empty generation for a rebuild; not served until [`ReadStore::swap`].
    pub fn new_generation(&self, projection: &str) -> Result<(String, sled::Tree)> {
        let current = self.current_name(projection)?;
        let next = current
            .as_deref()
            .and_then(|n| n.rsplit_once('@'))
            .and_then(|(_, g)| g.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let name = format!("{projection}@{next}");
        self.db.drop_tree(&name)?;
        let tree = self.db.open_tree(&name)?;
        Ok((name, tree))
    }

    /// Serves `name` for `projection` from now on and drops the previous generation.
    pub fn swap(&self, projection: &str, name: &str) -> Result<()> {
        let old = self
            .meta
            .insert(Self::pointer_key(projection), name.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        self.db.flush()?;
        if let Some(old) = old.filter(|o| o != name) {
            self.db.drop_tree(old)?;
        }
        Ok(())
    }

    /// Records the point in time a rebuilt generation shows (none: the present).
    pub fn set_point_in_time(
        &self,
        projection: &str,
        at: &crate::runner::PointInTime,
    ) -> Result<()> {
        let key = format!("point_in_time/{projection}");
        let mut parts = Vec::new();
        if let Some(t) = at.as_of {
            parts.push(format!("as_of={}", t.to_rfc3339()));
        }
        if let Some(n) = at.until_seq {
            parts.push(format!("until_seq={n}"));
        }
        if parts.is_empty() {
            self.meta.remove(key)?;
        } else {
            self.meta.insert(key, parts.join(" ").as_bytes())?;
        }
        Ok(())
    }

    /// The point in time a projection's served generation shows, if it is not the present.
    pub fn point_in_time(&self, projection: &str) -> Result<Option<String>> {
        Ok(self
            .meta
            .get(format!("point_in_time/{projection}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// The last stream sequence applied to `tree` (0: nothing yet).
pub fn checkpoint(tree: &sled::Tree) -> Result<u64> {
    Ok(tree
        .get(CHECKPOINT_KEY)?
        .map(|v| decode_u64(&v))
        .unwrap_or(0))
}

pub fn decode_u64(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// A read-through write batch over one tree: reads see the batch's own writes, and
/// [`Changes::commit`] applies them together with the checkpoint, atomically.
pub struct Changes<'a> {
    tree: &'a sled::Tree,
    /// Written in this batch (`None`: removed). Order does not matter: the batch is applied
    /// as one.
    pending: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Changes<'a> {
    pub fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            pending: HashMap::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(key, |v| v.map(<[u8]>::to_vec))
    }

    /// Looks at the current value under `key` without copying it.
    fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Result<R> {
        match self.pending.get(key) {
            Some(v) => Ok(f(v.as_deref())),
            None => Ok(f(self.tree.get(key)?.as_deref())),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.pending.insert(key, None);
    }

    /// Adds `delta` to the counter under `key` (removed when it reaches 0).
    pub fn add(&mut self, key: Vec<u8>, delta: i64) -> Result<()> {
        let now = self.read(&key, |v| v.map(decode_u64).unwrap_or(0))? as i64 + delta;
        if now <= 0 {
            self.remove(key);
        } else {
            self.put(key, (now as u64).to_be_bytes().to_vec());
        }
        Ok(())
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.read(key, |v| match v {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v)
                .map(Some)
                .map_err(|e| ReplayError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                }),
        })?
    }

    pub fn put_json<T: serde::Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| ReplayError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?;
        self.put(key, bytes);
        Ok(())
    }

    /// Applies every write and the checkpoint `sequence` in one atomic batch.
    pub fn commit(self, sequence: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(CHECKPOINT_KEY, &sequence.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_read_their_own_writes_and_commit_with_the_checkpoint() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current("p").unwrap();
        let mut c = Changes::new(&tree);
        c.add(b"n".to_vec(), 2).unwrap();
        c.add(b"n".to_vec(), 3).unwrap();
        assert_eq!(decode_u64(&c.get(b"n").unwrap().unwrap()), 5);
        assert!(tree.get(b"n").unwrap().is_none(), "nothing before commit");
        c.commit(42).unwrap();
        assert_eq!(decode_u64(&tree.get(b"n").unwrap().unwrap()), 5);
        assert_eq!(checkpoint(&tree).unwrap(), 42);
    }

    #[test]
    fn generations_swap() {
        let store = ReadStore::temporary().unwrap();
        let live = store.current("p").unwrap();
        live.insert(b"k", b"old").unwrap();
        let (name, next) = store.new_generation("p").unwrap();
        assert_eq!(name, "p@2");
        next.insert(b"k", b"new").unwrap();
        assert_eq!(
            store.current("p").unwrap().get(b"k").unwrap().unwrap(),
            b"old"
        );
        store.swap("p", &name).unwrap();
        assert_eq!(
            store.current("p").unwrap().get(b"k").unwrap().unwrap(),
            b"new"
        );
        assert_eq!(store.current_name("p").unwrap().unwrap(), "p@2");
    }
}
