//! The live feed: what the read models just folded, as it is committed, for the dashboard's
//! Server-Sent Events (`GET /api/v1/live`). Only the envelope's type, stream, position and
//! time travel, plus the ward when the event names one — never the data, so no personal
//! value can reach the feed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::projection::ProjectedEvent;

/// How many events a slow listener may fall behind before it skips some.
const BACKLOG: usize = 1024;

/// How many of the newest events a new listener is sent first.
pub const RECENT: usize = 30;

/// One folded event, as the live feed shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    pub stream: &'static str,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub ty: String,
    pub time: Option<String>,
    /// The ward's slug, when the event is about one ward.
    pub ward: Option<String>,
}

impl LiveEvent {
    pub fn of(stream: &'static str, ev: &ProjectedEvent) -> Self {
        Self {
            stream,
            sequence: ev.sequence,
            ty: ev.ty.clone(),
            time: ev.time.map(|t| t.to_rfc3339()),
            ward: sonic_rs::JsonValueTrait::get(&ev.data, "ward")
                .and_then(sonic_rs::JsonValueTrait::as_str)
                .filter(|w| crate::reference::ward(w).is_some())
                .map(str::to_string),
        }
    }
}

/// Where runners announce what they committed; costs little while nobody listens (the
/// newest few events are kept for the next listener).
#[derive(Debug, Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<LiveEvent>,
    recent: Arc<Mutex<VecDeque<LiveEvent>>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT))),
        }
    }
}

impl LiveFeed {
    /// Whether anyone listens (runners then announce every event they commit).
    pub fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Events just committed, in order.
    pub fn committed(&self, events: impl Iterator<Item = LiveEvent>) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        for e in events {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(e.clone());
            let _ = self.sender.send(e);
        }
    }

    /// The newest events (oldest first), and the events committed from now on. Subscribed
    /// under the same lock, so nothing falls between the two.
    pub fn subscribe(&self) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        match self.recent.lock() {
            Ok(recent) => (recent.iter().cloned().collect(), self.sender.subscribe()),
            Err(_) => (Vec::new(), self.sender.subscribe()),
        }
    }
}
