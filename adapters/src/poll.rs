//! The polling loop shared by adapters that poll their subsystem at a fixed interval.

use std::future::Future;
use std::time::Duration;

use tracing::warn;

use crate::error::AdapterError;

/// Runs `poll` now and then every `interval` until `shutdown`. A transient failure (the
/// subsystem or the bus unreachable for a while) is logged and tried again at the next tick;
/// any other failure ends the loop with it.
pub async fn every<F, Fut>(
    subsystem: &str,
    what: &str,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
    mut poll: F,
) -> Result<(), AdapterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), AdapterError>>,
{
    tokio::pin!(shutdown);
    loop {
        match poll().await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                warn!(adapter = subsystem, error = %e, "{what} failed; will retry")
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
