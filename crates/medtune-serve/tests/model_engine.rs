//! The real engine (`ModelEngine`, medtune-model) behind the HTTP layer, on the tiny llama
//! fixture of `fixtures/hf-tiny` (random weights: the text is noise, but greedy decoding is
//! deterministic, so streamed, batched and single outputs must agree).

mod common;

use common::{post_json, send, send_json};
use medtune_serve::{
    app, AppState, ChatMessage, Engine, GenRequest, ModelEngine, Sampling, ServeSettings, TokenFlow,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hf-tiny/models/llama")
}

fn request(question: &str, max_tokens: usize) -> GenRequest {
    GenRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: question.into(),
        }],
        sampling: Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens,
            stop: Vec::new(),
            seed: Some(1),
        },
    }
}

#[test]
fn batched_greedy_equals_single_and_pieces_equal_text() {
    let engine = ModelEngine::load(&fixture(), None).expect("load tiny llama");
    let reqs = [
        request("hello there", 6),
        request("a much longer question about doses", 9),
    ];
    let mut pieces = vec![String::new(); 2];
    let batched = engine
        .generate_batch(&reqs, &mut |i, p| {
            pieces[i].push_str(p);
            TokenFlow::Continue
        })
        .expect("batch");
    for (i, r) in reqs.iter().enumerate() {
        let single = engine
            .generate_batch(std::slice::from_ref(r), &mut |_, _| TokenFlow::Continue)
            .expect("single");
        assert_eq!(
            single[0].text, batched[i].text,
            "row {i}: batched vs single"
        );
        assert_eq!(
            pieces[i], batched[i].text,
            "row {i}: streamed pieces vs final text"
        );
        assert!(batched[i].completion_tokens <= r.sampling.max_tokens);
        assert!(batched[i].prompt_tokens > 0);
    }
}

#[test]
fn stop_from_callback_cancels_the_row() {
    let engine = ModelEngine::load(&fixture(), None).expect("load tiny llama");
    let out = engine
        .generate_batch(&[request("hello", 8)], &mut |_, _| TokenFlow::Stop)
        .expect("generate");
    assert_eq!(out[0].finish_reason, medtune_serve::FinishReason::Cancelled);
    // Generation of the row stops at the first token that produced text.
    assert!(out[0].completion_tokens < 8, "{:?}", out[0]);
}

#[test]
fn missing_model_is_a_clear_error() {
    let Err(err) = ModelEngine::load(&fixture().join("nope"), None) else {
        panic!("loading a missing model must fail");
    };
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn chat_through_the_router_with_adapter() {
    let engine =
        ModelEngine::load(&fixture(), Some(&fixture().join("lora_adapter"))).expect("load");
    let settings = ServeSettings {
        max_tokens_limit: 32,
        default_max_tokens: 8,
        ..ServeSettings::default()
    };
    let (state, _worker) = AppState::new(Arc::new(engine), None, settings, None).expect("state");
    let app = app(state);
    let (_, health) = send_json(&app, common::get("/health")).await;
    assert_eq!(health["model"], "llama");
    assert_eq!(health["adapter"], "lora_adapter");
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 5});
    let (status, v) = send_json(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 5);
    // The same request streamed gives the same text.
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 5, "stream": true});
    let (status, sse) = send(&app, post_json("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, 200);
    let streamed: String = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(streamed, text);
}
