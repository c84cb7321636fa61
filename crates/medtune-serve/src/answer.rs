//! One question through the pipeline shared by every route: safety triage, the generation
//! queue, then the safety check of the answer.

use crate::engine::{FinishReason, GenOutput, GenRequest};
use crate::error::ApiError;
use crate::queue::{Event, Job};
use crate::safety::{SafetyReport, Triage};
use crate::state::AppState;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;

/// Safety inputs of one request.
#[derive(Debug, Clone, Copy)]
pub struct SafetyInput<'a> {
    /// Run the validator at all.
    pub enabled: bool,
    /// The question checked (last user message).
    pub question: &'a str,
    /// Optional patient context.
    pub patient_context: Option<&'a serde_json::Value>,
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Generated text (raw model output), or the escalation message.
    pub raw_text: String,
    /// Text to show: the report's `final_text` when safety ran, else the raw text.
    pub text: String,
    /// Token counts and finish reason; `None` when triage answered without generating.
    pub output: Option<GenOutput>,
    /// The safety report, when safety ran.
    pub safety: Option<SafetyReport>,
}

/// Result of triage: answer at once, or the receiver of a queued generation.
pub enum Started {
    /// Triage answered (emergency escalation): no generation.
    Escalated(Answer),
    /// Generation is queued; read events from the receiver.
    Queued(UnboundedReceiver<Event>),
}

/// Runs triage and, unless it answered, enqueues generation (429 at once when the queue is full).
pub fn start(
    state: &AppState,
    request: GenRequest,
    safety: SafetyInput<'_>,
    deadline: Instant,
) -> Result<Started, ApiError> {
    if let (true, Some(hook)) = (safety.enabled, state.safety()) {
        let triage = hook
            .triage(safety.question, safety.patient_context)
            .map_err(ApiError::BadRequest)?;
        if let Triage::Answer(report) = triage {
            state.metrics().observe_escalation();
            record_warnings(state, &report);
            return Ok(Started::Escalated(Answer {
                raw_text: report.final_text.clone(),
                text: report.final_text.clone(),
                output: None,
                safety: Some(report),
            }));
        }
    }
    let (job, rx) = Job::new(request, deadline);
    state.queue().submit(job)?;
    Ok(Started::Queued(rx))
}

fn record_warnings(state: &AppState, report: &SafetyReport) {
    state
        .metrics()
        .observe_warnings(report.warnings.iter().map(|w| w.category.as_str()));
}

/// Maps a worker's final event to the output or an API error.
pub fn finished(
    state: &AppState,
    result: Result<GenOutput, String>,
    deadline: Instant,
    request_id: u64,
) -> Result<GenOutput, ApiError> {
    match result {
        Ok(out) if out.finish_reason == FinishReason::Cancelled && Instant::now() >= deadline => {
            Err(timeout(state))
        }
        Ok(out) => Ok(out),
        Err(_) if Instant::now() >= deadline => Err(timeout(state)),
        Err(detail) => Err(ApiError::Internal { request_id, detail }),
    }
}

/// The timeout error for this server's settings.
pub fn timeout(state: &AppState) -> ApiError {
    ApiError::Timeout(state.settings().request_timeout.as_secs())
}

/// Checks a generated answer (when safety is on) and builds the [`Answer`].
pub fn check(
    state: &AppState,
    output: GenOutput,
    safety: SafetyInput<'_>,
    request_id: u64,
) -> Result<Answer, ApiError> {
    let report = match (safety.enabled, state.safety()) {
        (true, Some(hook)) => Some(
            hook.check(safety.question, &output.text, safety.patient_context)
                .map_err(|detail| ApiError::Internal { request_id, detail })?,
        ),
        _ => None,
    };
    if let Some(r) = &report {
        record_warnings(state, r);
    }
    Ok(Answer {
        raw_text: output.text.clone(),
        text: report
            .as_ref()
            .map_or_else(|| output.text.clone(), |r| r.final_text.clone()),
        output: Some(output),
        safety: report,
    })
}

/// The whole pipeline without streaming: triage, queue, wait (up to the deadline), check.
pub async fn complete(
    state: &AppState,
    request: GenRequest,
    safety: SafetyInput<'_>,
    request_id: u64,
) -> Result<Answer, ApiError> {
    let deadline = Instant::now() + state.settings().request_timeout;
    let mut rx = match start(state, request, safety, deadline)? {
        Started::Escalated(answer) => return Ok(answer),
        Started::Queued(rx) => rx,
    };
    let wait = async {
        loop {
            match rx.recv().await {
                Some(Event::Token(_)) => continue,
                Some(Event::Done(result)) => return Some(result),
                None => return None,
            }
        }
    };
    let result = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), wait)
        .await
        .map_err(|_| timeout(state))?
        .ok_or(ApiError::Unavailable)?;
    let output = finished(state, result, deadline, request_id)?;
    check(state, output, safety, request_id)
}
