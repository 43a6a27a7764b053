//! A stream's consistent copy, taken and put back through JetStream's own snapshot and
//! restore API (`$JS.API.STREAM.SNAPSHOT` / `RESTORE`, what `nats stream backup` uses): the
//! server writes its store's files for the stream — messages with their sequences and store
//! times, consumers and their positions, the stream's creation time — as one s2-compressed
//! archive, while the stream goes on taking writes. Putting it back recreates the stream
//! exactly: same sequences, same store times, so its audit hash chain is the same.
//!
//! The snapshot comes in chunks to an inbox; each is acknowledged (the server sends at most
//! its window ahead), and an empty message with a status ends it: 204 complete, anything
//! else an error. A restore sends chunks as requests, each answered, and then an empty one,
//! answered with the new stream's information once the server has rebuilt it.

use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{BusError, Result};
use crate::jsapi::{answer, request};

/// How long the snapshot may go without a chunk before it is given up.
const SILENCE: Duration = Duration::from_secs(30);
/// The size of the chunks a restore sends.
const CHUNK: usize = 128 * 1024;

/// What a snapshot holds, as the server said when it began, and what was written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Taken {
    pub config: serde_json::Value,
    pub state: serde_json::Value,
    /// Bytes of the archive, and their SHA-256 (hex).
    pub bytes: u64,
    pub sha256: String,
}

/// Takes a snapshot of `stream` (its consumers included; every message's checksum checked
/// first, so a damaged store is named instead of copied) into `out`. `api` is the JetStream
/// API prefix (`$JS.API`).
pub async fn take(
    client: &async_nats::Client,
    api: &str,
    stream: &str,
    out: &mut (impl AsyncWrite + Unpin),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Taken> {
    let inbox = client.new_inbox();
    let mut chunks = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| BusError::Server(format!("subscribing for the snapshot of {stream}: {e}")))?;
    let request_body = serde_json::json!({
        "deliver_subject": inbox,
        "no_consumers": false,
        "chunk_size": CHUNK,
        "jsck": true,
    });
    let reply = request(
        client,
        format!("{api}.STREAM.SNAPSHOT.{stream}"),
        request_body.to_string().into(),
        Duration::from_secs(60),
        || format!("asking for a snapshot of {stream}"),
    )
    .await?;
    let began = answer(stream, "the snapshot", &reply.payload)?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut chunks_seen = 0u64;
    loop {
        let msg = match tokio::time::timeout(SILENCE, chunks.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(BusError::Server(format!(
                    "the snapshot of {stream} stopped: the connection closed"
                )))
            }
            Err(_) => {
                return Err(BusError::Server(format!(
                    "the snapshot of {stream} stopped: nothing for {} s after {bytes} bytes",
                    SILENCE.as_secs()
                )))
            }
        };
        if msg.payload.is_empty() {
            // The end: no status (a snapshot smaller than one chunk) or 204; otherwise
            // what went wrong.
            return match msg.status {
                None => finish(out, stream, began, bytes, hash).await,
                Some(s) if s.as_u16() == 204 => finish(out, stream, began, bytes, hash).await,
                status => Err(BusError::Server(format!(
                    "the snapshot of {stream} failed: {} {}",
                    status.map(|s| s.as_u16()).unwrap_or(0),
                    msg.description.unwrap_or_default()
                ))),
            };
        }
        // Acknowledged chunks carry their index (`….<size>.<index>`): none may be missing.
        if let Some(index) = msg
            .reply
            .as_ref()
            .and_then(|r| r.rsplit('.').next())
            .and_then(|i| i.parse::<u64>().ok())
        {
            chunks_seen += 1;
            if index != chunks_seen {
                return Err(BusError::Server(format!(
                    "the snapshot of {stream} lost a chunk: #{index} came after #{}",
                    chunks_seen - 1
                )));
            }
        }
        out.write_all(&msg.payload)
            .await
            .map_err(|e| BusError::io(format!("writing the snapshot of {stream}"), e))?;
        hash.update(&msg.payload);
        bytes += msg.payload.len() as u64;
        progress(bytes);
        if let Some(ack) = msg.reply {
            client
                .publish(ack, bytes::Bytes::new())
                .await
                .map_err(|e| BusError::Server(format!("acknowledging a chunk of {stream}: {e}")))?;
        }
    }
}

/// Recreates a stream from a snapshot: `config` (JetStream's JSON, as the snapshot recorded
/// it, possibly changed: replicas, duplicate window) and `state`, the archive read from
/// `archive`. The stream must not exist. Returns the restored stream's state.
pub async fn restore(
    client: &async_nats::Client,
    api: &str,
    config: &serde_json::Value,
    state: &serde_json::Value,
    archive: &mut (impl AsyncRead + Unpin),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<serde_json::Value> {
    let stream = config["name"].as_str().unwrap_or_default();
    let reply = request(
        client,
        format!("{api}.STREAM.RESTORE.{stream}"),
        serde_json::json!({ "config": config, "state": state })
            .to_string()
            .into(),
        Duration::from_secs(60),
        || format!("asking to restore {stream}"),
    )
    .await?;
    let began = answer(stream, "the restore", &reply.payload)?;
    let deliver = began["deliver_subject"]
        .as_str()
        .ok_or_else(|| BusError::Server(format!("the restore of {stream}: no deliver_subject")))?
        .to_string();
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = read_full(archive, &mut buf)
            .await
            .map_err(|e| BusError::io(format!("reading the snapshot of {stream}"), e))?;
        if n == 0 {
            break;
        }
        let answer_to_chunk = request(
            client,
            deliver.clone(),
            bytes::Bytes::copy_from_slice(&buf[..n]),
            Duration::from_secs(30),
            || format!("restoring {stream}, at byte {sent}"),
        )
        .await?;
        if !answer_to_chunk.payload.is_empty() {
            answer(stream, "the restore", &answer_to_chunk.payload)?;
        }
        sent += n as u64;
        progress(sent);
    }
    // The end: answered once the stream is rebuilt (a large one takes a while).
    let done = request(
        client,
        deliver,
        bytes::Bytes::new(),
        Duration::from_secs(600),
        || format!("finishing the restore of {stream}"),
    )
    .await?;
    let info = answer(stream, "the restore", &done.payload)?;
    Ok(info["state"].clone())
}

async fn finish(
    out: &mut (impl AsyncWrite + Unpin),
    stream: &str,
    began: serde_json::Value,
    bytes: u64,
    hash: Sha256,
) -> Result<Taken> {
    out.flush()
        .await
        .map_err(|e| BusError::io(format!("writing the snapshot of {stream}"), e))?;
    Ok(Taken {
        config: began["config"].clone(),
        state: began["state"].clone(),
        bytes,
        sha256: hex::encode(hash.finalize()),
    })
}

async fn read_full(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
