//! `POST /generate`: `{"question", "temperature"?, "max_length"?, "use_safety"?,
//! "patient_context"?}` → `{"response", "safety_report", "inference_time_ms", "model", ...}`.

use super::body_bytes;
use crate::answer::{complete, SafetyInput};
use crate::engine::{ChatMessage, GenRequest};
use crate::error::ApiError;
use crate::request::parse_generate;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::time::Instant;

pub async fn generate(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let start = Instant::now();
    let body = body_bytes(&state, body)?;
    let req = parse_generate(&body, &state.limits())?;
    let request_id = state.next_request_id();
    let request = GenRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: req.question.clone(),
        }],
        sampling: req.sampling,
    };
    let safety = SafetyInput {
        enabled: req.use_safety,
        question: &req.question,
        patient_context: req.patient_context.as_ref(),
    };
    let answer = complete(&state, request, safety, request_id).await?;
    let (prompt_tokens, completion_tokens, finish_reason) =
        answer.output.as_ref().map_or((0, 0, "escalated"), |o| {
            (
                o.prompt_tokens,
                o.completion_tokens,
                o.finish_reason.as_str(),
            )
        });
    Ok(Json(json!({
        "response": answer.text,
        "safety_report": answer.safety,
        "inference_time_ms": start.elapsed().as_secs_f64() * 1000.0,
        "model": state.model().id,
        "adapter": state.model().adapter,
        "finish_reason": finish_reason,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })))
}
