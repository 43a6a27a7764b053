//! HTTPS for the HTTP services (the replay service and dashboard, the ingress, the adapters'
//! push endpoints): a listener that `axum::serve` takes as it takes a `TcpListener`, plain or
//! with rustls.
//!
//! TLS handshakes run in tasks of their own, so a client that opens a connection and says
//! nothing never holds up the others (it is dropped after [`HANDSHAKE_TIMEOUT`]). The
//! certificate is read again from its files when they change (checked at most every
//! [`RELOAD_EVERY`]): a rotation needs no restart.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::{TlsFiles, Transport};
use crate::error::{BusError, Result};

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, at most: a flood of clients that connect and say nothing
/// waits in the kernel's backlog instead of taking every file descriptor.
pub const MAX_HANDSHAKES: usize = 256;
/// How often, at most, the certificate's files are looked at for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// A bound HTTP listener, plain or TLS.
pub struct Listener {
    local: SocketAddr,
    inner: Inner,
}

enum Inner {
    Plain(TcpListener),
    Tls {
        accepted: tokio::sync::mpsc::Receiver<(Stream, SocketAddr)>,
        _acceptor: AbortOnDrop,
    },
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listener {
    /// Serves on `tcp` as `transport` says: refuses plaintext beyond loopback unless asked
    /// for (`what` names the listener in the error), loads the certificate otherwise.
    pub fn new(what: &str, tcp: TcpListener, transport: &Transport) -> Result<Self> {
        let local = tcp
            .local_addr()
            .map_err(|e| BusError::io(format!("{what} listener"), e))?;
        transport.check_listener(what, &local.ip().to_string(), local.port())?;
        let Some(files) = &transport.tls else {
            return Ok(Self {
                local,
                inner: Inner::Plain(tcp),
            });
        };
        let config = server_config(files)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, accepted) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(Self {
            local,
            inner: Inner::Tls {
                accepted,
                _acceptor: AbortOnDrop(task),
            },
        })
    }

    /// A plain listener (tests, loopback tools).
    pub fn plain(tcp: TcpListener) -> Result<Self> {
        Self::new("HTTP", tcp, &Transport::default())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls { .. })
    }

    /// `https://addr` or `http://addr`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.is_tls() { "https" } else { "http" },
            self.local
        )
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: tokio::sync::mpsc::Sender<(Stream, SocketAddr)>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((Stream::Tls(Box::new(tls)), peer)).await;
                }
                Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => debug!(%peer, "TLS handshake not finished in time"),
            }
        });
    }
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.inner {
            Inner::Plain(tcp) => loop {
                match TcpListener::accept(tcp).await {
                    Ok((s, a)) => return (Stream::Plain(s), a),
                    Err(e) => {
                        warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            Inner::Tls { accepted, .. } => match accepted.recv().await {
                Some(c) => c,
                // The acceptor ended (it never does while the listener lives).
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// rustls's server configuration for `files`: the certificate read again when its files
/// change; HTTP/2 and HTTP/1.1 offered.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let resolver = ReloadingCert::new(files.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| BusError::Tls {
            what: "server configuration".into(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate, read again when its files change.
#[derive(Debug)]
struct ReloadingCert {
    files: TlsFiles,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl ReloadingCert {
    fn new(files: TlsFiles) -> Result<Self> {
        let key = files.certified_key()?;
        let stamps = stamps(&files);
        Ok(Self {
            files,
            state: Mutex::new(Loaded {
                key,
                stamps,
                checked: Instant::now(),
            }),
        })
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [&files.cert, &files.key]
        .into_iter()
        .map(|p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RELOAD_EVERY {
            state.checked = Instant::now();
            let now = stamps(&self.files);
            if now != state.stamps {
                // A half-written pair fails to load: keep serving the old one, try again
                // at the next check.
                match self.files.certified_key() {
                    Ok(key) => {
                        tracing::info!(cert = %self.files.cert.display(), "certificate reloaded");
                        state.key = key;
                        state.stamps = now;
                    }
                    Err(e) => warn!("certificate changed but cannot be loaded yet: {e}"),
                }
            }
        }
        Some(state.key.clone())
    }
}
