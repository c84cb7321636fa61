//! Request parsing and validation for `POST /generate` and `POST /v1/chat/completions`.
//!
//! Bodies are parsed into a `serde_json::Value` and each field is checked by hand, so every
//! error names the field and what was expected; a body can never make the parser panic
//! (property-tested below).

use crate::engine::{ChatMessage, Sampling};
use crate::error::ApiError;
use serde_json::{Map, Value};

/// Default sampling temperature when a request gives none.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// Most stop strings accepted (as in the OpenAI API).
pub const MAX_STOP_STRINGS: usize = 4;

/// Limits the parser enforces (from the server settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest accepted `max_tokens` / `max_length`.
    pub max_tokens_limit: usize,
    /// `max_tokens` when absent.
    pub default_max_tokens: usize,
}

/// A validated `POST /generate` body:
/// `{"question", "temperature"?, "max_length"?, "use_safety"?, "patient_context"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The user's question (non-empty).
    pub question: String,
    /// Sampling settings (`max_length` maps to `max_tokens`).
    pub sampling: Sampling,
    /// Run the safety validator (default true).
    pub use_safety: bool,
    /// Optional patient context passed to the validator as is.
    pub patient_context: Option<Value>,
}

/// A validated `POST /v1/chat/completions` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Conversation; at least one non-empty user message.
    pub messages: Vec<ChatMessage>,
    /// Sampling settings.
    pub sampling: Sampling,
    /// Answer as server-sent events.
    pub stream: bool,
    /// Run the safety validator (medtune extension, default true).
    pub use_safety: bool,
    /// Optional patient context (medtune extension).
    pub patient_context: Option<Value>,
}

impl ChatRequest {
    /// The question the safety validator checks: the last user message.
    pub fn question(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.content.as_str())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("empty request body: expected a JSON object"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(bad(format!(
            "request body must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(bad(format!("malformed JSON: {e}"))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> ApiError {
    bad(format!(
        "field `{field}`: expected {expected}, got {}",
        type_name(got)
    ))
}

/// A present, non-null field.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn number_in(
    obj: &Map<String, Value>,
    name: &str,
    default: f64,
    lo: f64,
    hi: f64,
    lo_open: bool,
) -> Result<f64, ApiError> {
    let Some(v) = field(obj, name) else {
        return Ok(default);
    };
    let x = v.as_f64().ok_or_else(|| wrong_type(name, "a number", v))?;
    let above_lo = if lo_open { x > lo } else { x >= lo };
    if !(above_lo && x <= hi) {
        let open = if lo_open { "(" } else { "[" };
        return Err(bad(format!(
            "field `{name}`: {x} is outside {open}{lo}, {hi}]"
        )));
    }
    Ok(x)
}

fn integer(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = field(obj, name) else {
        return Ok(None);
    };
    v.as_u64()
        .map(Some)
        .ok_or_else(|| wrong_type(name, "a non-negative integer", v))
}

fn boolean(obj: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    match field(obj, name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(wrong_type(name, "a boolean", v)),
    }
}

fn max_tokens(
    obj: &Map<String, Value>,
    names: &[&str],
    limits: &RequestLimits,
) -> Result<usize, ApiError> {
    for name in names {
        if let Some(n) = integer(obj, name)? {
            if n == 0 || n > limits.max_tokens_limit as u64 {
                return Err(bad(format!(
                    "field `{name}`: {n} is outside 1..={}",
                    limits.max_tokens_limit
                )));
            }
            return Ok(n as usize);
        }
    }
    Ok(limits.default_max_tokens)
}

fn stop_strings(obj: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let stops = match field(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(&format!("stop[{i}]"), "a string", other)),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("stop", "a string or an array of strings", v)),
    };
    if stops.len() > MAX_STOP_STRINGS {
        return Err(bad(format!(
            "field `stop`: at most {MAX_STOP_STRINGS} strings, got {}",
            stops.len()
        )));
    }
    if stops.iter().any(String::is_empty) {
        return Err(bad("field `stop`: stop strings must not be empty"));
    }
    Ok(stops)
}

fn sampling(
    obj: &Map<String, Value>,
    max_token_fields: &[&str],
    limits: &RequestLimits,
) -> Result<Sampling, ApiError> {
    Ok(Sampling {
        temperature: number_in(obj, "temperature", DEFAULT_TEMPERATURE, 0.0, 2.0, false)?,
        top_p: number_in(obj, "top_p", 1.0, 0.0, 1.0, true)?,
        max_tokens: max_tokens(obj, max_token_fields, limits)?,
        stop: stop_strings(obj)?,
        seed: integer(obj, "seed")?,
    })
}

fn patient_context(obj: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match field(obj, "patient_context") {
        None => Ok(None),
        Some(v @ (Value::Object(_) | Value::String(_))) => Ok(Some(v.clone())),
        Some(v) => Err(wrong_type("patient_context", "an object or a string", v)),
    }
}

/// Parses a `POST /generate` body.
pub fn parse_generate(body: &[u8], limits: &RequestLimits) -> Result<GenerateRequest, ApiError> {
    let obj = parse_object(body)?;
    let question = match field(&obj, "question") {
        None => return Err(bad("field `question` is required")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(wrong_type("question", "a string", v)),
    };
    if question.trim().is_empty() {
        return Err(bad("field `question` must not be empty"));
    }
    Ok(GenerateRequest {
        question,
        sampling: sampling(&obj, &["max_length", "max_tokens"], limits)?,
        use_safety: boolean(&obj, "use_safety", true)?,
        patient_context: patient_context(&obj)?,
    })
}

fn message_content(i: usize, v: Option<&Value>) -> Result<String, ApiError> {
    let name = format!("messages[{i}].content");
    match v {
        None | Some(Value::Null) => Err(bad(format!("field `{name}` is required"))),
        Some(Value::String(s)) => Ok(s.clone()),
        // OpenAI content parts: [{"type": "text", "text": "..."}]; only text is supported.
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(bad(format!(
                            "field `{name}[{j}]`: only {{\"type\": \"text\", \"text\": ...}} parts are supported"
                        )))
                    }
                }
            }
            Ok(text)
        }
        Some(other) => Err(wrong_type(
            &name,
            "a string or an array of text parts",
            other,
        )),
    }
}

fn messages(obj: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match field(obj, "messages") {
        None => return Err(bad("field `messages` is required")),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    if items.is_empty() {
        return Err(bad("field `messages` must not be empty"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(wrong_type(&format!("messages[{i}]"), "an object", item));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => match r.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(bad(format!(
                    "field `messages[{i}].role`: unknown role {other:?} (system, user, assistant)"
                )))
                }
            },
            Some(v) => return Err(wrong_type(&format!("messages[{i}].role"), "a string", v)),
            None => return Err(bad(format!("field `messages[{i}].role` is required"))),
        };
        let content = message_content(i, m.get("content"))?;
        out.push(ChatMessage {
            role: role.to_string(),
            content,
        });
    }
    match out.iter().rev().find(|m| m.role == "user") {
        None => Err(bad("field `messages`: needs at least one user message")),
        Some(m) if m.content.trim().is_empty() => {
            Err(bad("field `messages`: the last user message is empty"))
        }
        Some(_) => Ok(out),
    }
}

/// Parses a `POST /v1/chat/completions` body.
pub fn parse_chat(body: &[u8], limits: &RequestLimits) -> Result<ChatRequest, ApiError> {
    let obj = parse_object(body)?;
    if let Some(v) = field(&obj, "model") {
        if !v.is_string() {
            return Err(wrong_type("model", "a string", v));
        }
    }
    if let Some(n) = integer(&obj, "n")? {
        if n != 1 {
            return Err(bad(format!("field `n`: only n = 1 is supported, got {n}")));
        }
    }
    Ok(ChatRequest {
        messages: messages(&obj)?,
        sampling: sampling(&obj, &["max_tokens", "max_completion_tokens"], limits)?,
        stream: boolean(&obj, "stream", false)?,
        use_safety: boolean(&obj, "use_safety", true)?,
        patient_context: patient_context(&obj)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const LIMITS: RequestLimits = RequestLimits {
        max_tokens_limit: 512,
        default_max_tokens: 64,
    };

    fn chat(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat(v.to_string().as_bytes(), &LIMITS)
    }

    fn message_of(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn full_chat_request_parses() {
        let r = chat(json!({
            "model": "x", "messages": [{"role": "system", "content": "be brief"},
                                       {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0, "top_p": 0.9, "max_tokens": 12, "stop": "\n", "seed": 3, "stream": true
        }))
        .expect("valid");
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.question(), "hi");
        assert_eq!(r.sampling.temperature, 0.0);
        assert_eq!(r.sampling.max_tokens, 12);
        assert_eq!(r.sampling.stop, vec!["\n".to_string()]);
        assert_eq!(r.sampling.seed, Some(3));
        assert!(r.stream && r.use_safety);
    }

    #[test]
    fn defaults_apply() {
        let r = chat(json!({"messages": [{"role": "user", "content": "q"}]})).expect("valid");
        assert_eq!(r.sampling.max_tokens, LIMITS.default_max_tokens);
        assert_eq!(r.sampling.temperature, DEFAULT_TEMPERATURE);
        assert_eq!(r.sampling.top_p, 1.0);
        assert!(!r.stream);
    }

    #[test]
    fn errors_name_the_field() {
        let m = message_of(chat(json!({"messages": []})));
        assert!(m.contains("`messages` must not be empty"), "{m}");
        let m = message_of(chat(
            json!({"messages": [{"role": "user", "content": "q"}], "temperature": "hot"}),
        ));
        assert!(m.contains("`temperature`") && m.contains("a string"), "{m}");
        let m = message_of(chat(
            json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 513}),
        ));
        assert!(m.contains("`max_tokens`") && m.contains("1..=512"), "{m}");
        let m = message_of(chat(
            json!({"messages": [{"role": "robot", "content": "q"}]}),
        ));
        assert!(m.contains("messages[0].role"), "{m}");
        let m = message_of(chat(
            json!({"messages": [{"role": "user", "content": "  "}]}),
        ));
        assert!(m.contains("empty"), "{m}");
        let m = message_of(chat(
            json!({"messages": [{"role": "user", "content": "q"}], "stop": ["a","b","c","d","e"]}),
        ));
        assert!(m.contains("at most 4"), "{m}");
        let m = message_of(parse_chat(b"{\"messages\": [", &LIMITS));
        assert!(m.starts_with("malformed JSON"), "{m}");
        let m = message_of(parse_chat(b"[1]", &LIMITS));
        assert!(m.contains("JSON object"), "{m}");
    }

    #[test]
    fn generate_request_parses_and_validates() {
        let body = json!({"question": "What is aspirin?", "temperature": 0.2, "max_length": 30,
                          "use_safety": false, "patient_context": {"age": 70}});
        let r = parse_generate(body.to_string().as_bytes(), &LIMITS).expect("valid");
        assert_eq!(r.question, "What is aspirin?");
        assert_eq!(r.sampling.max_tokens, 30);
        assert!(!r.use_safety);
        assert_eq!(r.patient_context, Some(json!({"age": 70})));
        let m = message_of(parse_generate(b"{\"question\": 5}", &LIMITS));
        assert!(m.contains("`question`"), "{m}");
        let m = message_of(parse_generate(b"{}", &LIMITS));
        assert!(m.contains("`question` is required"), "{m}");
        let m = message_of(parse_generate(
            b"{\"question\": \"q\", \"max_length\": 1.5}",
            &LIMITS,
        ));
        assert!(m.contains("`max_length`"), "{m}");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|x| json!(x)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("messages".to_string()),
                        Just("role".to_string()),
                        Just("content".to_string()),
                        Just("question".to_string()),
                        Just("max_tokens".to_string()),
                        Just("stop".to_string()),
                        Just("temperature".to_string()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_chat(&bytes, &LIMITS);
            let _ = parse_generate(&bytes, &LIMITS);
        }

        #[test]
        fn arbitrary_json_gives_valid_request_or_400(v in arb_json()) {
            let body = v.to_string();
            for r in [parse_chat(body.as_bytes(), &LIMITS).err(),
                      parse_generate(body.as_bytes(), &LIMITS).err()].into_iter().flatten() {
                prop_assert!(matches!(r, ApiError::BadRequest(_)));
            }
        }

        #[test]
        fn valid_requests_round_trip(
            question in "[a-zA-Z ?]{0,20}[a-z]",
            temperature in 0.0f64..=2.0,
            top_p in 0.01f64..=1.0,
            max_tokens in 1usize..=512,
            seed in any::<u64>(),
            stop in prop::collection::vec("[a-z\n]{1,4}", 0..=4),
        ) {
            let body = json!({"messages": [{"role": "user", "content": question}],
                "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                "seed": seed, "stop": stop});
            let r = parse_chat(body.to_string().as_bytes(), &LIMITS).expect("valid request");
            prop_assert_eq!(r.question(), question.as_str());
            prop_assert_eq!(r.sampling.max_tokens, max_tokens);
            prop_assert_eq!(r.sampling.seed, Some(seed));
            prop_assert_eq!(r.sampling.stop, stop);
            prop_assert!((r.sampling.temperature - temperature).abs() < 1e-12);
        }

        #[test]
        fn max_tokens_over_limit_is_rejected(n in 513u64..u64::MAX) {
            let body = json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": n});
            let m = message_of(parse_chat(body.to_string().as_bytes(), &LIMITS));
            prop_assert!(m.contains("max_tokens"));
        }
    }
}
