//! Stopping long-running work together: one trigger, any number of clonable [`Shutdown`]
//! handles whose [`Shutdown::signalled`] futures complete when it fires (or is dropped).

use std::future::Future;

use tokio::sync::watch;

/// Fires the shutdown of every handle made from it. Dropping it fires too.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A handle on a shutdown: clone it into every task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A trigger and its first handle.
    pub fn new() -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Self(rx))
    }

    /// Completes when the shutdown fires.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Whether it has fired.
    pub fn is_signalled(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// The underlying receiver, for APIs that take one.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

impl ShutdownTrigger {
    /// Fires: every handle's `signalled` completes.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }

    /// Another handle on this shutdown.
    pub fn handle(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handles_complete_when_fired_or_dropped() {
        let (trigger, a) = Shutdown::new();
        let b = trigger.handle();
        assert!(!a.is_signalled());
        let wait = tokio::spawn(b.signalled());
        trigger.fire();
        wait.await.unwrap();
        assert!(a.is_signalled());
        let (trigger, c) = Shutdown::new();
        drop(trigger);
        c.signalled().await;
    }
}
