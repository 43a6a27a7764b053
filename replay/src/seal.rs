//! A read model's seal: a digest of everything its tree holds, kept with it, so that a
//! tree damaged on disk is found before it is served.
//!
//! sled checks its own log, but damage it does not see (bits changed in a value, a value
//! lost) would be served as figures. So each tree carries, under [`SEAL_KEY`], the XOR over
//! its entries — the projection's keys and its checkpoint; not the other `\0` keys, written
//! apart from the folds — of a 64-bit digest of each key and value (two CRC-32s with
//! different starts: what finds damage, cheap enough to run on every write; it is not meant
//! to stop someone who can write the disk, which the streams' audit chain is for). Each commit updates it in the same atomic
//! batch as the writes (the old entry's hash out, the new one's in: one read per key
//! written), so a tree whose contents no longer give its seal was changed outside the bus:
//! it is rebuilt from its stream, never served as it is.

use crate::error::Result;
use crate::store::CHECKPOINT_KEY;

/// Where a tree keeps its seal.
pub const SEAL_KEY: &[u8] = b"\0seal";

/// A seal's value: 8 bytes, XOR of the entries' digests.
pub type Seal = [u8; 8];

/// Whether `key` is covered by the seal.
pub fn sealed(key: &[u8]) -> bool {
    !key.starts_with(b"\0") || key == CHECKPOINT_KEY
}

/// The digest of one entry: CRC-32 of (key length, key, value) from two starts.
pub fn entry(key: &[u8], value: &[u8]) -> Seal {
    let digest = |init: u32| {
        let mut h = crc32fast::Hasher::new_with_initial(init);
        h.update(&(key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(value);
        h.finalize()
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&digest(0).to_be_bytes());
    out[4..].copy_from_slice(&digest(0x9e37_79b9).to_be_bytes());
    out
}

pub fn xor(seal: &mut Seal, other: &Seal) {
    for (a, b) in seal.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// The seal of what `tree` holds now.
pub fn compute(tree: &sled::Tree) -> Result<Seal> {
    let mut seal = [0u8; 8];
    for kv in tree.iter() {
        let (k, v) = kv?;
        if sealed(&k) {
            xor(&mut seal, &entry(&k, &v));
        }
    }
    Ok(seal)
}

/// The seal `tree` records: `None` for a tree written before seals (or never written).
pub fn recorded(tree: &sled::Tree) -> Result<Option<Seal>> {
    Ok(tree
        .get(SEAL_KEY)?
        .and_then(|v| <Seal>::try_from(v.as_ref()).ok()))
}

/// What a check of a tree found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its contents give its seal.
    Intact,
    /// It had no seal (written before seals, or empty): it is sealed now, as it is.
    Sealed,
    /// Its contents do not give its seal: changed outside the bus.
    Damaged { recorded: String, found: String },
}

/// Checks `tree` against its seal (and seals a tree that has none).
pub fn check(tree: &sled::Tree) -> Result<Check> {
    let found = compute(tree)?;
    match recorded(tree)? {
        Some(r) if r == found => Ok(Check::Intact),
        Some(r) => Ok(Check::Damaged {
            recorded: hex::encode(r),
            found: hex::encode(found),
        }),
        None => {
            tree.insert(SEAL_KEY, &found[..])?;
            Ok(Check::Sealed)
        }
    }
}
