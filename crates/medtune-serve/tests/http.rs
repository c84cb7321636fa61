//! The HTTP surface driven through `oneshot` (no socket) with a deterministic engine.

mod common;

use axum::http::{Request, StatusCode};
use common::*;
use medtune_serve::{app, AppState, ServeSettings};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn settings() -> ServeSettings {
    ServeSettings {
        batch_window: Duration::from_millis(1),
        max_tokens_limit: 64,
        default_max_tokens: 32,
        ..ServeSettings::default()
    }
}

fn server(engine: Arc<ScriptEngine>, settings: ServeSettings) -> (axum::Router, AppState) {
    let manifest = json!({"run_id": "run-1", "base_model": "smollm2"});
    let (state, _worker) =
        AppState::new(engine, Some(Arc::new(TestSafety)), settings, Some(manifest)).unwrap();
    (app(state.clone()), state)
}

fn default_server() -> (axum::Router, Arc<ScriptEngine>) {
    let engine = Arc::new(ScriptEngine::new());
    (server(engine.clone(), settings()).0, engine)
}

#[tokio::test]
async fn health_names_model_adapter_and_manifest() {
    let (app, _) = default_server();
    let (status, v) = send_json(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["model_loaded"], true);
    assert_eq!(v["gpu_available"], false);
    assert_eq!(v["model"], "script-engine");
    assert_eq!(v["adapter"], "test-adapter");
    assert_eq!(v["manifest"]["run_id"], "run-1");
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let (app, _) = default_server();
    let (status, v) = send_json(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "script-engine");
}

#[tokio::test]
async fn generate_returns_answer_with_safety_report() {
    let (app, _) = default_server();
    let body = json!({"question": "take ibuprofen daily", "temperature": 0.1, "max_length": 10});
    let (status, v) = send_json(&app, post_json("/generate", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["response"],
        format!("echo take ibuprofen daily\n\n{DISCLAIMER}")
    );
    assert_eq!(v["safety_report"]["risk_level"], 2);
    assert_eq!(v["safety_report"]["warnings"][0]["category"], "max_dose");
    assert_eq!(v["model"], "script-engine");
    assert!(v["inference_time_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn generate_without_safety_has_no_report() {
    let (app, _) = default_server();
    let body = json!({"question": "hello there", "use_safety": false});
    let (status, v) = send_json(&app, post_json("/generate", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["response"], "echo hello there");
    assert!(v["safety_report"].is_null());
}

#[tokio::test]
async fn emergency_gets_escalation_without_generation() {
    let (app, engine) = default_server();
    let body = json!({"messages": [{"role": "user", "content": "I have crushing chest pain"}]});
    let (status, v) = send_json(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with(ESCALATION), "{content}");
    assert_eq!(v["safety_report"]["risk_level"], 3);
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        0,
        "no generation for emergencies"
    );
    let (_, metrics) = send(&app, get("/metrics")).await;
    assert!(
        metrics.contains("medtune_emergency_escalations_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("medtune_safety_warnings_total{category=\"emergency\"} 1"));
}

#[tokio::test]
async fn chat_completion_has_openai_shape() {
    let (app, _) = default_server();
    let body = json!({"model": "x", "messages": [{"role": "system", "content": "s"},
        {"role": "user", "content": "one two three four"}], "max_tokens": 3, "seed": 1});
    let (status, v) = send_json(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "script-engine");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("echo one two\n\n{DISCLAIMER}")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 8);
    assert_eq!(v["safety_report"]["action"], "pass");
}

#[tokio::test]
async fn stop_strings_end_generation() {
    let (app, _) = default_server();
    let body = json!({"messages": [{"role": "user", "content": "a b STOP c"}], "stop": ["STOP"],
        "use_safety": false});
    let (_, v) = send_json(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(v["choices"][0]["message"]["content"], "echo a b");
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn chat_stream_sends_chunks_report_and_done() {
    let (app, _) = default_server();
    let body =
        json!({"messages": [{"role": "user", "content": "what is ibuprofen"}], "stream": true});
    let req = post_json("/v1/chat/completions", &body.to_string());
    let res = tower::ServiceExt::oneshot(app, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, format!("echo what is ibuprofen\n\n{DISCLAIMER}"));
    // One chunk per generated word, plus role, disclaimer tail and final chunk.
    assert_eq!(chunks.len(), 4 + 3);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["safety_report"]["warnings"][0]["category"], "max_dose");
    assert_eq!(last["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn stream_emergency_is_escalated() {
    let (app, engine) = default_server();
    let body = json!({"messages": [{"role": "user", "content": "chest pain now"}], "stream": true});
    let (status, text) = send(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(ESCALATION), "{text}");
    assert!(text.contains("\"risk_level\":3"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(engine.calls.load(Ordering::SeqCst), 0);
}

async fn expect_error(
    app: &axum::Router,
    req: Request<axum::body::Body>,
    code: StatusCode,
) -> String {
    let (status, v) = send_json(app, req).await;
    assert_eq!(status, code, "{v}");
    assert_eq!(v["error"]["code"], code.as_u16());
    v["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_requests_get_json_4xx() {
    let (app, engine) = default_server();
    let chat = "/v1/chat/completions";
    let m = expect_error(
        &app,
        post_json(chat, "{\"messages\": ["),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("malformed JSON"), "{m}");
    let m = expect_error(
        &app,
        post_json(chat, "{\"messages\": \"hi\"}"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("`messages`"), "{m}");
    let m = expect_error(
        &app,
        post_json(chat, "{\"messages\": []}"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("empty"), "{m}");
    let body = json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 65});
    let m = expect_error(
        &app,
        post_json(chat, &body.to_string()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("max_tokens") && m.contains("1..=64"), "{m}");
    let m = expect_error(
        &app,
        post_json("/generate", "{\"question\": 1}"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("`question`"), "{m}");
    let body = json!({"question": "q", "patient_context": "bad"});
    let m = expect_error(
        &app,
        post_json("/generate", &body.to_string()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("patient_context"), "{m}");
    let m = expect_error(&app, get("/nope"), StatusCode::NOT_FOUND).await;
    assert!(m.contains("/nope"), "{m}");
    expect_error(&app, get("/generate"), StatusCode::METHOD_NOT_ALLOWED).await;
    let huge = format!("{{\"question\": \"{}\"}}", "a".repeat(70 * 1024));
    expect_error(
        &app,
        post_json("/generate", &huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(engine.calls.load(Ordering::SeqCst), 0);
    // The server still answers afterwards.
    let (status, _) = send_json(&app, post_json("/generate", "{\"question\": \"ok\"}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let engine = Arc::new(ScriptEngine::new());
    let (app, _) = server(
        engine,
        ServeSettings {
            api_key: Some("s3cret".into()),
            ..settings()
        },
    );
    let body = "{\"question\": \"hi\"}";
    expect_error(&app, post_json("/generate", body), StatusCode::UNAUTHORIZED).await;
    let mut wrong = post_json("/generate", body);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    expect_error(&app, wrong, StatusCode::UNAUTHORIZED).await;
    let mut right = post_json("/generate", body);
    right
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let (status, _) = send_json(&app, right).await;
    assert_eq!(status, StatusCode::OK);
    // Health and the page stay open; unknown routes are still 404, not 401.
    assert_eq!(send(&app, get("/health")).await.0, StatusCode::OK);
    assert_eq!(send(&app, get("/")).await.0, StatusCode::OK);
    expect_error(&app, get("/v1/unknown"), StatusCode::NOT_FOUND).await;
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn full_queue_answers_429_at_once_and_batches_the_rest() {
    let engine = Arc::new(ScriptEngine::gated());
    let s = ServeSettings {
        queue_capacity: 2,
        max_batch: 4,
        ..settings()
    };
    let (app, state) = server(engine.clone(), s);
    let body = "{\"question\": \"q\", \"use_safety\": false}";
    // First request: taken by the worker, which blocks at the gate.
    let first = tokio::spawn({
        let app = app.clone();
        async move { send_json(&app, post_json("/generate", body)).await }
    });
    wait_until(|| engine.calls.load(Ordering::SeqCst) == 1).await;
    // Two more fill the queue.
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send_json(&app, post_json("/generate", body)).await })
        })
        .collect();
    wait_until(|| state.metrics().queue_depth() == 2).await;
    // The next one is refused immediately.
    let m = expect_error(
        &app,
        post_json("/generate", body),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(m.contains("queue is full"), "{m}");
    engine.open_gate();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    for q in queued {
        assert_eq!(q.await.unwrap().0, StatusCode::OK);
    }
    // The two queued requests were generated as one batch.
    assert_eq!(*engine.batches.lock().unwrap(), vec![1, 2]);
    let (_, metrics) = send(&app, get("/metrics")).await;
    assert!(
        metrics.contains("medtune_http_requests_total{route=\"/generate\",status=\"429\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("medtune_http_requests_total{route=\"/generate\",status=\"200\"} 3"));
    assert!(metrics.contains("medtune_queue_depth 0"));
    assert!(metrics.contains("medtune_batch_size_bucket{le=\"2\"} 2"));
}

#[tokio::test]
async fn slow_generation_times_out_and_is_stopped() {
    let engine = Arc::new(ScriptEngine::slow(400));
    let s = ServeSettings {
        request_timeout: Duration::from_secs(1),
        ..settings()
    };
    let (app, _) = server(engine.clone(), s);
    let body = json!({"question": "a b c d e f g h i j", "use_safety": false});
    let m = expect_error(
        &app,
        post_json("/generate", &body.to_string()),
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert!(m.contains("1 s"), "{m}");
    // The worker stops the abandoned sequence at its next token.
    wait_until(|| engine.stopped.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn engine_panic_is_a_generic_500_and_server_survives() {
    let engine = Arc::new(ScriptEngine {
        panic_on: Some("boom".into()),
        ..ScriptEngine::new()
    });
    let (app, _) = server(engine, settings());
    let (status, v) = send_json(&app, post_json("/generate", "{\"question\": \"boom\"}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.starts_with("internal error (request id"), "{m}");
    assert!(!m.contains("panic"));
    let (status, _) = send_json(&app, post_json("/generate", "{\"question\": \"fine\"}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_routes_tokens_and_warnings() {
    let (app, _) = default_server();
    send(
        &app,
        post_json("/generate", "{\"question\": \"ibuprofen dose\"}"),
    )
    .await;
    send(&app, get("/nowhere")).await;
    let (status, text) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("medtune_http_requests_total{route=\"/generate\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("medtune_http_requests_total{route=\"unmatched\",status=\"404\"} 1"));
    assert!(text.contains("medtune_http_request_duration_seconds_count{route=\"/generate\"} 1"));
    assert!(text.contains("medtune_generated_tokens_total 3"));
    assert!(text.contains("medtune_prompt_tokens_total 2"));
    assert!(text.contains("medtune_safety_warnings_total{category=\"max_dose\"} 1"));
}

#[tokio::test]
async fn page_is_self_contained() {
    let (app, _) = default_server();
    let (status, html) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<script src=\"/app.js\">"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let (status, js) = send(&app, get("/app.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("/v1/chat/completions") && js.contains("disclaimer"));
    assert!(!js.contains("https://"));
    assert_eq!(send(&app, get("/style.css")).await.0, StatusCode::OK);
}
