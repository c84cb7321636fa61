//! The HTTP surface: [`app`] builds the router; one module per resource.

mod chat;
mod generate;
mod health;
mod middleware;
mod page;

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;

/// Builds the router: `/`, `/health`, `/metrics` (open), and `/generate`, `/v1/chat/completions`,
/// `/v1/models` (behind the API key when one is set). Unknown routes get a JSON 404.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/generate", post(generate::generate))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(health::models))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_api_key,
        ));
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings().body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Turns the body extractor's outcome into bytes or a JSON error (413 over the limit).
fn body_bytes(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.settings().body_limit_bytes)
        } else {
            ApiError::BadRequest(format!(
                "cannot read request body: {}",
                rejection.body_text()
            ))
        }
    })
}
