//! `GET /health`, `GET /v1/models` and `GET /metrics`.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// `{"status", "model_loaded", "gpu_available", "model", "adapter", "manifest", ...}`.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let m = state.model();
    Json(json!({
        "status": "ok",
        "model_loaded": true,
        "gpu_available": m.gpu,
        "device": m.device,
        "model": m.id,
        "adapter": m.adapter,
        "manifest": state.manifest(),
        "safety": state.safety().is_some(),
        "auth_required": state.settings().api_key.is_some(),
        "queue_depth": state.metrics().queue_depth(),
        "queue_capacity": state.settings().queue_capacity,
        "max_tokens_limit": state.settings().max_tokens_limit,
        "uptime_s": state.uptime_secs(),
    }))
}

/// OpenAI `GET /v1/models`: the one served model.
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let m = state.model();
    Json(json!({
        "object": "list",
        "data": [{
            "id": m.id,
            "object": "model",
            "created": state.started_unix(),
            "owned_by": "medtune",
            "adapter": m.adapter,
        }],
    }))
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics().render(),
    )
}
