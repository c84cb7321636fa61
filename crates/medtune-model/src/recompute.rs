//! Loss and LoRA gradients for one micro-batch, by plain backward or by layer-wise activation
//! recompute (gradient checkpointing).
//!
//! - [`Backward::Plain`] is the reference: one forward that keeps the whole graph, one
//!   `backward`. Memory grows with layers × tokens.
//! - [`Backward::Recompute`] keeps only each layer's input. Forward: run every layer and
//!   detach its output (its graph is freed at once). Backward, top layer first: rebuild the layer
//!   from a [`Var`] holding its saved input, backprop the scalar `sum(y ⊙ dL/dy)` (whose gradient
//!   w.r.t. the layer's parameters and input is exactly the chain rule's), add up the LoRA
//!   gradients and hand `dL/dx` down to the layer below. Only one layer's graph is alive at a
//!   time; each layer runs forward twice. Dropout masks repeat because they depend only on the
//!   pass number (see [`crate::lora`]).
//!
//! Both return the SUM of token losses and the number of supervised tokens, with gradients of
//! that sum, so a trainer divides by the token count of the whole accumulated batch.
//!
//! ```no_run
//! use medtune_model::{attach_lora, load, loss_and_grads, Backward, LoadOptions, LoraConfig, TrainBatch};
//! # fn main() -> medtune_model::Result<()> {
//! # let (ids, labels) = (candle_core::Tensor::zeros((1, 4), candle_core::DType::U32, &candle_core::Device::Cpu)?, candle_core::Tensor::zeros((1, 4), candle_core::DType::I64, &candle_core::Device::Cpu)?);
//! let mut m = load("models/smollm2".as_ref(), &LoadOptions::default())?;
//! let lora = attach_lora(&mut m.model, &LoraConfig::default(), 0)?;
//! let batch = TrainBatch { input_ids: &ids, attention_mask: None, labels: &labels, position_ids: None };
//! let r = loss_and_grads(&m.model, &lora, &batch, Backward::Recompute)?;
//! let mean_loss = r.loss_sum / r.n_supervised.max(1) as f64;
//! # Ok(()) }
//! ```

use crate::decoder::{DecoderLm, ForwardInput};
use crate::error::{Error, Result};
use crate::lora::LoraSet;
use crate::loss::causal_lm_loss_sum;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// How gradients are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backward {
    /// Whole-graph backward (reference).
    #[default]
    Plain,
    /// Layer-wise activation recompute. On CUDA, layers that [`crate::layer_backward`]
    /// supports (Llama-style) use the hand-written backward unless `MEDTUNE_UNFUSED` names
    /// `layer_backward`; elsewhere autograd.
    Recompute,
    /// Layer-wise recompute with the hand-written layer backward wherever the layer supports
    /// it, on every device (autograd for the others). Same gradients as [`Backward::Plain`]
    /// to rounding.
    RecomputeManual,
}

/// How many layers of `model` the hand-written layer backward handles (the rest use autograd).
pub fn manual_backward_layers(model: &DecoderLm, batch: &TrainBatch) -> Result<usize> {
    let (_, ctx) = model.prepare(&batch.forward_input())?;
    Ok(model
        .layers()
        .iter()
        .filter(|l| crate::layer_backward::supported(l, &ctx))
        .count())
}

/// One micro-batch for training or scoring.
#[derive(Clone, Copy)]
pub struct TrainBatch<'a> {
    /// Token ids [B, T] (integer dtype).
    pub input_ids: &'a Tensor,
    /// 0/1 padding mask [B, T]; `None` = no padding.
    pub attention_mask: Option<&'a Tensor>,
    /// Labels [B, T]: the token to predict at each position (shifted inside the loss), -100 to
    /// ignore.
    pub labels: &'a Tensor,
    /// Position ids [B, T]; `None` = 0..T.
    pub position_ids: Option<&'a Tensor>,
}

impl<'a> TrainBatch<'a> {
    fn forward_input(&self) -> ForwardInput<'a> {
        ForwardInput {
            input_ids: Some(self.input_ids),
            attention_mask: self.attention_mask,
            position_ids: self.position_ids,
            mask: None,
        }
    }
}

/// Summed loss, supervised-token count and the gradient of the summed loss per LoRA tensor.
pub struct LossGrads {
    /// Σ −log p(label) over supervised tokens.
    pub loss_sum: f64,
    /// Number of supervised tokens.
    pub n_supervised: usize,
    /// (PEFT key, gradient f32, same shape as the tensor), in [`LoraSet::vars`] order.
    pub grads: Vec<(String, Tensor)>,
}

/// Loss sum and LoRA gradients of one micro-batch.
///
/// Shapes: `input_ids`, `attention_mask`, `labels`, `position_ids` [B, T]. Gradients are those
/// of the SUM of the token losses (divide by the accumulated `n_supervised` for the mean). Starts
/// a new dropout pass. A trainable tensor that receives no gradient is an error
/// ([`Error::NoGradient`]), never a silent zero; a batch with no supervised token gives zeros.
pub fn loss_and_grads(
    model: &DecoderLm,
    lora: &LoraSet,
    batch: &TrainBatch,
    backward: Backward,
) -> Result<LossGrads> {
    lora.next_pass();
    match backward {
        Backward::Plain => plain(model, lora, batch),
        Backward::Recompute => recompute(model, lora, batch, false),
        Backward::RecomputeManual => recompute(model, lora, batch, true),
    }
}

/// Reference path: forward keeping the whole graph, then one backward.
fn plain(model: &DecoderLm, lora: &LoraSet, batch: &TrainBatch) -> Result<LossGrads> {
    // `DecoderLm::forward`, with the head of `head_for_loss`.
    let (mut x, ctx) = model.prepare(&batch.forward_input())?;
    for layer in model.layers() {
        x = layer.forward(&x, model.rope(), &ctx, None)?;
    }
    let logits = head_for_loss(model, &x)?; // [B, T, V]
    let loss = causal_lm_loss_sum(&logits, batch.labels)?;
    let loss_sum = f64::from(loss.sum.to_scalar::<f32>()?);
    if loss.count == 0 {
        return zero_grads(lora, loss_sum);
    }
    let store = loss.sum.backward()?;
    let mut acc = Accumulator::new(lora);
    acc.add(&store)?;
    Ok(LossGrads {
        loss_sum,
        n_supervised: loss.count,
        grads: acc.finish()?,
    })
}

/// Layer-wise recompute: only layer inputs [B, T, C] are kept between forward and backward.
/// `manual`: use the hand-written layer backward wherever supported, on any device (else only
/// where the fused kernels run, see [`Backward::Recompute`]).
fn recompute(
    model: &DecoderLm,
    lora: &LoraSet,
    batch: &TrainBatch,
    manual: bool,
) -> Result<LossGrads> {
    let (x0, ctx) = model.prepare(&batch.forward_input())?;
    let manual = manual || crate::fused::enabled("layer_backward", &x0);
    // Forward, keeping each layer's input and dropping its graph.
    let mut inputs = Vec::with_capacity(model.layers().len());
    let mut x = x0.detach();
    for layer in model.layers() {
        inputs.push(x.clone());
        x = if manual && crate::layer_backward::supported(layer, &ctx) {
            crate::layer_backward::block_forward(layer, &x, &ctx)?
        } else {
            layer.forward(&x, model.rope(), &ctx, None)?.detach()
        };
    }
    // Head and loss: h [B, T, C] → logits [B, T, V] → Σ loss, and dL/dh.
    let mut acc = Accumulator::new(lora);
    let (loss_sum, count, mut dy) = if manual && crate::layer_backward::head_supported(model) {
        // Chunked over rows, no autograd, no full logits.
        let (loss_sum, count, dh) = crate::layer_backward::head_backward(model, &x, batch.labels)?;
        if count == 0 {
            return zero_grads(lora, loss_sum);
        }
        (loss_sum, count, dh)
    } else {
        let h = Var::from_tensor(&x)?;
        let logits = head_for_loss(model, h.as_tensor())?;
        let loss = causal_lm_loss_sum(&logits, batch.labels)?;
        let loss_sum = f64::from(loss.sum.to_scalar::<f32>()?);
        if loss.count == 0 {
            return zero_grads(lora, loss_sum);
        }
        let store = loss.sum.backward()?;
        acc.add(&store)?;
        let dh = grad_of(&store, h.as_tensor(), "final hidden state")?; // dL/dh [B, T, C]
        (loss_sum, loss.count, dh)
    };
    // Backward, top layer first: rebuild the layer, backprop sum(y ⊙ dL/dy).
    for (i, (layer, xin)) in model.layers().iter().zip(&inputs).enumerate().rev() {
        if manual && crate::layer_backward::supported(layer, &ctx) {
            let (dx, grads) = crate::layer_backward::block_backward(layer, xin, &dy, &ctx)?;
            acc.add_pairs(grads)?;
            dy = dx;
            continue;
        }
        let xv = Var::from_tensor(xin)?;
        let y = layer.forward(xv.as_tensor(), model.rope(), &ctx, None)?;
        let store = (y * &dy)?.sum_all()?.backward()?;
        acc.add(&store)?;
        if i > 0 {
            dy = grad_of(&store, xv.as_tensor(), &format!("input of layer {i}"))?;
        }
    }
    Ok(LossGrads {
        loss_sum,
        n_supervised: count,
        grads: acc.finish()?,
    })
}

/// Logits [B, T, V] of the final hidden state h for the loss: in the model dtype when the loss
/// runs fused (it reads bf16 logits itself), else f32 as [`DecoderLm::head`] gives them.
fn head_for_loss(model: &DecoderLm, h: &Tensor) -> Result<Tensor> {
    if crate::fused::enabled("cross_entropy", h) {
        model.head_logits(h)
    } else {
        model.head(h)
    }
}

fn grad_of(store: &GradStore, t: &Tensor, what: &str) -> Result<Tensor> {
    store
        .get(t)
        .map(Tensor::detach)
        .ok_or_else(|| Error::NoGradient {
            tensor: what.into(),
        })
}

fn zero_grads(lora: &LoraSet, loss_sum: f64) -> Result<LossGrads> {
    let grads = lora
        .vars()
        .into_iter()
        .map(|(k, v)| Ok((k, v.as_tensor().zeros_like()?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(LossGrads {
        loss_sum,
        n_supervised: 0,
        grads,
    })
}

/// Adds `g` into a running sum (the first gradient is taken as it is).
fn accumulate(sum: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *sum = Some(match sum.take() {
        Some(s) => (s + g)?,
        None => g,
    });
    Ok(())
}

/// Sums the gradients of every LoRA tensor over several backward passes.
struct Accumulator {
    vars: Vec<(String, Var)>,
    sums: Vec<Option<Tensor>>,
    index: std::collections::HashMap<candle_core::TensorId, usize>,
}

impl Accumulator {
    fn new(lora: &LoraSet) -> Self {
        let vars = lora.vars();
        let sums = vec![None; vars.len()];
        let index = vars
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (v.as_tensor().id(), i))
            .collect();
        Self { vars, sums, index }
    }

    /// Adds gradients given as (LoRA tensor, gradient) pairs (the hand-written layer backward).
    fn add_pairs(&mut self, pairs: crate::layer_backward::VarGrads) -> Result<()> {
        for (t, g) in pairs {
            let Some(&i) = self.index.get(&t.id()) else {
                return Err(Error::NoGradient {
                    tensor: format!("a LoRA tensor of shape {:?} not in the set", t.dims()),
                });
            };
            accumulate(&mut self.sums[i], g)?;
        }
        Ok(())
    }

    fn add(&mut self, store: &GradStore) -> Result<()> {
        for ((_, var), sum) in self.vars.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = store.get(var.as_tensor()) {
                accumulate(sum, g.detach())?;
            }
        }
        Ok(())
    }

    /// The sums; a tensor that never received a gradient is an error naming it.
    fn finish(self) -> Result<Vec<(String, Tensor)>> {
        self.vars
            .into_iter()
            .zip(self.sums)
            .map(|((key, _), sum)| match sum {
                Some(g) => Ok((key, g)),
                None => Err(Error::NoGradient { tensor: key }),
            })
            .collect()
    }
}
