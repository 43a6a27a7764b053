//! Refusals: what the server would not let a connection do, reported as soon as it happens.
//!
//! When a role publishes (or sends a JetStream API request) to a subject it may not use, the
//! server drops the message and tells the connection asynchronously (`-ERR 'Permissions
//! Violation for Publish to "…"'`): the request itself would only time out, and a caller
//! waiting for a PubAck would retry until it gives up. [`Refusals`] collects those reports
//! for one connection; [`Refusals::guard`] races an operation against them, so a refused
//! operation fails at once with [`BusError::Forbidden`], naming the role, the subject and,
//! in words, what the role may not do.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::error::{BusError, Result};

/// Publishing or subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

/// One refusal reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub role: String,
    pub action: Action,
    pub subject: String,
}

impl Refusal {
    /// Reads the server's report (`Permissions Violation for Publish to "x"`).
    pub fn parse(role: &str, report: &str) -> Option<Self> {
        let lower = report.to_ascii_lowercase();
        let at = lower.find("permissions violation for ")?;
        let rest = &report[at + "permissions violation for ".len()..];
        let action = if rest.to_ascii_lowercase().starts_with("publish") {
            Action::Publish
        } else if rest.to_ascii_lowercase().starts_with("subscription") {
            Action::Subscribe
        } else {
            return None;
        };
        let quoted = rest.split('"').nth(1)?;
        // The subject as sent (the server may quote it with a queue group after a space).
        let subject = quoted
            .split_whitespace()
            .next()
            .unwrap_or(quoted)
            .to_string();
        Some(Self {
            role: role.to_string(),
            action,
            subject,
        })
    }

    /// What the role tried, in words: "read stream SSO", "publish to egov.sso.…".
    pub fn what(&self) -> String {
        describe(self.action, &self.subject)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.action {
            Action::Publish => "publish to",
            Action::Subscribe => "subscribe to",
        };
        write!(
            f,
            "{} may not {} (the server refused to let it {verb} {:?})",
            self.role,
            self.what(),
            self.subject
        )
    }
}

/// What a subject means to a person: the JetStream API and the bus's subjects in words.
pub fn describe(action: Action, subject: &str) -> String {
    let t: Vec<&str> = subject.split('.').collect();
    let at = |i: usize| t.get(i).copied().unwrap_or("?");
    if action == Action::Subscribe {
        return format!("subscribe to {subject}");
    }
    match (at(0), at(1), at(2), at(3)) {
        ("$JS", "API", "STREAM", "INFO") | ("$JS", "API", "DIRECT", "GET") => {
            format!("read stream {}", at(4))
        }
        ("$JS", "API", "STREAM", "MSG") if at(4) == "GET" => format!("read stream {}", at(5)),
        ("$JS", "API", "STREAM", "MSG") => format!("delete messages of stream {}", at(5)),
        ("$JS", "API", "STREAM", op) => {
            let verb = match op {
                "CREATE" => "create",
                "UPDATE" => "change",
                "DELETE" => "delete",
                "PURGE" => "purge",
                "NAMES" | "LIST" => return "list the streams".into(),
                other => return format!("use the stream API ({other})"),
            };
            format!("{verb} stream {}", at(4))
        }
        ("$JS", "API", "CONSUMER", op) => match op {
            "CREATE" | "DURABLE" => {
                let stream = if op == "DURABLE" { at(5) } else { at(4) };
                format!("create or change a consumer on stream {stream}")
            }
            "NAMES" | "LIST" => format!("list the consumers of stream {}", at(4)),
            "INFO" => format!("look at consumer {} of stream {}", at(5), at(4)),
            "DELETE" => format!("delete consumer {} of stream {}", at(5), at(4)),
            "MSG" => format!("read from consumer {} of stream {}", at(6), at(5)),
            "PAUSE" | "UNPIN" | "RESET" => {
                format!("change consumer {} of stream {}", at(5), at(4))
            }
            other => format!("use the consumer API ({other})"),
        },
        ("$JS", "ACK", stream, consumer) => {
            format!("acknowledge messages of consumer {consumer} of stream {stream}")
        }
        ("$JS", "API", _, _) => format!("use the JetStream API ({subject})"),
        ("$KV", bucket, _, _) => format!("write {} in bucket {bucket}", t[2..].join(".")),
        ("egov", subsystem, _, _) => format!("publish egov.{subsystem} events ({subject})"),
        _ => format!("publish to {subject}"),
    }
}

/// How long a refusal is remembered for operations that start after it (a retry of the
/// refused publish fails at once instead of waiting again). Short: a grant may come.
const REMEMBERED: Duration = Duration::from_secs(10);

/// The refusals of one connection. Cloning shares them; [`Refusals::none`] never fires.
#[derive(Clone)]
pub struct Refusals {
    role: Arc<str>,
    tx: broadcast::Sender<Refusal>,
    recent: Arc<Mutex<VecDeque<(Instant, Refusal)>>>,
}

impl std::fmt::Debug for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusals")
            .field("role", &self.role)
            .finish()
    }
}

impl Default for Refusals {
    fn default() -> Self {
        Self::none()
    }
}

impl Refusals {
    /// For a connection made as `role`.
    pub fn new(role: &str) -> Self {
        let (tx, _) = broadcast::channel(64);
        Self {
            role: role.into(),
            tx,
            recent: Arc::default(),
        }
    }

    /// For a connection whose refusals nobody watches.
    pub fn none() -> Self {
        Self::new("(unknown role)")
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    /// Records a server report; returns the refusal it was, if any.
    pub fn report(&self, server_error: &str) -> Option<Refusal> {
        let refusal = Refusal::parse(&self.role, server_error)?;
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.retain(|(at, _)| at.elapsed() < REMEMBERED);
            if recent.len() >= 64 {
                recent.pop_front();
            }
            recent.push_back((Instant::now(), refusal.clone()));
        }
        let _ = self.tx.send(refusal.clone());
        Some(refusal)
    }

    /// A refusal of the last few seconds that `concerns` says is about an operation.
    pub fn recent(&self, concerns: impl Fn(&Refusal) -> bool) -> Option<Refusal> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .find(|(at, r)| at.elapsed() < REMEMBERED && concerns(r))
            .map(|(_, r)| r.clone())
    }

    /// Every refusal from now on, as it happens (for an operation with many parts in
    /// flight, each refusal naming the part it concerns).
    pub fn receiver(&self) -> broadcast::Receiver<Refusal> {
        self.tx.subscribe()
    }

    /// The next refusal `concerns` says is about an operation: watching starts now (before
    /// the operation is sent), the future completes when the server refuses.
    pub fn watch<F: Fn(&Refusal) -> bool>(
        &self,
        concerns: F,
    ) -> impl Future<Output = Refusal> + use<F> {
        let mut rx = self.tx.subscribe();
        async move {
            loop {
                match rx.recv().await {
                    Ok(r) if concerns(&r) => return r,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        }
    }

    /// Runs `operation`; if the server refuses anything of this connection meanwhile, fails
    /// with that refusal instead of waiting for an answer that will not come.
    pub async fn guard<T, E>(&self, operation: impl Future<Output = Result<T, E>>) -> Result<T>
    where
        E: Into<BusError>,
    {
        let refused = self.watch(|_| true);
        tokio::select! {
            biased;
            r = operation => r.map_err(Into::into),
            refusal = refused => Err(refusal.into()),
        }
    }

    /// [`Self::guard`], for refusals that `concerns` says are about this operation (e.g. a
    /// publish to its subject, among many in flight on one connection); one such refusal of
    /// the last seconds fails it at once.
    pub async fn guard_where<T, E>(
        &self,
        concerns: impl Fn(&Refusal) -> bool,
        operation: impl Future<Output = Result<T, E>>,
    ) -> Result<T>
    where
        E: Into<BusError>,
    {
        if let Some(r) = self.recent(&concerns) {
            return Err(r.into());
        }
        let refused = self.watch(concerns);
        tokio::select! {
            biased;
            r = operation => r.map_err(Into::into),
            refusal = refused => Err(refusal.into()),
        }
    }
}

impl From<Refusal> for BusError {
    fn from(r: Refusal) -> Self {
        BusError::Forbidden {
            what: r.what(),
            role: r.role,
            subject: r.subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_reports_are_read_and_said_in_words() {
        let r = Refusal::parse(
            "agency-urban",
            r#"Permissions Violation for Publish to "$JS.API.STREAM.INFO.SSO""#,
        )
        .unwrap();
        assert_eq!(r.action, Action::Publish);
        assert_eq!(r.subject, "$JS.API.STREAM.INFO.SSO");
        assert_eq!(r.what(), "read stream SSO");
        assert!(r
            .to_string()
            .starts_with("agency-urban may not read stream SSO"));
        let r = Refusal::parse(
            "auditor",
            r#"Permissions Violation for Publish to "$JS.API.CONSUMER.DELETE.FIELD_REPORTS.x""#,
        )
        .unwrap();
        assert!(r.what().starts_with("delete consumer"), "{}", r.what());
        let s =
            Refusal::parse("x", r#"Permissions Violation for Subscription to "a.b q""#).unwrap();
        assert_eq!((s.action, s.subject.as_str()), (Action::Subscribe, "a.b"));
        assert!(Refusal::parse("x", "authorization violation").is_none());
        assert_eq!(
            describe(Action::Publish, "egov.sso.session.K.started"),
            "publish egov.sso events (egov.sso.session.K.started)"
        );
        assert_eq!(
            describe(
                Action::Publish,
                "$JS.API.CONSUMER.MSG.NEXT.FIELD_REPORTS.replay"
            ),
            "read from consumer replay of stream FIELD_REPORTS"
        );
        assert_eq!(
            describe(Action::Publish, "$JS.ACK.FIELD_REPORTS.c.1.2.3.4.5"),
            "acknowledge messages of consumer c of stream FIELD_REPORTS"
        );
    }

    #[tokio::test]
    async fn a_refusal_ends_a_waiting_operation() {
        let r = Refusals::new("auditor");
        let r2 = r.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            r2.report(r#"Permissions Violation for Publish to "$JS.API.STREAM.DELETE.SSO""#);
        });
        let e = r
            .guard(std::future::pending::<Result<(), BusError>>())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, BusError::Forbidden { role, what, .. } if role == "auditor" && what == "delete stream SSO"),
            "{e}"
        );
    }
}
