//! The accept loop of Strata's HTTP servers (the webhook receiver, the registry), built for
//! clients that do not behave.
//!
//! `axum::serve` has no connection limit and no header timeout: 500 clients trickling one
//! header byte every few seconds (Slowloris) each hold a socket and a task for as long as they
//! like, and enough of them exhaust file descriptors and memory. Here:
//! - **a connection limit** ([`ServeLimits::max_connections`]): past it, a new connection is
//!   closed at once (counted), so the ones already open — real senders — keep being served;
//! - **a header timeout, which is also the idle timeout** ([`ServeLimits::header_timeout`]):
//!   hyper's HTTP/1 header-read timer runs whenever the connection waits for a request head, so
//!   a client that sends its headers too slowly, or keeps a connection open without sending a
//!   request, is dropped after it;
//! - **a body timeout** stays the handler's business (it holds a permit while it reads);
//! - **a graceful drain**: on shutdown, no more accepts; open connections finish their request
//!   in flight (keep-alive is ended) for up to [`ServeLimits::drain_timeout`].
//!
//! HTTP/1.1 only (what webhook senders and registry clients speak).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Bounds on what clients may hold.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Longest wait for a complete request head, including between keep-alive requests.
    pub header_timeout: Duration,
    /// Longest wait for open connections at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Connection counters, readable while serving (for `/metrics`).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed on accept because [`ServeLimits::max_connections`] were open.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    counters: Arc<ConnectionCounters>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, addr = ?addr, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let counters = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = counters.open.load(Ordering::Relaxed),
            "connections still open after the drain timeout: closing them"
        );
    }
    Ok(())
}
