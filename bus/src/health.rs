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
