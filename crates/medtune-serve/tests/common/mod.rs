//! Deterministic engine and safety hook for the HTTP tests, plus request helpers.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use medtune_serve::{
    Engine, FinishReason, GenOutput, GenRequest, ModelInfo, SafetyHook, SafetyReport,
    SafetyWarning, TokenFlow, Triage,
};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// Answers "echo <question words>" one word per token; optional per-token delay; can be held
/// at a gate so tests control when generation starts.
#[derive(Default)]
pub struct ScriptEngine {
    pub token_delay: Duration,
    /// Batch sizes seen, in order.
    pub batches: Mutex<Vec<usize>>,
    /// Sequences stopped by the server's callback.
    pub stopped: AtomicUsize,
    pub calls: AtomicUsize,
    pub gate: Option<(Mutex<bool>, Condvar)>,
    pub panic_on: Option<String>,
}

impl ScriptEngine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn slow(delay_ms: u64) -> Self {
        ScriptEngine {
            token_delay: Duration::from_millis(delay_ms),
            ..Self::default()
        }
    }

    pub fn gated() -> Self {
        ScriptEngine {
            gate: Some((Mutex::new(false), Condvar::new())),
            ..Self::default()
        }
    }

    pub fn open_gate(&self) {
        if let Some((open, cv)) = &self.gate {
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
    }

    /// The words the engine answers for a question.
    pub fn answer_words(question: &str) -> Vec<String> {
        std::iter::once("echo".to_string())
            .chain(question.split_whitespace().map(str::to_string))
            .collect()
    }
}

impl Engine for ScriptEngine {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            id: "script-engine".into(),
            adapter: Some("test-adapter".into()),
            device: "cpu".into(),
            gpu: false,
        }
    }

    fn generate_batch(
        &self,
        reqs: &[GenRequest],
        on_token: &mut dyn FnMut(usize, &str) -> TokenFlow,
    ) -> medtune_serve::Result<Vec<GenOutput>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.batches.lock().unwrap().push(reqs.len());
        if let Some((open, cv)) = &self.gate {
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        }
        let mut outs = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let question = r.messages.last().map_or("", |m| m.content.as_str());
            if self.panic_on.as_deref() == Some(question) {
                panic!("test engine asked to panic");
            }
            let words = Self::answer_words(question);
            let mut text = String::new();
            let mut finish = FinishReason::Stop;
            for (n, w) in words.iter().enumerate() {
                if n == r.sampling.max_tokens {
                    finish = FinishReason::Length;
                    break;
                }
                let piece = if n == 0 { w.clone() } else { format!(" {w}") };
                if r.sampling.stop.iter().any(|s| piece.contains(s.as_str())) {
                    break;
                }
                std::thread::sleep(self.token_delay);
                text.push_str(&piece);
                if on_token(i, &piece) == TokenFlow::Stop {
                    self.stopped.fetch_add(1, Ordering::SeqCst);
                    finish = FinishReason::Cancelled;
                    break;
                }
            }
            outs.push(GenOutput {
                completion_tokens: text.split_whitespace().count(),
                text,
                prompt_tokens: r
                    .messages
                    .iter()
                    .map(|m| m.content.split_whitespace().count())
                    .sum(),
                finish_reason: finish,
            });
        }
        Ok(outs)
    }
}

pub const DISCLAIMER: &str = "This is not medical advice.";
pub const ESCALATION: &str = "Call emergency services now.";

/// Escalates questions with "chest pain"; warns about "ibuprofen" answers; appends a disclaimer.
pub struct TestSafety;

impl SafetyHook for TestSafety {
    fn triage(&self, question: &str, ctx: Option<&Value>) -> Result<Triage, String> {
        if let Some(Value::String(s)) = ctx {
            if s == "bad" {
                return Err("field `patient_context`: unreadable".into());
            }
        }
        if question.contains("chest pain") {
            return Ok(Triage::Answer(SafetyReport {
                risk_level: 3,
                warnings: vec![SafetyWarning {
                    category: "emergency".into(),
                    subcategory: "cardiac".into(),
                    message: "possible heart attack".into(),
                }],
                action: "replace".into(),
                final_text: format!("{ESCALATION}\n\n{DISCLAIMER}"),
                disclaimer: DISCLAIMER.into(),
            }));
        }
        Ok(Triage::Proceed)
    }

    fn check(&self, _q: &str, answer: &str, _ctx: Option<&Value>) -> Result<SafetyReport, String> {
        let mut warnings = Vec::new();
        if answer.contains("ibuprofen") {
            warnings.push(SafetyWarning {
                category: "max_dose".into(),
                subcategory: "over_max".into(),
                message: "dose too high".into(),
            });
        }
        Ok(SafetyReport {
            risk_level: if warnings.is_empty() { 0 } else { 2 },
            action: if warnings.is_empty() {
                "pass"
            } else {
                "annotate"
            }
            .into(),
            warnings,
            final_text: format!("{answer}\n\n{DISCLAIMER}"),
            disclaimer: DISCLAIMER.into(),
        })
    }
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Sends one request through the router; returns status and body text.
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

pub async fn send_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, text) = send(app, req).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}
