//! Multiple-choice scoring by option log-likelihood, with the prompt computed once per item.
//!
//! For item `i` with prompt ids `p` and continuations `c_1..c_K` (ids), the score of option `k`
//! is `sum_t log p(c_k[t] | p, c_k[..t])` and its length-normalised form divides by `|c_k|`.
//! One batch does, in order:
//! 1. prefill every prompt once (left padded, [N, P]), keeping the KV cache and the logits of
//!    the last prompt position, which give `log p(c_k[0] | p)` for all options at once;
//! 2. if some continuation is longer than one token: repeat each item's cache rows once per
//!    option and run all options together ([R, L], right padded), reading the remaining
//!    token log-probabilities from those logits.
//!
//! The prompt, which is most of the tokens, is thus never recomputed per option.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use medtune_model::mask::positions_from_mask;
use medtune_model::{DecoderLm, KvCache};

/// Scores of one item's options.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceScores {
    /// Sum of token log-probabilities per option.
    pub sum: Vec<f64>,
    /// The sum divided by the option's token count.
    pub mean: Vec<f64>,
}

impl ChoiceScores {
    /// Index of the best option by sum (`normalized = false`) or by mean; ties pick the first.
    pub fn argmax(&self, normalized: bool) -> usize {
        let v = if normalized { &self.mean } else { &self.sum };
        let mut best = 0;
        for (i, x) in v.iter().enumerate() {
            if *x > v[best] {
                best = i;
            }
        }
        best
    }
}

/// One item to score: prompt ids and the ids of each option's continuation.
#[derive(Debug, Clone)]
pub struct ChoiceRequest {
    /// Prompt token ids (non-empty).
    pub prompt: Vec<u32>,
    /// Continuation ids per option (each non-empty).
    pub options: Vec<Vec<u32>>,
}

/// log-softmax over the last dim of f32 logits [.., V].
fn log_softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

fn invalid(msg: String) -> Error {
    Error::Setting {
        field: "choices".into(),
        message: msg,
    }
}

/// Model errors of the scorer; [`crate::run`] names the target.
fn model_err(e: medtune_model::Error) -> Error {
    Error::model("scorer", e)
}

/// Scores a batch of items (see the module docs). Returns one [`ChoiceScores`] per request.
///
/// Shapes: prefill ids/mask [N, P] (u32), last logits [N, 1, V] (f32); option pass ids
/// [R, L] with R = total options and L = longest continuation − 1, mask [R, P + L], logits
/// [R, L, V].
pub fn score_choices(model: &DecoderLm, requests: &[ChoiceRequest]) -> Result<Vec<ChoiceScores>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    for (i, r) in requests.iter().enumerate() {
        if r.prompt.is_empty() || r.options.is_empty() || r.options.iter().any(Vec::is_empty) {
            return Err(invalid(format!(
                "request {i}: empty prompt, no options or an empty option"
            )));
        }
    }
    let dev: Device = model.device().clone();
    let n = requests.len();
    let p = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let longest = requests
        .iter()
        .flat_map(|r| r.options.iter().map(Vec::len))
        .max()
        .unwrap_or(1);
    let limit = model.config().max_position_embeddings;
    if p + longest > limit {
        return Err(invalid(format!(
            "prompt ({p}) + option ({longest}) tokens exceed max_position_embeddings {limit}"
        )));
    }

    // 1. Prefill, left padded: row i = [0; P - len] ++ prompt_i.
    let mut ids = Vec::with_capacity(n * p);
    let mut mask = Vec::with_capacity(n * p);
    for r in requests {
        let pad = p - r.prompt.len();
        ids.extend(std::iter::repeat_n(0u32, pad).chain(r.prompt.iter().copied()));
        mask.extend(
            std::iter::repeat_n(0u32, pad).chain(std::iter::repeat_n(1u32, r.prompt.len())),
        );
    }
    let ids = Tensor::from_vec(ids, (n, p), &dev)?;
    let prefix_mask = Tensor::from_vec(mask, (n, p), &dev)?;
    let pos = positions_from_mask(&prefix_mask).map_err(model_err)?;
    let mut cache = KvCache::new(model.layers().len());
    let last = model
        .forward_step_last(&ids, &pos, Some(&prefix_mask), &mut cache)
        .map_err(model_err)?; // [N, 1, V]
    let first_lp = log_softmax(&last.to_dtype(DType::F32)?.squeeze(1)?)?; // [N, V]

    // log p(c_k[0] | prompt) for every option.
    let mut rows = Vec::new(); // (request, option)
    let mut first_ids = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        for (k, o) in r.options.iter().enumerate() {
            rows.push((i, k));
            first_ids.push(o[0]);
        }
    }
    let row_req: Vec<u32> = rows.iter().map(|&(i, _)| i as u32).collect();
    let row_req_t = Tensor::from_vec(row_req.clone(), rows.len(), &dev)?;
    let first_ids_t = Tensor::from_vec(first_ids, (rows.len(), 1), &dev)?;
    let first: Vec<f32> = first_lp
        .index_select(&row_req_t, 0)? // [R, V]
        .gather(&first_ids_t, 1)? // [R, 1]
        .squeeze(1)?
        .to_vec1()?;
    let mut sums: Vec<f64> = first.iter().map(|&x| f64::from(x)).collect();

    // 2. The rest of each continuation, all options of all items in one pass.
    if longest > 1 {
        let r_n = rows.len();
        let l = longest - 1;
        cache.select_rows(&row_req_t).map_err(model_err)?;
        let mut in_ids = Vec::with_capacity(r_n * l);
        let mut targets = Vec::with_capacity(r_n * l);
        let mut new_mask = Vec::with_capacity(r_n * l);
        let mut positions = Vec::with_capacity(r_n * l);
        for &(i, k) in &rows {
            let o = &requests[i].options[k];
            let start = requests[i].prompt.len() as u32;
            for j in 0..l {
                let live = j + 1 < o.len();
                in_ids.push(if live { o[j] } else { 0 });
                targets.push(if live { o[j + 1] } else { 0 });
                new_mask.push(u32::from(live));
                positions.push(start + j as u32);
            }
        }
        let in_ids = Tensor::from_vec(in_ids, (r_n, l), &dev)?;
        let targets = Tensor::from_vec(targets, (r_n, l, 1), &dev)?;
        let new_mask = Tensor::from_vec(new_mask, (r_n, l), &dev)?;
        let mask = Tensor::cat(&[&prefix_mask.index_select(&row_req_t, 0)?, &new_mask], 1)?;
        let positions = Tensor::from_vec(positions, (r_n, l), &dev)?;
        let logits = model
            .forward_step(&in_ids, &positions, Some(&mask), &mut cache)
            .map_err(model_err)?; // [R, L, V]
        let lp: Vec<Vec<f32>> = log_softmax(&logits.to_dtype(DType::F32)?)?
            .gather(&targets, 2)? // [R, L, 1]
            .squeeze(2)?
            .to_vec2()?;
        for (row, &(i, k)) in rows.iter().enumerate() {
            let len = requests[i].options[k].len();
            sums[row] += lp[row][..len - 1]
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>();
        }
    }

    let mut out: Vec<ChoiceScores> = requests
        .iter()
        .map(|r| ChoiceScores {
            sum: Vec::with_capacity(r.options.len()),
            mean: Vec::with_capacity(r.options.len()),
        })
        .collect();
    for (row, &(i, k)) in rows.iter().enumerate() {
        out[i].sum.push(sums[row]);
        out[i]
            .mean
            .push(sums[row] / requests[i].options[k].len() as f64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_picks_first_of_ties_and_respects_normalisation() {
        let s = ChoiceScores {
            sum: vec![-3.0, -2.0, -2.0],
            mean: vec![-0.5, -2.0, -1.0],
        };
        assert_eq!(s.argmax(false), 1);
        assert_eq!(s.argmax(true), 0);
    }
}
