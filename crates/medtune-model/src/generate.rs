//! Text generation with a KV cache: batched (left padding), seeded sampling, EOS and stop
//! strings, and a per-token callback for streaming.
//!
//! The loop: left-pad the prompts → one prefill pass over all of them → then one token per row
//! per step, feeding each row's last token at its next position, until every row has hit EOS,
//! a stop string or `max_new_tokens`, or its caller stopped it ([`generate_with`]).

use crate::decoder::{DecoderLm, KvCache};
use crate::error::{Error, Result};
use crate::mask::positions_from_mask;
use crate::sampling::{Sampler, SamplingParams};
use candle_core::{DType, Tensor};

/// Generation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most new tokens per row.
    pub max_new_tokens: usize,
    /// Sampling settings (temperature 0 = greedy).
    pub sampling: SamplingParams,
    /// Token ids that end a row (not included in the output); empty = never stop on a token.
    pub eos_token_ids: Vec<u32>,
    /// Strings that end a row once the decoded text contains one (the text is cut before it).
    pub stop_strings: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            sampling: SamplingParams::default(),
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An EOS token was produced.
    Eos,
    /// A stop string appeared in the text.
    StopString,
    /// `max_new_tokens` was reached.
    Length,
    /// The caller's token callback stopped the row ([`generate_with`]).
    Stopped,
}

/// What the token callback of [`generate_with`] wants for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFlow {
    /// Keep generating this row.
    Continue,
    /// Finish this row now (e.g. its client went away, or the caller's own limit or stop
    /// string was reached): no more tokens are sampled for it, and once every row has
    /// finished the whole generation ends.
    Stop,
}

/// One row's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// New token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Decoded new text (cut before a stop string), when a decoder was given.
    pub text: Option<String>,
    /// Why generation stopped.
    pub finish: FinishReason,
}

/// Turns ids into text; needed for stop strings and `Generation::text`.
pub trait Detokenize {
    /// Decodes ids (special tokens skipped).
    fn detokenize(&self, ids: &[u32]) -> Result<String>;
}

/// Generates continuations of `prompts` (token ids, one row each).
///
/// `on_token(row, id)` is called for every new token as soon as it is chosen (EOS excluded).
pub fn generate(
    model: &DecoderLm,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    detok: Option<&dyn Detokenize>,
    on_token: &mut dyn FnMut(usize, u32),
) -> Result<Vec<Generation>> {
    generate_with(model, prompts, opts, detok, &mut |r, id| {
        on_token(r, id);
        RowFlow::Continue
    })
}

/// [`generate`] whose callback can finish a row early by returning [`RowFlow::Stop`]: the row
/// ends with [`FinishReason::Stopped`] and the tokens so far (the stopping one included).
pub fn generate_with(
    model: &DecoderLm,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    detok: Option<&dyn Detokenize>,
    on_token: &mut dyn FnMut(usize, u32) -> RowFlow,
) -> Result<Vec<Generation>> {
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::input("prompt", "a prompt has no tokens"));
    }
    if !opts.stop_strings.is_empty() && detok.is_none() {
        return Err(Error::input(
            "stop_strings",
            "stop strings need a tokenizer to decode",
        ));
    }
    let dev = model.device().clone();
    let max_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let limit = model.config().max_position_embeddings;
    if max_len + opts.max_new_tokens > limit {
        return Err(Error::input(
            "max_new_tokens",
            format!(
                "prompt ({max_len}) + new tokens ({}) exceed max_position_embeddings {limit}",
                opts.max_new_tokens
            ),
        ));
    }
    // Left padding: row r = [0; max_len - len] ++ prompt; pad id 0 is never attended to.
    let mut ids = Vec::with_capacity(b * max_len);
    let mut mask = Vec::with_capacity(b * max_len);
    for p in prompts {
        let pad = max_len - p.len();
        ids.extend(std::iter::repeat_n(0u32, pad).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0u32, pad).chain(std::iter::repeat_n(1u32, p.len())));
    }
    let ids = Tensor::from_vec(ids, (b, max_len), &dev)?;
    let mut mask = Tensor::from_vec(mask, (b, max_len), &dev)?;
    let pos = positions_from_mask(&mask)?;
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();

    let mut cache = KvCache::new(model.layers().len());
    let mut logits = last_logits(&model.forward_step_last(&ids, &pos, Some(&mask), &mut cache)?)?;
    let mut sampler = Sampler::new(opts.sampling.clone());
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut finish: Vec<Option<FinishReason>> = vec![None; b];
    let mut texts: Vec<Option<String>> = vec![None; b];

    for step in 0..opts.max_new_tokens {
        let mut step_ids = Vec::with_capacity(b);
        for r in 0..b {
            if finish[r].is_some() {
                step_ids.push(0u32);
                continue;
            }
            let tok = sampler.sample(&logits[r], &history[r]);
            step_ids.push(tok);
            if opts.eos_token_ids.contains(&tok) {
                finish[r] = Some(FinishReason::Eos);
                continue;
            }
            history[r].push(tok);
            out[r].push(tok);
            if on_token(r, tok) == RowFlow::Stop {
                finish[r] = Some(FinishReason::Stopped);
                continue;
            }
            if let Some(d) = detok.filter(|_| !opts.stop_strings.is_empty()) {
                let text = d.detokenize(&out[r])?;
                if let Some(cut) = opts
                    .stop_strings
                    .iter()
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    texts[r] = Some(text[..cut].to_string());
                    finish[r] = Some(FinishReason::StopString);
                }
            }
        }
        if finish.iter().all(Option::is_some) || step + 1 == opts.max_new_tokens {
            break;
        }
        // Next step: one token per row at its next position; finished rows feed padding.
        let step_ids = Tensor::from_vec(step_ids, (b, 1), &dev)?;
        let live: Vec<u32> = finish.iter().map(|f| u32::from(f.is_none())).collect();
        mask = Tensor::cat(&[&mask, &Tensor::from_vec(live, (b, 1), &dev)?], 1)?;
        let pos = Tensor::from_vec(next_pos.clone(), (b, 1), &dev)?;
        next_pos.iter_mut().for_each(|p| *p += 1);
        logits =
            last_logits(&model.forward_step_last(&step_ids, &pos, Some(&mask), &mut cache)?)?;
    }
    let mut results = Vec::with_capacity(b);
    for r in 0..b {
        let text = match (&texts[r], detok) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(d)) => Some(d.detokenize(&out[r])?),
            (None, None) => None,
        };
        results.push(Generation {
            tokens: std::mem::take(&mut out[r]),
            text,
            finish: finish[r].unwrap_or(FinishReason::Length),
        });
    }
    Ok(results)
}

/// logits [B, T, V] → the last position of each row as B vectors of V.
fn last_logits(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let t = logits.dim(1)?;
    Ok(logits
        .narrow(1, t - 1, 1)?
        .squeeze(1)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?)
}
