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
mod server;
mod state;
mod stream_text;

pub use config::{ServeConfig, ServeSettings};
pub use engine::{
    ChatMessage, Engine, FinishReason, GenOutput, GenRequest, ModelInfo, Sampling, TokenFlow,
};
pub use engine_model::ModelEngine;
pub use error::{ApiError, Error, Result};
pub use metrics::Metrics;
pub use queue::{Queue, Worker};
pub use request::{parse_chat, parse_generate, ChatRequest, GenerateRequest, RequestLimits};
pub use routes::app;
pub use safety::{SafetyHook, SafetyReport, SafetyWarning, Triage};
pub use safety_validator::ValidatorHook;
pub use server::{run_blocking, serve, shutdown_signal};
pub use state::AppState;
