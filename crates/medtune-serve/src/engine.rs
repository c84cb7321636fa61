//! The [`Engine`] trait: what the server needs from a model. The real implementation wraps
//! `medtune-model` (see `engine_model.rs`); tests use a small deterministic engine.

use serde::{Deserialize, Serialize};

/// One chat message, OpenAI style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Plain text content.
    pub content: String,
}

/// Sampling settings of one request. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature, 0..=2.
    pub temperature: f64,
    /// Nucleus sampling mass, (0, 1].
    pub top_p: f64,
    /// Maximum number of new tokens.
    pub max_tokens: usize,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// RNG seed; `None` lets the engine pick one.
    pub seed: Option<u64>,
}

/// One generation request as the engine sees it: the conversation (the engine renders its own
/// chat template) plus sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Conversation, last message usually from the user.
    pub messages: Vec<ChatMessage>,
    /// Sampling settings.
    pub sampling: Sampling,
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The server asked the engine to stop (client gone or deadline passed).
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Result of one sequence of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    /// Generated text (stop string excluded).
    pub text: String,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// What the per-token callback tells the engine about one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFlow {
    /// Keep generating this sequence.
    Continue,
    /// Stop this sequence now (its output gets [`FinishReason::Cancelled`]).
    Stop,
}

/// Identity of the served model, shown by `/health`, `/v1/models` and the web page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Model id (directory or file name).
    pub id: String,
    /// Adapter id, when a LoRA adapter is applied.
    pub adapter: Option<String>,
    /// Device description, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// Whether generation runs on a GPU.
    pub gpu: bool,
}

/// A loaded model that can generate for a batch of requests.
///
/// `generate_batch` is CPU/GPU bound and is only ever called from the server's dedicated worker
/// thread, never from the async runtime.
pub trait Engine: Send + Sync + 'static {
    /// Identity of the model.
    fn info(&self) -> ModelInfo;

    /// Generates one output per request, in order. `on_token(i, piece)` is called with each new
    /// text piece of sequence `i`; returning [`TokenFlow::Stop`] ends that sequence early.
    fn generate_batch(
        &self,
        requests: &[GenRequest],
        on_token: &mut dyn FnMut(usize, &str) -> TokenFlow,
    ) -> crate::Result<Vec<GenOutput>>;
}
