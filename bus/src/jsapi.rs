//! Requests to the JetStream API as raw JSON, where the client library's types would drop
//! what they do not model (a stream's whole configuration, as the server gives it).

use std::time::Duration;

use serde::Deserialize;

use crate::error::{BusError, Result};

#[derive(Deserialize)]
struct ApiError {
    code: u16,
    #[serde(default)]
    err_code: u16,
    description: String,
}

/// A JetStream API answer: its error, or the fields asked for.
pub fn answer(stream: &str, what: &str, payload: &[u8]) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        BusError::Server(format!(
            "{what} of stream {stream}: an answer that is not JSON ({e})"
        ))
    })?;
    if let Some(e) = v.get("error") {
        let e: ApiError = serde_json::from_value(e.clone()).map_err(|x| {
            BusError::Server(format!(
                "{what} of stream {stream}: an unreadable error ({x})"
            ))
        })?;
        return Err(BusError::Server(format!(
            "{what} of stream {stream} refused: {} (code {}, {})",
            e.description, e.code, e.err_code
        )));
    }
    Ok(v)
}

/// Sends `payload` to `subject` and waits at most `timeout` for the answer; `what` names
/// the step when there is none.
pub async fn request(
    client: &async_nats::Client,
    subject: String,
    payload: bytes::Bytes,
    timeout: Duration,
    what: impl FnOnce() -> String,
) -> Result<async_nats::Message> {
    client
        .send_request(
            subject,
            async_nats::Request::new()
                .payload(payload)
                .timeout(Some(timeout)),
        )
        .await
        .map_err(|e| BusError::nats(what(), e))
}

/// Sends `body` to the JetStream API endpoint `endpoint` under `api` (`$JS.API`, or a
/// site's prefix) and returns the answer, or the refusal in words (`what` names the step).
pub async fn call(
    client: &async_nats::Client,
    api: &str,
    endpoint: &str,
    body: &serde_json::Value,
    what: &str,
) -> Result<serde_json::Value> {
    let payload = if body.is_null() {
        bytes::Bytes::new()
    } else {
        serde_json::to_vec(body)
            .map_err(|e| BusError::Config(format!("{what}: {e}")))?
            .into()
    };
    let msg = request(
        client,
        format!("{api}.{endpoint}"),
        payload,
        Duration::from_secs(10),
        || what.to_string(),
    )
    .await?;
    answer(endpoint, what, &msg.payload)
}
