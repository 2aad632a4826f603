//! The HTTP/1.1 listener the host connects to, with limits: at most [`MAX_CONNECTIONS`]
//! connections served at once (further ones wait in the accept backlog), request headers
//! read within [`HEADER_READ_TIMEOUT`] (an idle or slow connection is closed), and a shutdown
//! bounded by a grace period: when the shutdown signal comes, connections finish their
//! request in flight and close, and whatever is still open when the grace period ends is
//! dropped.
//!
//! The Functions host speaks HTTP/1.1 to a custom handler, so HTTP/2 is not offered. Body
//! limits (size, read time, concurrent reads) are the webhook's, in `server`.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// The most connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a client may take to send a request's headers (also on an idle kept-alive
/// connection: it is then closed).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then drains the connections for at
/// most `grace`. Returns when the shutdown signal came.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Instant {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (closing, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!("connection ended: {error}");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    let signalled = Instant::now();
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a permit: all of them back means all connections closed.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown: connections still open after {} s, closing them",
            grace.as_secs()
        );
    }
    signalled
}
