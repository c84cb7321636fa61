//! Next-token choice from logits: repetition penalty → temperature → top-k → top-p → draw,
//! in the order transformers applies them. Temperature 0 means greedy (argmax).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy; otherwise logits are divided by it.
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p.
    pub top_p: Option<f64>,
    /// HF repetition penalty: seen tokens' logits are divided (if > 0) or multiplied (if < 0)
    /// by it; 1 = off.
    pub repetition_penalty: f64,
    /// Seed of the sampler's own RNG (ChaCha8).
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

/// A seeded sampler.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler whose draws depend only on `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Picks the next token from `logits` [V]; `history` = prompt + generated ids (for the
    /// repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut x: Vec<f32> = logits.to_vec();
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let pen = p.repetition_penalty as f32;
            let mut seen = vec![false; x.len()];
            for &t in history {
                if let Some(s) = seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (v, s) in x.iter_mut().zip(seen) {
                if s {
                    *v = if *v < 0.0 { *v * pen } else { *v / pen };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(&x);
        }
        let t = p.temperature as f32;
        // Candidates sorted by logit, descending.
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
        if let Some(k) = p.top_k {
            idx.truncate(k.max(1));
        }
        let max = x[idx[0]] / t;
        let mut probs: Vec<f64> = idx
            .iter()
            .map(|&i| ((x[i] / t - max) as f64).exp())
            .collect();
        let z: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= z);
        if let Some(top_p) = p.top_p {
            // Keep tokens until the cumulative probability reaches top_p (at least one).
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (n, q) in probs.iter().enumerate() {
                cum += q;
                if cum >= top_p {
                    keep = n + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
            let z: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= z);
        }
        let u: f64 = self.rng.random();
        let mut cum = 0.0;
        for (q, &i) in probs.iter().zip(&idx) {
            cum += q;
            if u < cum {
                return i as u32;
            }
        }
        idx[idx.len() - 1] as u32
    }
}

/// Index of the largest value (the first one on ties, like torch.argmax).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_argmax() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..SamplingParams::default()
        });
        // 3.0 / 2 = 1.5 < 2.0
        assert_eq!(s.sample(&[0.1, 3.0, 2.0], &[1]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_seed_reproduces() {
        let logits = [0.5, 0.4, 0.3, 0.2];
        let mut a = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            ..SamplingParams::default()
        });
        assert_eq!(a.sample(&logits, &[]), 0);
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                temperature: 1.0,
                seed,
                ..SamplingParams::default()
            });
            (0..20).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_p_keeps_only_the_head() {
        // p(0) ≈ 0.88 ≥ 0.5: only token 0 survives.
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: Some(0.5),
            seed: 3,
            ..SamplingParams::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&[4.0, 2.0, 0.0], &[]), 0);
        }
    }
}
