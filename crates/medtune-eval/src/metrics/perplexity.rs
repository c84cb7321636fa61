//! Perplexity from token log-likelihoods.
//!
//! PPL = exp(−(1/N) Σ ln p(token)), natural logarithms, over all N scored tokens
//! (for a corpus: pooled over sequences, not averaged per sequence).

use super::{Error, Result};

/// Running sum of token log-likelihoods.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogLikelihood {
    /// Σ ln p over the tokens seen.
    pub sum: f64,
    /// Number of tokens seen.
    pub tokens: usize,
}

impl LogLikelihood {
    /// Adds the natural-log probabilities of some tokens; errors on NaN or positive values.
    pub fn add(&mut self, logprobs: &[f64]) -> Result<()> {
        for (i, &lp) in logprobs.iter().enumerate() {
            if lp.is_nan() || lp > 0.0 {
                return Err(Error::Invalid(format!(
                    "token {i}: log-likelihood {lp} is not a log-probability (must be <= 0)"
                )));
            }
        }
        self.sum += logprobs.iter().sum::<f64>();
        self.tokens += logprobs.len();
        Ok(())
    }

    /// Mean negative log-likelihood per token (nats).
    pub fn mean_nll(&self) -> Result<f64> {
        if self.tokens == 0 {
            return Err(Error::Invalid("perplexity of zero tokens".into()));
        }
        Ok(-self.sum / self.tokens as f64)
    }

    /// exp of the mean negative log-likelihood.
    pub fn perplexity(&self) -> Result<f64> {
        Ok(self.mean_nll()?.exp())
    }
}

/// Perplexity of one sequence of token log-probabilities.
pub fn perplexity(logprobs: &[f64]) -> Result<f64> {
    let mut ll = LogLikelihood::default();
    ll.add(logprobs)?;
    ll.perplexity()
}

/// Pooled perplexity of several sequences.
pub fn corpus_perplexity<S: AsRef<[f64]>>(sequences: &[S]) -> Result<f64> {
    let mut ll = LogLikelihood::default();
    for s in sequences {
        ll.add(s.as_ref())?;
    }
    ll.perplexity()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_distribution_gives_vocab_size() {
        let lp = vec![(0.25f64).ln(); 7];
        assert!((perplexity(&lp).expect("ok") - 4.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(perplexity(&[]).is_err());
        assert!(perplexity(&[0.5]).is_err());
        assert!(perplexity(&[f64::NAN]).is_err());
    }

    #[test]
    fn corpus_pools_tokens() {
        let a = [(0.5f64).ln()];
        let b = [(0.125f64).ln(); 3];
        let expect = (-(a[0] + 3.0 * b[0]) / 4.0).exp();
        let got = corpus_perplexity(&[&a[..], &b[..]]).expect("ok");
        assert!((got - expect).abs() < 1e-12);
    }
}
