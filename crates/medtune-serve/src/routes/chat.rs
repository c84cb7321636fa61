//! OpenAI-compatible `POST /v1/chat/completions`, plain JSON or server-sent events.
//!
//! medtune extensions: request fields `use_safety` (default true) and `patient_context`;
//! response field `safety_report` (on the completion, or on the last stream chunk). When the
//! validator annotates an answer, the annotation and disclaimer are streamed as a final content
//! delta; when it replaces a streamed answer, a notice and the replacement follow it.

use super::body_bytes;
use crate::answer::{self, Answer, SafetyInput, Started};
use crate::engine::GenRequest;
use crate::error::ApiError;
use crate::queue::Event;
use crate::request::{parse_chat, ChatRequest};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Instant;
use tokio::sync::mpsc::{channel, Receiver, Sender, UnboundedReceiver};

pub async fn completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let req = parse_chat(&body, &state.limits())?;
    let request_id = state.next_request_id();
    let request = GenRequest {
        messages: req.messages.clone(),
        sampling: req.sampling.clone(),
    };
    let safety = SafetyInput {
        enabled: req.use_safety,
        question: req.question(),
        patient_context: req.patient_context.as_ref(),
    };
    if !req.stream {
        let answer = answer::complete(&state, request, safety, request_id).await?;
        return Ok(Json(completion_body(&state, request_id, &answer)).into_response());
    }
    // Triage and enqueue before the response starts, so 4xx/429 are real status codes.
    let deadline = Instant::now() + state.settings().request_timeout;
    let started = answer::start(&state, request, safety, deadline)?;
    let (tx, rx) = channel::<SseEvent>(64);
    let stream = Streamer {
        state: state.clone(),
        request_id,
        created: unix_now(),
        deadline,
        req,
        tx,
    };
    tokio::spawn(stream.run(started));
    let body = futures_util::stream::unfold(rx, |mut rx: Receiver<SseEvent>| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn usage(answer: &Answer) -> Value {
    let (p, c) = answer
        .output
        .as_ref()
        .map_or((0, 0), |o| (o.prompt_tokens, o.completion_tokens));
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn finish_reason(answer: &Answer) -> &'static str {
    answer
        .output
        .as_ref()
        .map_or("stop", |o| o.finish_reason.as_str())
}

fn completion_body(state: &AppState, request_id: u64, answer: &Answer) -> Value {
    json!({
        "id": format!("chatcmpl-{request_id}"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": state.model().id,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": finish_reason(answer),
        }],
        "usage": usage(answer),
        "safety_report": answer.safety,
        "adapter": state.model().adapter,
    })
}

/// The text to stream after the raw answer so that a plain OpenAI client also ends up with the
/// validator's additions (warnings, escalation, disclaimer), or a notice when it replaced it.
fn safety_tail(answer: &Answer) -> Option<String> {
    let report = answer.safety.as_ref()?;
    let (raw, fin) = (answer.raw_text.trim(), report.final_text.as_str());
    if fin == raw {
        return None;
    }
    if report.action != "replace" && !raw.trim().is_empty() {
        if let Some(pos) = fin.find(raw) {
            let (before, after) = (&fin[..pos], &fin[pos + raw.len()..]);
            let parts: Vec<&str> = [after.trim(), before.trim()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            return Some(format!("\n\n{}", parts.join("\n\n")));
        }
    }
    Some(format!(
        "\n\n[medtune safety: the answer above was replaced]\n{fin}"
    ))
}

/// Feeds one SSE response: reads worker events, writes OpenAI chunks, ends with `[DONE]`.
struct Streamer {
    state: AppState,
    request_id: u64,
    created: u64,
    deadline: Instant,
    req: ChatRequest,
    tx: Sender<SseEvent>,
}

impl Streamer {
    fn chunk(&self, delta: Value, finish: Option<&str>, extra: &[(&str, Value)]) -> SseEvent {
        let mut body = json!({
            "id": format!("chatcmpl-{}", self.request_id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.state.model().id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(obj) = body.as_object_mut() {
            for (key, value) in extra {
                obj.insert((*key).to_string(), value.clone());
            }
        }
        SseEvent::default().data(body.to_string())
    }

    /// Sends one event; `false` when the client went away.
    async fn send(&self, event: SseEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    async fn run(self, started: Started) {
        if !self
            .send(self.chunk(json!({"role": "assistant", "content": ""}), None, &[]))
            .await
        {
            return;
        }
        let answer = match started {
            Started::Escalated(answer) => {
                let text = self.chunk(json!({"content": answer.text}), None, &[]);
                if !self.send(text).await {
                    return;
                }
                Ok(answer)
            }
            Started::Queued(rx) => self.relay(rx).await,
        };
        let last = match answer {
            Ok(answer) => {
                if let Some(tail) = safety_tail(&answer) {
                    if !self
                        .send(self.chunk(json!({"content": tail}), None, &[]))
                        .await
                    {
                        return;
                    }
                }
                self.chunk(
                    json!({}),
                    Some(finish_reason(&answer)),
                    &[
                        ("safety_report", json!(answer.safety)),
                        ("usage", usage(&answer)),
                    ],
                )
            }
            Err(err) => SseEvent::default().data(err.body().to_string()),
        };
        if self.send(last).await {
            let _ = self.send(SseEvent::default().data("[DONE]")).await;
        }
    }

    /// Forwards token events; returns the checked answer or the error to report in-stream.
    async fn relay(&self, mut rx: UnboundedReceiver<Event>) -> Result<Answer, ApiError> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        loop {
            let event = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| answer::timeout(&self.state))?;
            match event {
                Some(Event::Token(piece)) => {
                    if !self
                        .send(self.chunk(json!({"content": piece}), None, &[]))
                        .await
                    {
                        return Err(ApiError::Unavailable);
                    }
                }
                Some(Event::Done(result)) => {
                    let output =
                        answer::finished(&self.state, result, self.deadline, self.request_id)?;
                    let safety = SafetyInput {
                        enabled: self.req.use_safety,
                        question: self.req.question(),
                        patient_context: self.req.patient_context.as_ref(),
                    };
                    return answer::check(&self.state, output, safety, self.request_id);
                }
                None => return Err(ApiError::Unavailable),
            }
        }
    }
}
