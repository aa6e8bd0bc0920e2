//! Serving connections with limits (see [`crate::config::http::HttpLimits`]):
//!
//! * a header-read timeout: a connection that sends its request header slowly, or nothing at
//!   all, is closed (hyper's own timer);
//! * a request timeout: a handler (or a body upload) that runs past it is answered 503;
//! * a connection cap: a semaphore permit is taken *before* `accept`, so past the cap new
//!   connections wait in the kernel's listen queue instead of being refused, and are served
//!   as soon as a slot frees.
//!
//! Graceful shutdown: stop accepting, ask every open connection to finish its request in
//! flight, and return once all have (all permits are back).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::config::http::HttpLimits;

pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let header_timeout = Duration::from_secs(limits.header_read_timeout_secs.max(1));
    let request_timeout = Duration::from_secs(limits.request_timeout_secs.max(1));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: log, pause briefly, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = permit;
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                let mut app = app.clone();
                async move {
                    let req = req.map(axum::body::Body::new);
                    match tokio::time::timeout(request_timeout, app.call(req)).await {
                        Ok(r) => r,
                        Err(_) => {
                            Ok(crate::http::error::ApiError::Unavailable("the request took too long; try again".into())
                                .into_response())
                        }
                    }
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "connection ended"); } return; }
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection returns its permit when it ends.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

use axum::response::IntoResponse;
