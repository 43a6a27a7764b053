//! Watching what `up` and `site up` start: their nats-server nodes and tasks. A server that
//! dies is started again on its store with a growing wait (1, 2, 4, 8, 16 s), `/healthz`
//! saying so meanwhile, and counted; a server that cannot come back, or any task that ends,
//! stops everything with an error naming it (so a service manager can act).

use lienthong_bus::server::NatsServer;
use lienthong_bus::ShutdownTrigger;

use tracing::{error, info};

use crate::error::StackError;

pub(crate) type Task = tokio::task::JoinHandle<Result<(), StackError>>;

/// Restarts of a nats-server that died, before giving up (waits 1, 2, 4, 8 and 16 s).
const SERVER_RESTARTS: u32 = 5;

/// Servers and the tasks running on them, with the trigger that stops the tasks.
pub struct Supervised {
    /// The nats-server nodes (one, or a cluster's).
    pub(crate) servers: Vec<NatsServer>,
    pub(crate) tasks: Vec<(String, Task)>,
    trigger: ShutdownTrigger,
    /// Components down now (served by `/healthz`).
    pub health: lienthong_bus::health::Components,
    metrics: lienthong_bus::Metrics,
}

impl Supervised {
    pub(crate) fn new(
        servers: Vec<NatsServer>,
        trigger: ShutdownTrigger,
        metrics: lienthong_bus::Metrics,
    ) -> Self {
        Self {
            servers,
            tasks: Vec::new(),
            trigger,
            health: lienthong_bus::health::Components::new(),
            metrics,
        }
    }

    /// Runs until `shutdown` completes or a component stops; then stops everything. An error
    /// names the component that failed. A nats-server that dies is started again on the same
    /// store (its JetStream recovers; clients reconnect), with a growing wait between tries;
    /// `/healthz` says it is down meanwhile; if it cannot come back, the stack stops with an
    /// error (so a service manager can act).
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), StackError> {
        tokio::pin!(shutdown);
        let restarts = self.metrics.counter(
            "lienthong_component_restarts_total",
            "Components restarted after they died.",
            &[("component", "nats-server")],
        );
        enum Event {
            Tick,
            Shutdown,
            ServerExited(std::process::ExitStatus, usize),
            TaskEnded(
                Result<Result<(), StackError>, tokio::task::JoinError>,
                usize,
            ),
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        let full_total = self.metrics.counter(
            "lienthong_disk_full_total",
            "Times a nats-server disabled its JetStream because its store's disk was full.",
            &[],
        );
        let mut disk_full = vec![false; self.servers.len()];
        let failed = loop {
            let event = tokio::select! {
                _ = &mut shutdown => Event::Shutdown,
                _ = tick.tick() => Event::Tick,
                (status, node, _) = futures::future::select_all(
                    self.servers.iter_mut().map(|s| Box::pin(s.exited()))
                ) => Event::ServerExited(status, node),
                (result, index, _) = futures::future::select_all(self.tasks.iter_mut().map(|(_, t)| t)) => {
                    Event::TaskEnded(result, index)
                }
            };
            match event {
                Event::Tick => {
                    // A full disk: nats-server disables its JetStream and keeps it so, or
                    // goes on without storing (writes time out, even after space returns).
                    // Said at once (the ingress answers 503 meanwhile); once there is room
                    // the server is started again on its store, which recovers what it had.
                    for (node, said) in disk_full.iter_mut().enumerate() {
                        let Some(space) = self.servers[node].store_space() else {
                            continue;
                        };
                        let disabled = self.servers[node].jetstream_disabled();
                        // Full: JetStream disabled for it, or nearly full.
                        let full = disabled || space.nearly_full();
                        let (free, room) = (space.free, space.room_to_resume());
                        let component = self.component(node);
                        if *said {
                            if free < room {
                                continue;
                            }
                            info!(
                                "{component}: its store's disk has room again ({} MiB free); restarting it on its store",
                                free >> 20
                            );
                            match restart(&mut self.servers[node]).await {
                                Ok(()) => {
                                    *said = false;
                                    self.health.up(&component);
                                }
                                Err(e) => error!("{component}: could not restart it: {e}"),
                            }
                            continue;
                        }
                        if full {
                            *said = true;
                            full_total.inc();
                            let consequence = if self.servers.len() > 1 {
                                "this node stores nothing more; the others go on while they are a majority"
                            } else {
                                "events are refused (503) once the server has used what room it set aside"
                            };
                            let reason = format!(
                                "the store's disk is full ({} MiB free): {consequence}; it resumes by itself once {} MiB are free",
                                free >> 20,
                                room >> 20
                            );
                            error!("{component}: {reason}");
                            self.health.down(&component, reason);
                        }
                    }
                }
                Event::Shutdown => {
                    info!("stopping");
                    break None;
                }
                Event::ServerExited(status, node) => {
                    let component = self.component(node);
                    let reason = format!("{component} exited ({status})");
                    error!("{reason}; restarting it on the same store");
                    self.health.down(&component, reason.clone());
                    match restart(&mut self.servers[node]).await {
                        Ok(()) => {
                            restarts.inc();
                            self.health.up(&component);
                        }
                        Err(e) => {
                            break Some(StackError::Stopped {
                                component,
                                reason: format!("{reason}, and could not be restarted: {e}"),
                            })
                        }
                    }
                }
                Event::TaskEnded(result, index) => {
                    let name = self.tasks[index].0.clone();
                    break Some(match result {
                        Ok(Ok(())) => StackError::Stopped {
                            component: name,
                            reason: "it stopped".into(),
                        },
                        Ok(Err(e)) => StackError::Stopped {
                            component: name,
                            reason: e.to_string(),
                        },
                        Err(e) => StackError::Stopped {
                            component: name,
                            reason: format!("it panicked: {e}"),
                        },
                    });
                }
            }
        };
        self.stop().await?;
        match failed {
            Some(e) => {
                error!("{e}");
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// How `/healthz` names server `node`.
    fn component(&self, node: usize) -> String {
        if self.servers.len() > 1 {
            format!("nats-server n{}", node + 1)
        } else {
            "nats-server".to_string()
        }
    }

    /// Stops every component (10 s each at most), then the server.
    pub async fn stop(self) -> Result<(), StackError> {
        self.trigger.fire();
        for (name, t) in self.tasks {
            if !t.is_finished() {
                match tokio::time::timeout(std::time::Duration::from_secs(10), t).await {
                    Ok(Ok(Err(e))) => error!("{name}: {e}"),
                    Err(_) => error!("{name} did not stop in 10 s"),
                    _ => {}
                }
            }
        }
        for server in self.servers {
            server.stop().await?;
        }
        Ok(())
    }
}

async fn restart(server: &mut NatsServer) -> Result<(), lienthong_bus::BusError> {
    let mut last = None;
    for attempt in 0..SERVER_RESTARTS {
        tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        match server.restart().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                error!(attempt = attempt + 1, error = %e, "nats-server did not come back");
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least one attempt"))
}
