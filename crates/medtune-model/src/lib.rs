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
//!   a `.gguf` file (the tokenizer from `tokenizer.json`, else rebuilt from the GGUF's metadata by
//!   [`gguf_tokenizer`]); [`generate()`] samples from it.
//! - [`lora`]: [`LoraConfig`] (PEFT's fields), [`attach_lora`] → [`LoraSet`] (A, B as f32
//!   `Var`s under PEFT key names); [`peft`] reads/writes PEFT adapter folders; [`merge`] folds
//!   an adapter into a safetensors base; [`recompute`]: [`loss_and_grads`] (plain backward or
//!   layer-wise activation recompute, on CUDA with the hand-written layer and head backward of
//!   `layer_backward.rs`); [`DecoderLm::quantize_nf4`] makes a QLoRA base.
//! - [`fused`]: fused CPU/CUDA ops with their own backward (the GPU training path).
//!
//! # Example
//! ```no_run
//! use medtune_model::{load, LoadOptions, ForwardInput};
//! # fn main() -> medtune_model::Result<()> {
//! let m = load("models/smollm2-135m-instruct".as_ref(), &LoadOptions::default())?;
//! let ids = m.encode("Hello")?;
//! let answer = medtune_model::generate(&m.model, &[ids.clone()], &Default::default(), None, &mut |_, _| {})?;
//! let input = candle_core::Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
//! let logits = m.model.forward(&ForwardInput::ids(&input))?; // [1, T, V]
//! # Ok(()) }
//! ```

// Errors carry the file, tensor/field and shapes by design (they are cold paths), which makes
// the `Err` variant large.
#![allow(clippy::result_large_err)]

mod attention;
mod config;
mod decoder;
pub mod dropout_mask;
mod error;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod gguf_tokenizer;
mod layer_backward;
mod linear;
mod load;
pub mod lora;
pub mod loss;
pub mod mask;
pub mod merge;
mod mlp;
mod names;
pub mod nf4;
mod norm;
pub mod peft;
mod qmatmul;
pub mod recompute;
mod rope;
pub mod sampling;
mod weights;

pub use attention::{softmax_last_dim, Attention, LayerCache, QkvProj};
pub use config::{Activation, Arch, ModelConfig, NormKind, RopeConfig, RopeScaling};
pub use decoder::{Block, DecoderLm, ForwardInput, KvCache, LayerContext};
pub use error::{Error, Result};
pub use generate::{
    generate, generate_with, Detokenize, FinishReason, GenerateOptions, Generation, RowFlow,
};
pub use linear::{Adapter, BaseWeight, Linear};
pub use load::{load, load_tokenizer, LoadOptions, LoadedModel, SourceFormat, TextTokenizer};
pub use lora::{attach_lora, detach_lora, LoraConfig, LoraSet};
pub use loss::{causal_lm_loss, causal_lm_loss_sum, LossSum, IGNORE_INDEX};
/// Chat templates are rendered by the data crate's renderer, so that training prompts and
/// generation prompts come from one implementation.
pub use medtune_data::template::{ChatTemplate, Message};
pub use mlp::{Mlp, MlpKind};
pub use norm::Norm;
pub use qmatmul::QMatMulOp;
pub use recompute::{loss_and_grads, Backward, LossGrads, TrainBatch};
pub use rope::Rope;
pub use sampling::{Sampler, SamplingParams};
pub use weights::{SafetensorsWeights, WeightSource, Weights};
