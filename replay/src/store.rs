//! The read store: one sled database, one tree per projection *generation*.
//!
//! The `meta` tree maps `current/<projection>` to the tree being served
//! (`<projection>@<generation>`). A rebuild writes a new generation beside the live one and
//! then swaps the pointer, so readers keep getting answers during a full rebuild, and the
//! live consumer and a rebuild never share a checkpoint: each generation carries its own.
//!
//! Within a tree, the projection's writes and its checkpoint (the last applied stream
//! sequence, under [`CHECKPOINT_KEY`]) are committed in one atomic sled batch.

// Keyed by what events name (report ids, wards): foldhash is several times faster than
// SipHash and still seeded per map, so crafted keys cannot be aimed at one bucket.
use foldhash::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{ReplayError, Result};
use crate::seal;

/// Where a point-in-time rebuild stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointInTime {
    /// Only events whose CloudEvents `time` (when it happened) is at or before this.
    pub as_of: Option<DateTime<Utc>>,
    /// Only stream sequences up to this one.
    pub until_seq: Option<u64>,
}

/// How an open refused for a full disk begins (never taken for damage).
const DISK_FULL: &str = "its disk is full";

/// Where a generation keeps its checkpoint. Projection keys never start with `\0`.
pub const CHECKPOINT_KEY: &[u8] = b"\0checkpoint";
/// Where a tree records the version of the projection that wrote it (absent: 1).
pub const VERSION_KEY: &[u8] = b"\0version";

#[derive(Clone)]
pub struct ReadStore {
    db: sled::Db,
    meta: sled::Tree,
    /// What was found damaged when it was opened, and done about it.
    repairs: std::sync::Arc<Vec<String>>,
    /// Its folder (none: in memory).
    path: Option<std::path::PathBuf>,
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
            // Read models are small and rewritten whole by rebuilds: faster writes are
            // worth more than the space sled's compacting mode saves.
            .mode(sled::Mode::HighThroughput)
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
                    e if crate::error::sled_storage_full(e) => format!("{DISK_FULL}: {e}"),
                    other => other.to_string(),
                },
            })?;
        let mut store = Self::from_db(db)?;
        store.path = Some(path.to_path_buf());
        Ok(store)
    }

    /// Its folder (none for a store in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A store that lives in memory only (tests, benchmarks).
    pub fn temporary() -> Result<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        let meta = db.open_tree("meta")?;
        Ok(Self {
            db,
            meta,
            repairs: Default::default(),
            path: None,
        })
    }

    /// Opens the store in `path`, and never serves damage: a store that cannot be opened
    /// (other than one in use) is set aside (`<path>.damaged-<time>`) and a new one made; a
    /// read model whose contents do not give its seal ([`crate::seal`]) is emptied, to be
    /// folded again from its stream. What was found is logged, kept ([`ReadStore::repairs`])
    /// and shown by `/healthz`.
    pub fn open_checked(path: &Path) -> Result<Self> {
        let mut repairs = Vec::new();
        let opened = std::panic::catch_unwind(|| Self::open(path)).unwrap_or_else(|_| {
            Err(ReplayError::Open {
                path: path.display().to_string(),
                reason: "sled stopped reading it (a panic)".into(),
            })
        });
        let store = match opened {
            Ok(s) => s,
            // In use, or its disk full: not damage; nothing is set aside.
            Err(ReplayError::Open { reason, .. })
                if reason.contains("in use") || reason.starts_with(DISK_FULL) =>
            {
                return Self::open(path)
            }
            Err(e) => {
                let aside = path.with_file_name(format!(
                    "{}.damaged-{}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default(),
                    Utc::now().format("%Y%m%dT%H%M%SZ")
                ));
                std::fs::rename(path, &aside).map_err(|io| ReplayError::Open {
                    path: path.display().to_string(),
                    reason: format!("{e}; and it could not be set aside: {io}"),
                })?;
                let what = format!(
                    "the read models' store {} could not be opened ({e}): set aside as {}; every read model is folded again from its stream",
                    path.display(),
                    aside.display()
                );
                tracing::error!("{what}");
                repairs.push(what);
                Self::open(path)?
            }
        };
        let projections: Vec<String> = store
            .meta
            .scan_prefix(b"current/")
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| String::from_utf8_lossy(&k["current/".len()..]).into_owned())
            .collect();
        for p in projections {
            let tree = store.current(&p)?;
            if let seal::Check::Damaged { recorded, found } = seal::check(&tree)? {
                let (name, _) = store.new_generation(&p)?;
                store.swap(&p, &name)?;
                let what = format!(
                    "read model {p} was damaged on disk (its contents give seal {found}…, it recorded {recorded}…): emptied, folded again from its stream, never served as it was"
                );
                tracing::error!("{what}");
                repairs.push(what);
            }
        }
        Ok(Self {
            repairs: std::sync::Arc::new(repairs),
            ..store
        })
    }

    /// What [`ReadStore::open_checked`] found damaged, and did.
    pub fn repairs(&self) -> &[String] {
        &self.repairs
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
    pub fn set_point_in_time(&self, projection: &str, at: &PointInTime) -> Result<()> {
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

/// The version of the projection that wrote `tree`.
pub fn version(tree: &sled::Tree) -> Result<u32> {
    Ok(tree
        .get(VERSION_KEY)?
        .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
        .map(u32::from_be_bytes)
        .unwrap_or(1))
}

/// Records the version of the projection that writes `tree`.
pub fn set_version(tree: &sled::Tree, version: u32) -> Result<()> {
    tree.insert(VERSION_KEY, &version.to_be_bytes())?;
    Ok(())
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
///
/// Values written with [`Changes::put_json`] stay decoded until the commit: an aggregate
/// that several events of a batch touch is parsed once and encoded once, not per event.
pub struct Changes<'a> {
    tree: &'a sled::Tree,
    /// Written in this batch. Order does not matter: the batch is applied as one.
    pending: HashMap<Vec<u8>, Pending>,
    /// Values a fold keeps decoded from one batch to the next.
    decoded: Option<&'a mut DecodedValues>,
    /// The seal digest of the committed value of keys already read (`None`: absent), so
    /// that the commit need not read them again to update the seal.
    old: std::cell::RefCell<HashMap<Vec<u8>, Option<seal::Seal>>>,
}

/// Values kept decoded from one batch to the next by a fold — the only writer of its tree —
/// so that an aggregate many batches touch is not parsed again for each. Bounded: emptied
/// when it grows past its capacity.
pub struct DecodedValues {
    values: HashMap<Vec<u8>, Box<dyn JsonValue>>,
    /// The seal digest of each kept value as committed.
    digests: HashMap<Vec<u8>, seal::Seal>,
    capacity: usize,
}

impl DecodedValues {
    pub fn new(capacity: usize) -> Self {
        Self {
            values: HashMap::default(),
            digests: HashMap::default(),
            capacity,
        }
    }
}

enum Pending {
    Removed,
    Bytes(Vec<u8>),
    /// A value kept decoded, encoded as JSON at the commit.
    Json(Box<dyn JsonValue>),
}

/// A decoded value `Changes` can hand back by type and encode at the commit.
trait JsonValue: Send {
    fn as_any(&self) -> &dyn std::any::Any;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
    fn encode(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: serde::Serialize + Send + 'static> JsonValue for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
    fn encode(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

impl<'a> Changes<'a> {
    pub fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            pending: HashMap::default(),
            decoded: None,
            old: Default::default(),
        }
    }

    /// A batch that reads values kept decoded by earlier batches of the same fold, and
    /// leaves its own there when committed.
    pub fn with_decoded(tree: &'a sled::Tree, decoded: &'a mut DecodedValues) -> Self {
        Self {
            tree,
            pending: HashMap::default(),
            decoded: Some(decoded),
            old: Default::default(),
        }
    }

    /// A value kept decoded, by this batch or an earlier one.
    fn decoded(&self, key: &[u8]) -> Option<&dyn JsonValue> {
        match self.pending.get(key) {
            Some(Pending::Json(v)) => Some(v.as_ref()),
            Some(_) => None,
            None => self
                .decoded
                .as_ref()
                .and_then(|d| d.values.get(key))
                .map(|v| v.as_ref()),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(key, |v| v.map(<[u8]>::to_vec))
    }

    /// Looks at the current bytes under `key`, without copying them when they are bytes.
    fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Result<R> {
        if let Some(v) = self.decoded(key) {
            return Ok(f(Some(&encode(key, v)?)));
        }
        match self.pending.get(key) {
            Some(Pending::Removed) => Ok(f(None)),
            Some(Pending::Bytes(v)) => Ok(f(Some(v))),
            _ => {
                let committed = self.tree.get(key)?;
                self.remember(key, committed.as_deref());
                Ok(f(committed.as_deref()))
            }
        }
    }

    /// Remembers the seal digest of `key`'s committed value, read from the tree.
    fn remember(&self, key: &[u8], committed: Option<&[u8]>) {
        if seal::sealed(key) {
            self.old
                .borrow_mut()
                .entry(key.to_vec())
                .or_insert_with(|| committed.map(|v| seal::entry(key, v)));
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Pending::Bytes(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.pending.insert(key, Pending::Removed);
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

    /// The JSON value under `key` as a `T`.
    ///
    /// A value an earlier batch left decoded is handed over rather than copied (the tree
    /// holds its committed bytes, so a later read decodes it again if it is not written
    /// back); one written in this batch is copied.
    pub fn get_json<T>(&mut self, key: &[u8]) -> Result<Option<T>>
    where
        T: serde::de::DeserializeOwned + Clone + 'static,
    {
        if !self.pending.contains_key(key) {
            if let Some(d) = self.decoded.as_deref_mut() {
                if d.values.get(key).is_some_and(|v| v.as_any().is::<T>()) {
                    if let Some(Ok(t)) = d.values.remove(key).map(|v| v.into_any().downcast::<T>())
                    {
                        if let Some(digest) = d.digests.remove(key) {
                            self.old
                                .borrow_mut()
                                .entry(key.to_vec())
                                .or_insert(Some(digest));
                        }
                        return Ok(Some(*t));
                    }
                }
            }
        }
        if let Some(t) = self
            .decoded(key)
            .and_then(|v| v.as_any().downcast_ref::<T>())
        {
            return Ok(Some(t.clone()));
        }
        self.read(key, |v| match v {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v)
                .map(Some)
                .map_err(|e| corrupt(key, e)),
        })?
    }

    /// Writes `value` under `key` as JSON (kept decoded until the commit).
    pub fn put_json<T>(&mut self, key: Vec<u8>, value: T) -> Result<()>
    where
        T: serde::Serialize + Send + 'static,
    {
        self.pending.insert(key, Pending::Json(Box::new(value)));
        Ok(())
    }

    /// Applies every write and the checkpoint `sequence` in one atomic batch, with the
    /// tree's seal brought up to date ([`crate::seal`]).
    pub fn commit(self, sequence: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        let keeping = self.decoded.is_some();
        let (mut kept, mut stale) = (Vec::new(), Vec::new());
        let mut seal = match seal::recorded(self.tree)? {
            Some(s) => s,
            None => seal::compute(self.tree)?,
        };
        let tree = self.tree;
        let mut known = self.old.into_inner();
        let committed_digests = self.decoded.as_ref().map(|d| &d.digests);
        let mut new_digests: Vec<(Vec<u8>, seal::Seal)> = Vec::new();
        // The old entry's digest out (read now only if it was never read), the new one's in.
        let mut reseal = |k: &[u8], new: Option<&[u8]>| -> Result<Option<seal::Seal>> {
            let old = match known.remove(k) {
                Some(d) => d,
                None => match committed_digests.and_then(|d| d.get(k)) {
                    Some(d) => Some(*d),
                    None => tree.get(k)?.map(|v| seal::entry(k, &v)),
                },
            };
            if let Some(old) = old {
                seal::xor(&mut seal, &old);
            }
            let new = new.map(|v| seal::entry(k, v));
            if let Some(new) = &new {
                seal::xor(&mut seal, new);
            }
            Ok(new)
        };
        for (k, v) in self.pending {
            match v {
                Pending::Removed => {
                    reseal(&k, None)?;
                    batch.remove(k.as_slice())
                }
                Pending::Bytes(v) => {
                    reseal(&k, Some(&v))?;
                    batch.insert(k.as_slice(), v)
                }
                Pending::Json(v) => {
                    let bytes = encode(&k, v.as_ref())?;
                    let digest = reseal(&k, Some(&bytes))?;
                    batch.insert(k.as_slice(), bytes);
                    if keeping {
                        if let Some(d) = digest {
                            new_digests.push((k.clone(), d));
                        }
                        kept.push((k, v));
                    }
                    continue;
                }
            }
            if keeping {
                stale.push(k);
            }
        }
        let checkpoint = sequence.to_be_bytes();
        reseal(CHECKPOINT_KEY, Some(&checkpoint))?;
        batch.insert(CHECKPOINT_KEY, &checkpoint);
        batch.insert(seal::SEAL_KEY, &seal);
        self.tree.apply_batch(batch)?;
        // What is stored now, and only that, stays decoded for the next batch.
        if let Some(d) = self.decoded {
            for k in stale {
                d.values.remove(&k);
                d.digests.remove(&k);
            }
            d.values.extend(kept);
            d.digests.extend(new_digests);
            if d.values.len() > d.capacity {
                d.values.clear();
                d.digests.clear();
            }
        }
        Ok(())
    }
}

fn encode(key: &[u8], v: &dyn JsonValue) -> Result<Vec<u8>> {
    v.encode().map_err(|e| corrupt(key, e))
}

fn corrupt(key: &[u8], e: serde_json::Error) -> ReplayError {
    ReplayError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
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
    fn values_kept_decoded_read_back_and_commit_as_json() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current("p").unwrap();
        let mut c = Changes::new(&tree);
        c.put_json(b"v".to_vec(), vec![1u32, 2]).unwrap();
        assert_eq!(c.get_json::<Vec<u32>>(b"v").unwrap(), Some(vec![1, 2]));
        // Read as another type or as bytes: encoded on the way.
        assert_eq!(
            c.get_json::<serde_json::Value>(b"v").unwrap(),
            Some(serde_json::json!([1, 2]))
        );
        assert_eq!(c.get(b"v").unwrap().unwrap(), b"[1,2]");
        c.remove(b"v".to_vec());
        assert_eq!(c.get_json::<Vec<u32>>(b"v").unwrap(), None);
        c.put_json(b"v".to_vec(), vec![3u32]).unwrap();
        c.commit(7).unwrap();
        assert_eq!(tree.get(b"v").unwrap().unwrap(), b"[3]");
        let mut c = Changes::new(&tree);
        assert_eq!(c.get_json::<Vec<u32>>(b"v").unwrap(), Some(vec![3]));
    }

    #[test]
    fn values_stay_decoded_across_batches_of_one_fold() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current("p").unwrap();
        let mut decoded = DecodedValues::new(10);
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        c.put_json(b"a".to_vec(), vec![1u32]).unwrap();
        c.put_json(b"b".to_vec(), vec![2u32]).unwrap();
        c.commit(1).unwrap();
        assert_eq!(decoded.values.len(), 2);
        // A later batch reads them decoded; bytes written over one replace it.
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        assert_eq!(c.get_json::<Vec<u32>>(b"a").unwrap(), Some(vec![1]));
        c.put(b"b".to_vec(), b"[5]".to_vec());
        c.remove(b"a".to_vec());
        assert_eq!(c.get_json::<Vec<u32>>(b"b").unwrap(), Some(vec![5]));
        c.commit(2).unwrap();
        assert!(decoded.values.is_empty());
        assert_eq!(tree.get(b"b").unwrap().unwrap(), b"[5]");
        assert!(tree.get(b"a").unwrap().is_none());
        // Bounded: past its capacity it is emptied (the tree has everything).
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        for i in 0..11u32 {
            c.put_json(vec![b'k', i as u8], i).unwrap();
        }
        c.commit(3).unwrap();
        assert!(decoded.values.is_empty());
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        assert_eq!(c.get_json::<u32>(&[b'k', 10]).unwrap(), Some(10));
    }

    #[test]
    fn a_value_handed_over_and_not_written_back_is_read_again_from_the_tree() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current("p").unwrap();
        let mut decoded = DecodedValues::new(10);
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        c.put_json(b"a".to_vec(), vec![1u32, 2]).unwrap();
        c.commit(1).unwrap();
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        // Handed over (not copied): no longer kept decoded…
        assert_eq!(c.get_json::<Vec<u32>>(b"a").unwrap(), Some(vec![1, 2]));
        // …yet read again, as bytes or decoded, from what is committed.
        assert_eq!(c.get_json::<Vec<u32>>(b"a").unwrap(), Some(vec![1, 2]));
        assert_eq!(c.get(b"a").unwrap().unwrap(), b"[1,2]");
        c.commit(2).unwrap();
        assert_eq!(tree.get(b"a").unwrap().unwrap(), b"[1,2]");
        // Written in this batch: copied, so the batch still writes it.
        let mut c = Changes::with_decoded(&tree, &mut decoded);
        c.put_json(b"b".to_vec(), vec![7u32]).unwrap();
        assert_eq!(c.get_json::<Vec<u32>>(b"b").unwrap(), Some(vec![7]));
        c.commit(3).unwrap();
        assert_eq!(tree.get(b"b").unwrap().unwrap(), b"[7]");
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
