//! Running the server: [`serve`] on a bound listener with graceful shutdown, and
//! [`run_blocking`], the whole thing on its own runtime until SIGINT/SIGTERM.

use crate::engine::{Engine, ModelInfo};
use crate::routes::app;
use crate::safety::SafetyHook;
use crate::state::AppState;
use crate::{Error, Result, ServeSettings, Worker};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting connections,
/// lets in-flight requests (streams included) finish, closes the queue and joins the worker.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    worker: Worker,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let served = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Io {
            addr: addr.clone(),
            source,
        });
    state.queue().close();
    let joined = tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| Error::Engine(format!("worker join failed: {e}")))?;
    served.and(joined)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Binds `settings.host:settings.port`, calls `on_ready` with the bound address and the model,
/// and serves until SIGINT/SIGTERM; returns after in-flight requests finished.
pub fn run_blocking(
    engine: Arc<dyn Engine>,
    safety: Option<Arc<dyn SafetyHook>>,
    settings: ServeSettings,
    manifest: Option<serde_json::Value>,
    on_ready: impl FnOnce(SocketAddr, &ModelInfo),
) -> Result<()> {
    let bind = format!("{}:{}", settings.host, settings.port);
    let io = |source| Error::Io {
        addr: bind.clone(),
        source,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&bind).await.map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let (state, worker) = AppState::new(engine, safety, settings, manifest)?;
        on_ready(addr, state.model());
        serve(listener, state, worker, shutdown_signal()).await
    })
}
