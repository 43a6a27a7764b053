//! Publishing with a window of acknowledgements in flight: the path of adapters' pages,
//! backfills and the ingress's batches.

use futures::{FutureExt, StreamExt};

use async_nats::HeaderMap;

use super::{published, EventDraft, Published, Publisher, Rejected, PIPELINE_ACK_TIMEOUT};
use crate::error::{BusError, Result};
use crate::prepared::{has_expectation, plain_headers, Prepared};

/// How many events are prepared before they are handed to the connection together: its
/// task is woken once for the lot instead of once per event (each wake of a parked thread
/// is a system call and a context switch, dearer than preparing an event).
pub const BURST: usize = 64;

/// An event handed to the connection. Its headers went with it (not a copy: a map and
/// its values, allocated and freed for every event); should it be sent again, they are
/// made again from the source and id, or kept when they carry a concurrency expectation.
struct Sent {
    event: Prepared,
    expectation: Option<HeaderMap>,
}

impl Sent {
    /// The event as kept, and the headers to send it with.
    fn new(mut event: Prepared) -> (Self, HeaderMap) {
        let headers = std::mem::take(&mut event.headers);
        let expectation = has_expectation(&headers).then(|| headers.clone());
        (Self { event, expectation }, headers)
    }

    /// The event to send again, with its headers.
    fn again(self, source: &str) -> Prepared {
        let mut event = self.event;
        event.headers = self
            .expectation
            .unwrap_or_else(|| plain_headers(source, &event.id));
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
    /// To be sent again through the retrying path (not sent, not confirmed, or confirmed
    /// with an error).
    Again(Sent),
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

    /// An event in flight is to be sent again (its acknowledgement did not come).
    fn send_again(&mut self) {
        if let Some(p) = self.take_in_flight() {
            *self = Slot::Again(p);
        }
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
        let mut slots: Vec<Slot> = Vec::with_capacity(inputs.size_hint().0);
        let mut in_flight = 0usize;
        let mut burst: Vec<(usize, Prepared)> = Vec::with_capacity(BURST);
        let mut exhausted = false;
        loop {
            // Prepare a burst (as much as the window has room for), then send it.
            while !exhausted && burst.len() < BURST && in_flight + burst.len() < window {
                let Some(input) = inputs.next() else {
                    exhausted = true;
                    break;
                };
                let pos = slots.len();
                match input.ready(self) {
                    Ready::Failed(e) => slots.push(Slot::Done(Err(e))),
                    Ready::Rejected(Rejected { event, error }) => {
                        slots.push(Slot::Done(Err(self.dead_letter(*event, error).await)))
                    }
                    Ready::Send(p) => {
                        slots.push(Slot::Taken);
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
                slots[pos] = match handed {
                    Ok(()) => {
                        in_flight += 1;
                        Slot::InFlight(sent)
                    }
                    Err(_) => Slot::Again(sent),
                };
            }
            if in_flight == 0 {
                if exhausted {
                    break;
                }
                continue;
            }
            // Wait for an acknowledgement only when nothing more may be sent.
            if in_flight >= window || exhausted {
                let waited = match acks.next().now_or_never() {
                    Some(next) => Waited::Ack(next),
                    None => tokio::select! {
                        biased;
                        next = tokio::time::timeout(PIPELINE_ACK_TIMEOUT, acks.next()) => {
                            next.map_or(Waited::TimedOut, Waited::Ack)
                        }
                        refusal = refused(&mut refusals) => Waited::Refused(refusal),
                    },
                };
                match waited {
                    Waited::Ack(Some(m)) => acknowledged(&m, &mut slots, &mut in_flight),
                    // The server refuses this connection publishing to a subject: every event
                    // in flight to it fails at once, as it would if sent alone.
                    Waited::Refused(Some(refusal)) => {
                        for slot in slots.iter_mut() {
                            if matches!(slot, Slot::InFlight(s) if s.event.subject == refusal.subject)
                            {
                                *slot = Slot::Done(Err(refusal.clone().into()));
                                in_flight -= 1;
                            }
                        }
                    }
                    // No more refusals can come (their sender is gone).
                    Waited::Refused(None) => refusals = None,
                    // Nothing within the timeout (or the subscription ended): every event
                    // still in flight takes the retrying path.
                    Waited::Ack(None) | Waited::TimedOut => {
                        slots.iter_mut().for_each(Slot::send_again);
                        in_flight = 0;
                    }
                }
            }
            // Every acknowledgement that has come meanwhile.
            while let Some(Some(m)) = acks.next().now_or_never() {
                acknowledged(&m, &mut slots, &mut in_flight);
            }
        }
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            out.push(match slot {
                Slot::Done(result) => result,
                Slot::Again(sent) | Slot::InFlight(sent) => {
                    self.send(sent.again(&self.source)).await
                }
                Slot::Taken => unreachable!("every prepared event is sent or kept to send again"),
            });
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
    Ack(Option<async_nats::Message>),
    TimedOut,
    /// `None`: refusals can no longer come.
    Refused(Option<crate::access::Refusal>),
}

/// The next refusal of the connection (`None` when no more can come); pending for ever
/// when refusals are not watched.
async fn refused(
    refusals: &mut Option<tokio::sync::broadcast::Receiver<crate::access::Refusal>>,
) -> Option<crate::access::Refusal> {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = refusals else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(refusal) => return Some(refusal),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}

/// Settles the event an acknowledgement names (`<inbox>.<position>`): published, or to be
/// sent again when the server answered with an error. One that names no event in flight
/// (a late answer to an event already sent again) is ignored.
fn acknowledged(m: &async_nats::Message, slots: &mut [Slot], in_flight: &mut usize) {
    let Some(slot) = m
        .subject
        .rsplit('.')
        .next()
        .and_then(|t| t.parse::<usize>().ok())
        .and_then(|pos| slots.get_mut(pos))
    else {
        return;
    };
    let Some(sent) = slot.take_in_flight() else {
        return;
    };
    *in_flight -= 1;
    let ack = (m.status.is_none() || m.status == Some(async_nats::StatusCode::OK))
        .then(|| {
            serde_json::from_slice::<async_nats::jetstream::publish::PublishAck>(&m.payload).ok()
        })
        .flatten()
        .filter(|a| !a.stream.is_empty());
    *slot = match ack {
        Some(ack) => Slot::Done(Ok(published(sent.event, ack))),
        None => Slot::Again(sent),
    };
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
        for expected in [None, Some(0), Some(41)] {
            let original = headers("urn:a", "r-1", &ty, "PT-1", expected);
            let (sent, with) = Sent::new(prepared(original.clone()));
            assert_eq!(with, original, "sent with its own headers");
            assert!(sent.event.headers.is_empty(), "not kept twice");
            assert_eq!(sent.expectation.is_some(), expected.is_some());
            assert_eq!(sent.again("urn:a").headers, original, "{expected:?}");
        }
    }

    #[test]
    fn reply_subjects_name_the_position() {
        assert_eq!(reply_subject("_INBOX.abc", 0), "_INBOX.abc.0");
        assert_eq!(reply_subject("_INBOX.abc", 1_234_567), "_INBOX.abc.1234567");
    }
}
