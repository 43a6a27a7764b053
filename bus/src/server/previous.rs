//! A server left by the previous run on the same store, still ending.
//!
//! When `lienthong up` (or `site up`) is killed, its nats-server is told to stop
//! (`PR_SET_PDEATHSIG`) and shuts down cleanly — flushing its store, which takes a moment —
//! while still holding its client port. A service manager that starts the bus again at once
//! would meet a port "in use". The server writes its process id beside its store
//! ([`PID_FILE`]); a new start waits a bounded time for that process — recognised by the store
//! on its command line, so a reused pid is not mistaken for it — to end, kills it if it does
//! not, then starts. A port held by anything else is still refused by the caller.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::error::{BusError, Result};

/// The file, in the server's data directory, where it writes its process id (`-P`).
pub const PID_FILE: &str = "nats-server.pid";

/// How long a start waits for the previous run's server to end by itself.
const GRACE: Duration = Duration::from_secs(30);
/// How long after SIGKILL it may still take for the process to be gone.
const KILLED: Duration = Duration::from_secs(5);

/// The store directory the server is started with (`-sd`), under its data directory.
pub(crate) fn jetstream_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("jetstream")
}

/// Waits until no server started on `data_dir`'s store by a previous run is alive: at most
/// 30 s for it to end by itself, then it is killed. An error only when even that fails.
pub async fn await_previous(data_dir: &Path) -> Result<()> {
    let Ok(data_dir) = std::fs::canonicalize(data_dir) else {
        return Ok(()); // No data directory yet: no previous run.
    };
    let Some(pid) = previous_server(&data_dir) else {
        return Ok(());
    };
    // A server whose `lienthong` still runs is not ending: that run is alive.
    if let Some(owner) = living_owner(pid) {
        return Err(BusError::Server(format!(
            "a nats-server (pid {pid}) already runs on the store {}, started by a lienthong \
             that is still running (pid {owner}); stop it first, or use another --data",
            data_dir.display()
        )));
    }
    warn!(
        pid,
        store = %data_dir.display(),
        "the previous run's nats-server on this store is still ending; waiting for it"
    );
    let started = Instant::now();
    if gone_within(&data_dir, pid, GRACE).await {
        warn!(
            pid,
            waited_ms = started.elapsed().as_millis() as u64,
            "the previous nats-server ended"
        );
        return Ok(());
    }
    warn!(
        pid,
        "the previous nats-server did not end within 30 s; killing it"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    if gone_within(&data_dir, pid, KILLED).await {
        return Ok(());
    }
    Err(BusError::Server(format!(
        "the previous run's nats-server (pid {pid}) on {} does not end, even killed; \
         stop it by hand",
        data_dir.display()
    )))
}

async fn gone_within(data_dir: &Path, pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if previous_server(data_dir) != Some(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The process that started server `pid`, when it is a `lienthong` still running. A server
/// whose parent died was adopted by another process (init, a service manager).
fn living_owner(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: the name may hold spaces and parentheses; it ends at the
    // last ')'.
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let program = cmdline.split(|b| *b == 0).next()?;
    let name = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(program))
        .file_name()?;
    name.to_string_lossy()
        .starts_with("lienthong")
        .then_some(ppid)
}

/// The pid in `data_dir`'s pid file, when that process runs a server on this very store.
/// A process that ended (even one not reaped yet: its command line is empty) is not one.
fn previous_server(data_dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(data_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let store = jetstream_dir(data_dir);
    let store = store.as_os_str().as_encoded_bytes();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == store)
        .then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pid_file_of_another_program_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        // This test's own process: alive, but not a server on that store.
        std::fs::write(dir.path().join(PID_FILE), std::process::id().to_string()).unwrap();
        let started = Instant::now();
        await_previous(dir.path()).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        // A stale pid file (no such process) neither.
        std::fs::write(dir.path().join(PID_FILE), "999999999").unwrap();
        await_previous(dir.path()).await.unwrap();
    }
}
