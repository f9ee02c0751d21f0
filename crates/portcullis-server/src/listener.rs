//! Accepting connections, plain or TLS, with the limits a public listener needs
//! and `axum::serve` does not set:
//!
//! - **Slow clients.** A client has `server.header_read_timeout` to finish the TLS
//!   handshake and then, for every request, to send the whole request head, counted
//!   from the moment the connection is ready for it (so an idle keep-alive connection
//!   is closed after the same time). A slow-loris client holding connections open
//!   with a byte at a time is cut off; a slow *body* is bounded by
//!   `server.request_timeout`, which covers the handler that reads it.
//! - **Size.** Request heads over `server.max_header_bytes` are answered 431 (HTTP/1)
//!   or refused by the HTTP/2 header-list limit; at most 100 header fields.
//! - **Count.** At most `server.max_connections` connections are open; past that the
//!   listener stops accepting until one closes (the kernel backlog holds the rest).
//!
//! Shutdown: on the stop signal the listener closes, every connection is told to
//! finish (HTTP/1 keep-alive off, HTTP/2 GOAWAY) and gets `server.shutdown_grace`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::config::ServerSettings;

/// What the listener serves: [`crate::router`]'s application, or any service like it.
pub trait App:
    tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Header fields a request may carry.
pub const MAX_HEADERS: usize = 100;

/// The connection limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// TLS handshake, and each request head, must arrive within this.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and header fields), bytes.
    pub max_header_bytes: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// After the stop signal, connections get this long to finish.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// The limits of `s`.
    pub fn from_settings(s: &ServerSettings) -> Self {
        Self {
            header_read_timeout: s.header_read_timeout,
            max_header_bytes: s.max_header_bytes,
            max_connections: s.max_connections,
            shutdown_grace: s.shutdown_grace,
        }
    }
}

/// Loads a PEM certificate chain and private key into a TLS 1.2/1.3 acceptor that
/// offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let what = || {
        format!(
            "loading server.tls_cert_file {} / server.tls_key_file {}",
            cert.display(),
            key.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(what)?;
    if chain.is_empty() {
        anyhow::bail!("{}: no certificate in the file", what());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(what)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(what)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The read buffer bounds the head: a head that does not fit is 431.
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .max_headers(MAX_HEADERS);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        // A peer that stops answering pings is dropped, so a dead HTTP/2 connection
        // does not hold its slot forever.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Accept errors that concern one connection only (the next accept may succeed).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// Serves `app` on `listener` (with TLS when `tls` is set) until `stop` turns true,
/// then drains connections for up to `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: impl App,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.context("connection slots closed")?,
            _ = stopped(&mut stop) => break,
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            remote,
            timeout: limits.header_read_timeout,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => conn.run(tcp).await,
                Some(acceptor) => {
                    match tokio::time::timeout(conn.timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => conn.run(stream).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "shutdown grace expired; dropping remaining connections");
        }
    }
    Ok(())
}

/// An IO whose first [`PREFACE_BYTES`] bytes must arrive before a deadline. hyper's
/// header timeout starts only once it knows the protocol; this bounds the protocol
/// detection before it (a connection that opens and says nothing), and the HTTP/2
/// preface. After those bytes it is a plain pass-through.
struct FirstBytesDeadline<I> {
    io: I,
    remaining: usize,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// The HTTP/2 connection preface is 24 bytes; any HTTP/1 request line is longer.
const PREFACE_BYTES: usize = 24;

impl<I> FirstBytesDeadline<I> {
    fn new(io: I, within: Duration) -> Self {
        Self {
            io,
            remaining: PREFACE_BYTES,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesDeadline<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let got = buf.filled().len() - before;
                this.remaining = this.remaining.saturating_sub(got);
                Poll::Ready(r)
            }
            Poll::Pending if this.remaining > 0 => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client sent nothing in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstBytesDeadline<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

struct Connection<A> {
    app: A,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    remote: SocketAddr,
    timeout: Duration,
}

impl<A: App> Connection<A> {
    async fn run<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let remote = self.remote;
        let svc = self
            .app
            .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                // The peer's address; the edge replaces it with the client's.
                req.extensions_mut()
                    .insert(crate::net::ClientIp(remote.ip()));
                req
            });
        let io = FirstBytesDeadline::new(io, self.timeout);
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        if let Err(e) = self.watcher.watch(conn).await {
            // Timeouts, resets and malformed requests: the client's business.
            tracing::debug!(peer = %remote, error = %e, "connection ended with an error");
        }
    }
}
