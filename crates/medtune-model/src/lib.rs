//! Model core of medtune: Hugging Face configs, weight loading (safetensors, GGUF), one decoder
//! for six architectures (llama, mistral, qwen2, phi3, phi, gpt2) built only from
//! differentiable ops, generation, and chat-template rendering.
//!
//! # Shape legend
//! - `B` batch size, `T` new tokens in this pass, `S` keys attended to (cache + new)
//! - `C` hidden size, `H` query heads, `H_kv` key/value heads, `D` head dim, `R` rotary dim
//!   (in LoRA code, `R` is the LoRA rank)
//! - `V` vocabulary size, `I` MLP inner size
//!
//! # Main types
//! - [`ModelConfig`]: a HF `config.json` (or GGUF metadata) normalised for all families.
//! - [`Weights`]: tensors by HF name from safetensors (mmap, sharded) or GGUF.
//! - [`DecoderLm`]: the model; [`DecoderLm::forward`] gives logits [B, T, V] (f32).
//! - [`Linear`]: every projection, a frozen base plus an optional [`Adapter`] slot.
//! - [`load`] → [`LoadedModel`]: model + tokenizer + chat template + EOS ids from a folder or
//!   a `.gguf` file; [`generate()`] samples from it.
//!
//! # Example
//! ```no_run
//! use medtune_model::{load, LoadOptions, ForwardInput};
//! # fn main() -> medtune_model::Result<()> {
//! let m = load("models/smollm2-135m-instruct".as_ref(), &LoadOptions::default())?;
//! //! let ids = m.encode("Hello")?;
//! let answer = medtune_model::generate(&m.model, &[ids.clone()], &Default::default(), None, &mut |_, _| {})?;
//! let input = candle_core::Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
//! let logits = m.model.forward(&ForwardInput::ids(&input))?; // [1, T, V]
//! # Ok(()) }
//! ```

mod attention;
pub mod chat;
mod config;
mod decoder;
mod error;
pub mod generate;
pub mod gguf;
mod linear;
mod load;
pub mod lora;
pub mod loss;
pub mod mask;
pub mod merge;
mod mlp;
mod names;
pub mod nf4;
pub mod peft;
mod norm;
mod qmatmul;
pub mod recompute;
mod rope;
pub mod sampling;
mod weights;

pub use chat::{ChatTemplate, Message};
pub use attention::{softmax_last_dim, Attention, LayerCache, QkvProj};
pub use config::{Activation, Arch, ModelConfig, NormKind, RopeConfig, RopeScaling};
pub use decoder::{Block, DecoderLm, ForwardInput, KvCache, LayerContext};
pub use error::{Error, Result};
pub use generate::{generate, Detokenize, FinishReason, GenerateOptions, Generation};
pub use linear::{Adapter, BaseWeight, Linear};
pub use load::{load, LoadOptions, LoadedModel, SourceFormat, TextTokenizer};
pub use lora::{attach_lora, detach_lora, LoraConfig, LoraSet};
pub use loss::{causal_lm_loss, causal_lm_loss_sum, LossSum, IGNORE_INDEX};
pub use mlp::{Mlp, MlpKind};
pub use norm::Norm;
pub use qmatmul::QMatMulOp;
pub use recompute::{loss_and_grads, Backward, LossGrads, TrainBatch};
pub use rope::Rope;
pub use sampling::{Sampler, SamplingParams};
pub use weights::{SafetensorsWeights, WeightSource, Weights};
