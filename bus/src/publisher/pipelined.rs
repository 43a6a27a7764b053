//! Publishing with a window of acknowledgements in flight: `publish_pipelined`,
//! `publish_many` and `send_all` (the ingress's batches).

use futures::{FutureExt, StreamExt};

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::{HeaderMap, HeaderValue};

use super::{
    classify, published, EventDraft, Published, Publisher, Rejected, Retry, PIPELINE_ACK_TIMEOUT,
};
use crate::access::Refusal;
use crate::error::{BusError, Result};
use crate::prepared::{headers_with_id, plain_id, Prepared};

/// How many events are prepared before they are handed to the connection together: its
/// task is woken once for the lot instead of once per event (each wake of a parked thread
/// is a system call and a context switch, dearer than preparing an event).
pub const BURST: usize = 64;

/// An event handed to the connection. Its headers went with it (not a copy: a map and
/// its values, allocated and freed for every event); should it be sent again, they are
/// made again around the same dedupe id, or were kept whole when they carry more (a
/// concurrency expectation, a dead letter's reasons).
struct Sent {
    event: Prepared,
    headers: Kept,
}

/// What is kept of a sent event's headers.
enum Kept {
    /// Content type and this dedupe id.
    Id(HeaderValue),
    All(HeaderMap),
}

impl Sent {
    /// The event as kept, and the headers to send it with.
    fn new(mut event: Prepared) -> (Self, HeaderMap) {
        let headers = std::mem::take(&mut event.headers);
        let kept = match plain_id(&headers) {
            Some(id) => Kept::Id(id.clone()),
            None => Kept::All(headers.clone()),
        };
        (
            Self {
                event,
                headers: kept,
            },
            headers,
        )
    }

    /// The event to send again, with the headers it was first sent with.
    fn again(self) -> Prepared {
        let mut event = self.event;
        event.headers = match self.headers {
            Kept::Id(id) => headers_with_id(id),
            Kept::All(headers) => headers,
        };
        event
    }
}

/// What pipelining takes: drafts (validated and encoded as their turn comes) or events
/// prepared already (the ingress's).
pub trait Outgoing {
    /// The event ready to send, or why it will not be.
    fn ready(self, publisher: &Publisher) -> Ready;
}

/// An input readied for sending.
pub enum Ready {
    Send(Prepared),
    /// Invalid: for the dead-letter stream.
    Rejected(Rejected),
    Failed(BusError),
}

impl Outgoing for EventDraft {
    fn ready(self, publisher: &Publisher) -> Ready {
        match publisher.prepare_draft(self) {
            Ok(Ok(p)) => Ready::Send(p),
            Ok(Err(rejected)) => Ready::Rejected(rejected),
            Err(e) => Ready::Failed(e),
        }
    }
}

impl Outgoing for Prepared {
    fn ready(self, _: &Publisher) -> Ready {
        Ready::Send(self)
    }
}

/// Where one input event stands.
enum Slot {
    /// Sent; its acknowledgement is awaited.
    InFlight(Sent),
    /// To be sent again through the retrying path (not sent, not confirmed, or answered
    /// with an error worth another try), its headers made again.
    Again(Prepared),
    Done(Result<Published>),
    /// Taken out while it is being settled (never left so).
    Taken,
}

impl Slot {
    /// The event of a slot in flight, the slot left [`Slot::Taken`] to be settled; `None`
    /// (the slot unchanged) for any other.
    fn take_in_flight(&mut self) -> Option<Sent> {
        if !matches!(self, Slot::InFlight(_)) {
            return None;
        }
        match std::mem::replace(self, Slot::Taken) {
            Slot::InFlight(p) => Some(p),
            _ => None,
        }
    }
}

/// Every input's slot, in input order, and how many are in flight.
#[derive(Default)]
struct Window {
    slots: Vec<Slot>,
    in_flight: usize,
    /// No slot before this one is in flight (where scans for events in flight start).
    settled_below: usize,
}

impl Window {
    fn sent(&mut self, pos: usize, sent: Sent) {
        self.slots[pos] = Slot::InFlight(sent);
        self.in_flight += 1;
    }

    /// Settles the event in flight at `pos` as `settle` says; nothing for any other.
    fn settle(&mut self, pos: usize, settle: impl FnOnce(Sent) -> Slot) {
        let Some(slot) = self.slots.get_mut(pos) else {
            return;
        };
        if let Some(sent) = slot.take_in_flight() {
            *slot = settle(sent);
            self.in_flight -= 1;
        }
    }

    /// Settles every event in flight as `settle` says (`None`: left in flight).
    fn settle_each(&mut self, mut settle: impl FnMut(&Sent) -> Option<Result<Published>>) {
        while self.settled_below < self.slots.len()
            && !matches!(self.slots[self.settled_below], Slot::InFlight(_))
        {
            self.settled_below += 1;
        }
        for slot in &mut self.slots[self.settled_below..] {
            if let Slot::InFlight(sent) = slot {
                if let Some(result) = settle(sent) {
                    *slot = Slot::Done(result);
                    self.in_flight -= 1;
                }
            }
        }
    }

    /// Every event in flight is to be sent again (its acknowledgement did not come).
    fn all_again(&mut self) {
        for slot in &mut self.slots[self.settled_below..] {
            if let Some(sent) = slot.take_in_flight() {
                *slot = Slot::Again(sent.again());
            }
        }
        self.in_flight = 0;
    }

    /// Settles the event an acknowledgement names (`<inbox>.<position>`): published, or
    /// failed or to be sent again when the server answered with an error (as
    /// [`Publisher::send`] would decide). One that names no event in flight (a late answer
    /// to an event already sent again) is ignored.
    fn acknowledged(&mut self, m: &async_nats::Message) {
        let Some(pos) = m
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<usize>().ok())
        else {
            return;
        };
        self.settle(pos, |sent| match answer(m) {
            Ok(ack) => Slot::Done(Ok(published(sent.event, ack))),
            Err(e) => {
                // Read with the headers it was sent with (the expectation a conflict names).
                let p = sent.again();
                match classify(&p, e) {
                    Retry::Yes(_) => Slot::Again(p),
                    Retry::No(error) => Slot::Done(Err(error)),
                    Retry::Later(reason) => Slot::Done(Err(BusError::Unavailable {
                        operation: format!("publishing {} to {}", p.id, p.subject),
                        attempts: 1,
                        reason,
                    })),
                }
            }
        });
    }
}

impl Publisher {
    /// Publishes events keeping up to `window` acknowledgements in flight: each event is
    /// validated and encoded while the earlier ones travel and are stored, and an
    /// acknowledgement is awaited only when the window is full (a sliding window, not
    /// batches that wait for their slowest). Results in input order; one that fails
    /// validation goes to the dead-letter stream. How: [`Publisher::pipeline`].
    pub async fn publish_pipelined(
        &self,
        drafts: impl IntoIterator<Item = EventDraft>,
        window: usize,
    ) -> Vec<Result<Published>> {
        self.pipeline(drafts, window).await
    }

    /// Sends inputs keeping up to `window` acknowledgements in flight. Events are handed to
    /// the connection in bursts of up to [`BURST`], and every acknowledgement that has come
    /// is taken before more are readied. The acknowledgements come back on one subscription
    /// under the connection's own inbox (as nats.go's `PublishAsync`), not one request
    /// each: per event, no reply subscription, channel or timer of its own. Results in
    /// input order; an event whose acknowledgement is an error or does not come within
    /// [`PIPELINE_ACK_TIMEOUT`] is sent again with the bounded retries of
    /// [`Publisher::send`] (same id: never stored twice); an invalid one goes to the
    /// dead-letter stream; one the server refuses this connection fails at once.
    pub async fn pipeline<T: Outgoing>(
        &self,
        inputs: impl IntoIterator<Item = T>,
        window: usize,
    ) -> Vec<Result<Published>> {
        let window = window.max(1);
        let client = self.js.client();
        let prefix = client.new_inbox();
        let Ok(mut acks) = client.subscribe(format!("{prefix}.*")).await else {
            // No subscription: one request per event.
            return self.one_request_each(inputs).await;
        };
        // Watched from before the first is sent: a refusal names the subject it refuses.
        let mut refusals = Some(self.refusals.receiver());
        let mut inputs = inputs.into_iter();
        let mut w = Window {
            slots: Vec::with_capacity(inputs.size_hint().0),
            ..Window::default()
        };
        let mut burst: Vec<(usize, Prepared)> = Vec::with_capacity(BURST);
        let mut exhausted = false;
        loop {
            // Prepare a burst (as much as the window has room for), then send it.
            while !exhausted && burst.len() < BURST && w.in_flight + burst.len() < window {
                let Some(input) = inputs.next() else {
                    exhausted = true;
                    break;
                };
                let pos = w.slots.len();
                match input.ready(self) {
                    Ready::Failed(e) => w.slots.push(Slot::Done(Err(e))),
                    Ready::Rejected(Rejected { event, error }) => w
                        .slots
                        .push(Slot::Done(Err(self.dead_letter(*event, error).await))),
                    Ready::Send(p) => {
                        w.slots.push(Slot::Taken);
                        burst.push((pos, p));
                    }
                }
            }
            // What the connection is handed, made before the first is handed over: handed
            // back to back, they are written out by one wake of its task.
            let messages: Vec<_> = burst
                .drain(..)
                .map(|(pos, p)| {
                    let (sent, headers) = Sent::new(p);
                    let subject = sent.event.subject.clone();
                    let payload = sent.event.payload.clone();
                    (
                        pos,
                        sent,
                        (subject, reply_subject(&prefix, pos), headers, payload),
                    )
                })
                .collect();
            for (pos, sent, (subject, reply, headers, payload)) in messages {
                let handed = client
                    .publish_with_reply_and_headers(subject, reply, headers, payload)
                    .await;
                match handed {
                    Ok(()) => w.sent(pos, sent),
                    Err(_) => w.slots[pos] = Slot::Again(sent.again()),
                }
            }
            if w.in_flight == 0 {
                if exhausted {
                    break;
                }
                continue;
            }
            // Wait for an acknowledgement only when nothing more may be sent.
            if w.in_flight >= window || exhausted {
                let waited = match acks.next().now_or_never() {
                    Some(next) => Waited::Ack(next),
                    None => tokio::select! {
                        biased;
                        next = tokio::time::timeout(PIPELINE_ACK_TIMEOUT, acks.next()) => {
                            next.map_or(Waited::TimedOut, Waited::Ack)
                        }
                        refused = next_refusals(&mut refusals) => Waited::Refused(refused),
                    },
                };
                match waited {
                    Waited::Ack(Some(m)) => w.acknowledged(&m),
                    // The server refuses this connection publishing to a subject: every event
                    // in flight to it fails at once, as it would if sent alone.
                    Waited::Refused(Refused {
                        refusals: these,
                        lagged,
                    }) => {
                        w.settle_each(|sent| {
                            let subject = sent.event.subject.as_str();
                            match these.iter().find(|r| r.subject == subject) {
                                Some(r) => Some(Err(r.clone().into())),
                                // Some were missed: those of the last seconds are kept.
                                None if lagged => self.refused(&[subject]).map(Err),
                                None => None,
                            }
                        });
                    }
                    Waited::TimedOut => w.all_again(),
                    // The subscription ended (the connection is closing): what is in flight
                    // and what is left go one request each, through the retrying path.
                    Waited::Ack(None) => {
                        w.all_again();
                        break;
                    }
                }
            }
            // Every acknowledgement that has come meanwhile.
            while let Some(Some(m)) = acks.next().now_or_never() {
                w.acknowledged(&m);
            }
        }
        let mut out = Vec::with_capacity(w.slots.len());
        for slot in w.slots {
            out.push(match slot {
                Slot::Done(result) => result,
                Slot::Again(p) => self.send(p).await,
                Slot::InFlight(sent) => self.send(sent.again()).await,
                Slot::Taken => unreachable!("every prepared event is sent or kept to send again"),
            });
        }
        if !exhausted {
            out.extend(self.one_request_each(inputs).await);
        }
        out
    }

    /// Without a subscription for the acknowledgements: every event sent as a request of
    /// its own, then every acknowledgement awaited (through the client's shared inbox).
    async fn one_request_each<T: Outgoing>(
        &self,
        inputs: impl IntoIterator<Item = T>,
    ) -> Vec<Result<Published>> {
        let mut out: Vec<Option<Result<Published>>> = Vec::new();
        let mut pending = Vec::new();
        for input in inputs {
            match input.ready(self) {
                Ready::Failed(e) => out.push(Some(Err(e))),
                Ready::Rejected(Rejected { event, error }) => {
                    out.push(Some(Err(self.dead_letter(*event, error).await)))
                }
                Ready::Send(p) => {
                    // Could not even send (`None`): the retrying path.
                    let fut = self.send_once(&p).await.ok();
                    pending.push((out.len(), p, fut));
                    out.push(None);
                }
            }
        }
        for (pos, p, fut) in pending {
            out[pos] = Some(self.settle(p, fut).await);
        }
        out.into_iter().flatten().collect()
    }
}

/// What a wait for an acknowledgement ended with.
enum Waited {
    /// `None`: the subscription ended.
    Ack(Option<async_nats::Message>),
    TimedOut,
    Refused(Refused),
}

/// The refusals that have come.
struct Refused {
    refusals: Vec<Refusal>,
    /// Some were missed (more came than the channel holds).
    lagged: bool,
}

/// The next refusals of the connection: waits for one, then takes every other that has
/// come (a refused backfill brings one per subject). Pending for ever when refusals are not
/// watched or can no longer come.
async fn next_refusals(
    receiver: &mut Option<tokio::sync::broadcast::Receiver<Refusal>>,
) -> Refused {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let Some(rx) = receiver else {
        return std::future::pending().await;
    };
    let mut refused = Refused {
        refusals: Vec::new(),
        lagged: false,
    };
    match rx.recv().await {
        Ok(r) => refused.refusals.push(r),
        Err(RecvError::Lagged(_)) => refused.lagged = true,
        Err(RecvError::Closed) => {
            *receiver = None;
            return std::future::pending().await;
        }
    }
    loop {
        match rx.try_recv() {
            Ok(r) => refused.refusals.push(r),
            Err(TryRecvError::Lagged(_)) => refused.lagged = true,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return refused,
        }
    }
}

/// The server's answer to a publish: its acknowledgement, or the error as async-nats's
/// own acknowledgement future reads it (so that [`classify`] decides as for
/// [`Publisher::send`]).
fn answer(m: &async_nats::Message) -> std::result::Result<PublishAck, PublishError> {
    use async_nats::jetstream::response::Response;
    use async_nats::jetstream::ErrorCode;
    if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err(PublishError::new(PublishErrorKind::StreamNotFound));
    }
    let response = serde_json::from_slice::<Response<PublishAck>>(&m.payload)
        .map_err(|e| PublishError::with_source(PublishErrorKind::Other, e))?;
    match response {
        Response::Ok(ack) if !ack.stream.is_empty() => Ok(ack),
        Response::Ok(_) => Err(PublishError::with_source(
            PublishErrorKind::Other,
            "an acknowledgement naming no stream",
        )),
        Response::Err { error } => Err(match error.error_code() {
            ErrorCode::STREAM_WRONG_LAST_SEQUENCE => {
                PublishError::with_source(PublishErrorKind::WrongLastSequence, error)
            }
            ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID => {
                PublishError::with_source(PublishErrorKind::WrongLastMessageId, error)
            }
            _ => PublishError::with_source(PublishErrorKind::Other, error),
        }),
    }
}

/// `<prefix>.<position>`: where the acknowledgement of the event at `position` comes.
fn reply_subject(prefix: &str, position: usize) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(position);
    let mut reply = String::with_capacity(prefix.len() + 1 + digits.len());
    reply.push_str(prefix);
    reply.push('.');
    reply.push_str(digits);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepared::headers;
    use crate::subject::EventType;

    fn prepared(headers: HeaderMap) -> Prepared {
        Prepared {
            id: "r-1".into(),
            subject: "egov.field_reports.report.PT-1.submitted".into(),
            headers,
            payload: bytes::Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn an_event_sent_again_has_the_headers_it_was_first_sent_with() {
        let ty = EventType::parse("vn.egov.field_reports.report.submitted").unwrap();
        // Whatever source made them (the ingress sends events of its callers' sources).
        for source in ["urn:a", "urn:lienthong:ward:tien-thanh"] {
            for expected in [None, Some(0), Some(41)] {
                let original = headers(source, "r-1", &ty, "PT-1", expected);
                let (sent, with) = Sent::new(prepared(original.clone()));
                assert_eq!(with, original, "sent with its own headers");
                assert!(sent.event.headers.is_empty(), "not kept twice");
                assert_eq!(matches!(sent.headers, Kept::Id(_)), expected.is_none());
                assert_eq!(sent.again().headers, original, "{source} {expected:?}");
            }
        }
        // Headers with more than the content type and the id (a dead letter's reasons).
        let mut more = headers("urn:a", "r-1", &ty, "PT-1", None);
        more.insert("Lienthong-Reject-Reason", "schema");
        let (sent, _) = Sent::new(prepared(more.clone()));
        assert!(matches!(sent.headers, Kept::All(_)));
        assert_eq!(sent.again().headers, more);
    }

    fn reply(status: Option<async_nats::StatusCode>, payload: &'static str) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x.7".into(),
            reply: None,
            payload: bytes::Bytes::from_static(payload.as_bytes()),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn answers_are_read_as_the_single_publish_reads_them() {
        let ack = answer(&reply(
            None,
            r#"{"stream":"FIELD_REPORTS","seq":12,"duplicate":true}"#,
        ))
        .unwrap();
        assert_eq!(
            (ack.stream.as_str(), ack.sequence, ack.duplicate),
            ("FIELD_REPORTS", 12, true)
        );
        let p = prepared(HeaderMap::new());
        let kind = |m| answer(&m).unwrap_err().kind();
        // A wrong expectation is a conflict, never sent again.
        let wrong = reply(
            None,
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#,
        );
        assert_eq!(kind(wrong.clone()), PublishErrorKind::WrongLastSequence);
        let mut p2 = prepared(HeaderMap::new());
        p2.headers
            .insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "2");
        assert!(matches!(
            classify(&p2, answer(&wrong).unwrap_err()),
            Retry::No(BusError::Conflict { .. })
        ));
        // No stream answered: tried again.
        let none = reply(Some(async_nats::StatusCode::NO_RESPONDERS), "");
        assert_eq!(kind(none.clone()), PublishErrorKind::StreamNotFound);
        assert!(matches!(
            classify(&p, answer(&none).unwrap_err()),
            Retry::Yes(_)
        ));
        // Anything else the server says is its error, not an acknowledgement.
        let full = reply(
            None,
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        );
        assert_eq!(kind(full), PublishErrorKind::Other);
        assert_eq!(kind(reply(None, "{}")), PublishErrorKind::Other);
        assert_eq!(kind(reply(None, "not json")), PublishErrorKind::Other);
    }

    #[test]
    fn reply_subjects_name_the_position() {
        assert_eq!(reply_subject("_INBOX.abc", 0), "_INBOX.abc.0");
        assert_eq!(reply_subject("_INBOX.abc", 1_234_567), "_INBOX.abc.1234567");
    }
}
