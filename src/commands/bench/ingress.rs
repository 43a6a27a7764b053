//! The HTTP ingress in batch mode against the bus publisher: the same events, POSTed as
//! `application/cloudevents-batch+json` by a local client keeping a few requests in flight.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lienthong_adapters::ingress::{token_hash, Caller, Ingress, IngressConfig};
use lienthong_bus::publisher::Prepared;
use lienthong_bus::{Publisher, SchemaRegistry};

/// Events per request, and requests in flight.
pub(super) const BATCH: usize = 100;
pub(super) const IN_FLIGHT: usize = 4;

/// Serves an ingress on a free local port as `js`'s role, POSTs `prepared` (structured
/// CloudEvents from source `urn:lienthong:bench`) in batches; events per second.
pub(super) async fn ingress(
    js: async_nats::jetstream::Context,
    registry: Arc<SchemaRegistry>,
    prepared: &[Prepared],
) -> anyhow::Result<f64> {
    let token = "bench-ingress-token";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = IngressConfig {
        listen: addr,
        max_body_bytes: 4 * 1024 * 1024,
        callers: vec![Caller {
            name: "bench".into(),
            token_sha256: token_hash(token),
            sources: vec!["urn:lienthong:bench".into()],
            types: vec!["vn.egov.*".into()],
        }],
    };
    let publisher = Publisher::new(
        lienthong_adapters::ingress::jetstream(js.client()),
        registry,
        "urn:lienthong:ingress",
    );
    let ingress = Ingress::new(config, publisher, &lienthong_bus::Metrics::new())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        ingress
            .serve_on(
                lienthong_bus::tls::http::Listener::plain(listener)?,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });
    let bodies: Vec<Vec<u8>> = prepared
        .chunks(BATCH)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.len() * 800);
            body.push(b'[');
            for (i, p) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&p.payload);
            }
            body.push(b']');
            body
        })
        .collect();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/events");
    let start = Instant::now();
    let mut requests = futures::stream::iter(bodies.into_iter().map(|body| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body)
                .send()
                .await?;
            let status = r.status();
            anyhow::ensure!(
                status.is_success(),
                "the ingress answered {status}: {}",
                r.text().await.unwrap_or_default()
            );
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(r) = requests.next().await {
        r?;
    }
    let rate = prepared.len() as f64 / start.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(rate)
}
