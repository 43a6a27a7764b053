//! Which components of a running bus are down now, for `/healthz` (shared by the process that
//! supervises them, e.g. `lienthong up`, and the replay service that answers `/healthz`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Components and, for those that are down, why.
#[derive(Debug, Clone, Default)]
pub struct Components(Arc<Mutex<BTreeMap<String, String>>>);

impl Components {
    pub fn new() -> Self {
        Self::default()
    }

    /// `component` is down, for `reason`.
    pub fn down(&self, component: &str, reason: impl Into<String>) {
        if let Ok(mut down) = self.0.lock() {
            down.insert(component.to_string(), reason.into());
        }
    }

    /// `component` is up again.
    pub fn up(&self, component: &str) {
        if let Ok(mut down) = self.0.lock() {
            down.remove(component);
        }
    }

    /// The components down now, with why.
    pub fn down_now(&self) -> BTreeMap<String, String> {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_up_again() {
        let c = Components::new();
        c.down("nats-server", "exited (signal 9)");
        assert_eq!(c.down_now()["nats-server"], "exited (signal 9)");
        c.clone().up("nats-server");
        assert!(c.down_now().is_empty());
    }
}

/// Space on the filesystem of a store's folder, and when it counts as full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// The filesystem's size.
    pub size: u64,
}

impl DiskSpace {
    /// Below this much free space a store counts as full: a hundredth of the filesystem, at
    /// least 1 MiB and at most 64 MiB (a store writes in blocks of several MiB; less than
    /// that left and its next block may not fit).
    pub fn full_below(&self) -> u64 {
        (self.size / 100).clamp(1 << 20, 64 << 20)
    }

    /// The space of the filesystem `path` is on. A filesystem out of files (inodes) counts
    /// as having no space: nothing more can be written there either.
    pub fn of(path: &std::path::Path) -> Option<Self> {
        let st = nix::sys::statvfs::statvfs(path).ok()?;
        let block = st.fragment_size() as u64;
        let (files, files_free) = (st.files() as u64, st.files_available() as u64);
        let out_of_files = files > 0 && files_free < (files / 1000).clamp(16, 4096);
        Some(Self {
            free: if out_of_files {
                0
            } else {
                st.blocks_available() as u64 * block
            },
            size: st.blocks() as u64 * block,
        })
    }

    /// Full, or about to be: less than [`DiskSpace::full_below`] left.
    pub fn nearly_full(&self) -> bool {
        self.free < self.full_below()
    }

    /// The free space a store waits for before it resumes: twice what counts as full, or a
    /// tenth of the filesystem if more (at most 128 MiB).
    pub fn room_to_resume(&self) -> u64 {
        (self.size / 10).clamp(2 * self.full_below(), 128 << 20)
    }

    /// Whether there is that room now.
    pub fn has_room(&self) -> bool {
        self.free >= self.room_to_resume()
    }
}

#[cfg(test)]
mod disk_tests {
    use super::DiskSpace;

    #[test]
    fn full_and_room_to_resume_scale_with_the_filesystem() {
        let mib = 1u64 << 20;
        let small = DiskSpace {
            free: 512 * 1024,
            size: 64 * mib,
        };
        assert!(small.nearly_full());
        assert_eq!(small.full_below(), mib);
        assert!(small.room_to_resume() >= 2 * mib);
        let big = DiskSpace {
            free: 100 * mib,
            size: 1 << 40,
        };
        assert!(!big.nearly_full());
        assert_eq!(big.full_below(), 64 * mib);
        assert_eq!(big.room_to_resume(), 128 * mib);
        assert!(!DiskSpace {
            free: 128 * mib,
            size: 1 << 40
        }
        .nearly_full());
    }
}
