//! Serving: a REST and OpenAI-compatible HTTP server (axum/tokio) with a safety report on
//! every answer and the provenance of the model that gave it.
//!
//! Main types:
//! - [`Engine`]: what the server needs from a model (`generate_batch` with a per-token callback).
//!   [`ModelEngine`] wraps a `medtune-model` model; tests use small deterministic engines.
//! - [`SafetyHook`]: triage before generation and a [`SafetyReport`] after it;
//!   [`ValidatorHook`] wraps `medtune-safety`'s validator.
//! - [`AppState`] (shared state; starting it spawns the batching worker thread) and [`app`], the
//!   router: `POST /generate`, `POST /v1/chat/completions` (SSE with `stream: true`),
//!   `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus) and the chat page at `/`.
//! - [`ServeConfig`] (`serve.toml`) resolved into [`ServeSettings`]; [`ApiError`] for every
//!   HTTP error (JSON body); [`Error`] for everything else.
//! - [`loadtest`]: the load generator behind `medtune bench serve`.
//!
//! ```
//! use medtune_serve::{app, AppState, Engine, GenOutput, GenRequest, ModelInfo, FinishReason,
//!     ServeSettings, TokenFlow};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl Engine for Echo {
//!     fn info(&self) -> ModelInfo {
//!         ModelInfo { id: "echo".into(), adapter: None, device: "cpu".into(), gpu: false }
//!     }
//!     fn generate_batch(&self, reqs: &[GenRequest], on_token: &mut dyn FnMut(usize, &str) -> TokenFlow)
//!         -> medtune_serve::Result<Vec<GenOutput>> {
//!         Ok(reqs.iter().enumerate().map(|(i, r)| {
//!             let text = r.messages.last().map_or(String::new(), |m| m.content.clone());
//!             on_token(i, &text);
//!             GenOutput { text, prompt_tokens: 1, completion_tokens: 1, finish_reason: FinishReason::Stop }
//!         }).collect())
//!     }
//! }
//!
//! let (state, worker) = AppState::new(Arc::new(Echo), None, ServeSettings::default(), None)?;
//! let router = app(state.clone()); // serve it with `medtune_serve::serve` or axum::serve
//! # drop(router);
//! state.queue().close();
//! worker.join()?;
//! # Ok::<(), medtune_serve::Error>(())
//! ```

#![deny(missing_docs)]

mod answer;
mod config;
mod engine;
mod engine_model;
mod error;
pub mod loadtest;
mod metrics;
mod queue;
mod request;
mod routes;
mod safety;
mod safety_validator;
mod state;
mod stream_text;

pub use config::{ServeConfig, ServeSettings};
pub use engine::{ChatMessage, Engine, FinishReason, GenOutput, GenRequest, ModelInfo, Sampling, TokenFlow};
pub use engine_model::ModelEngine;
pub use error::{ApiError, Error, Result};
pub use metrics::Metrics;
pub use queue::{Queue, Worker};
pub use request::{parse_chat, parse_generate, ChatRequest, GenerateRequest, RequestLimits};
pub use routes::app;
pub use safety::{SafetyHook, SafetyReport, SafetyWarning, Triage};
pub use safety_validator::ValidatorHook;
pub use state::AppState;

use std::future::Future;

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting connections,
/// lets in-flight requests finish, closes the queue and waits for the worker.
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
