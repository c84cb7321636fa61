//! Percentile bootstrap confidence intervals for corpus-level figures.
//!
//! Resample the items with replacement `resamples` times (seeded ChaCha8, so
//! runs repeat exactly), recompute the statistic on each resample, and take the
//! (1−c)/2 and (1+c)/2 percentiles of those values with numpy's default linear
//! interpolation. The statistic sees the resampled item indices, so corpus
//! figures that pool sufficient statistics (corpus BLEU) resample correctly.

use super::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bootstrap settings.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    /// Number of resamples (1000 is customary).
    pub resamples: usize,
    /// Confidence level in (0, 1), e.g. 0.95.
    pub confidence: f64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            resamples: 1000,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    /// The statistic on the full sample.
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// numpy's `percentile(values, q)` with the default linear method; `q` in [0, 100].
pub fn percentile(values: &[f64], q: f64) -> Result<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&q) || values.iter().any(|v| v.is_nan()) {
        return Err(Error::Invalid(format!(
            "percentile {q} of {} values (need values, no NaN, q in [0, 100])",
            values.len()
        )));
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let frac = pos - lo as f64;
    // numpy's lerp form: a + (b - a) * t, switching ends for t >= 0.5
    let (a, b) = (v[lo], v[hi]);
    Ok(if frac >= 0.5 {
        b - (b - a) * (1.0 - frac)
    } else {
        a + (b - a) * frac
    })
}

impl Bootstrap {
    /// Interval of `statistic` over `n` items; `statistic(indices)` scores the items listed.
    pub fn interval<F>(&self, n: usize, mut statistic: F) -> Result<Interval>
    where
        F: FnMut(&[usize]) -> f64,
    {
        if n == 0 || self.resamples == 0 || !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Error::Invalid(format!(
                "bootstrap of {n} items, {} resamples, confidence {}",
                self.resamples, self.confidence
            )));
        }
        let all: Vec<usize> = (0..n).collect();
        let value = statistic(&all);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut idx = vec![0usize; n];
        let mut stats = Vec::with_capacity(self.resamples);
        for _ in 0..self.resamples {
            for slot in idx.iter_mut() {
                *slot = rng.random_range(0..n);
            }
            stats.push(statistic(&idx));
        }
        let tail = (1.0 - self.confidence) / 2.0 * 100.0;
        Ok(Interval {
            value,
            low: percentile(&stats, tail)?,
            high: percentile(&stats, 100.0 - tail)?,
        })
    }

    /// Interval of the mean of per-item values.
    pub fn mean(&self, values: &[f64]) -> Result<Interval> {
        self.interval(values.len(), |idx| {
            idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0];
        // sorted 1 1 3 4 5; q=30 -> position 1.2 -> 1 + 0.2*2
        assert!((percentile(&v, 30.0).expect("ok") - 1.4).abs() < 1e-12);
        assert_eq!(percentile(&v, 100.0).expect("ok"), 5.0);
        assert!(percentile(&[], 50.0).is_err());
    }

    #[test]
    fn seeded_runs_repeat_and_bracket_the_mean() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 7)).collect();
        let b = Bootstrap::default();
        let a = b.mean(&values).expect("ok");
        assert_eq!(a, b.mean(&values).expect("ok"));
        assert!(a.low < a.value && a.value < a.high);
        // standard error of the mean is about 2/sqrt(200) = 0.14; the 95% CI spans ~0.55
        assert!(a.high - a.low > 0.3 && a.high - a.low < 0.9, "{a:?}");
        let other = Bootstrap { seed: 1, ..b }.mean(&values).expect("ok");
        assert_ne!(a, other);
    }
}
