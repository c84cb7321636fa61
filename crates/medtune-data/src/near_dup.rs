//! Near-duplicate detection: MinHash signatures over word shingles, LSH banding to find
//! candidate pairs, exact Jaccard to confirm them, and union-find to form clusters.
//!
//! MinHash: for a set S and a random hash h, P[min h(S) = min h(T)] = J(S, T). With `b` bands of
//! `r` rows, two sets share a band bucket with probability 1 - (1 - J^r)^b, an S-curve whose
//! midpoint is about (1/b)^(1/r); `b` and `r` are chosen so that midpoint is near the threshold.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Near-duplicate settings (`[split.near_dup]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NearDupConfig {
    /// Whether to look for near duplicates at all.
    pub enabled: bool,
    /// Jaccard similarity of word-shingle sets at or above which two records are near duplicates.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle_words: usize,
    /// MinHash signature length.
    pub num_perm: usize,
    /// Which text is compared.
    pub text: DedupText,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        NearDupConfig {
            enabled: true,
            threshold: 0.8,
            shingle_words: 3,
            num_perm: 128,
            text: DedupText::QuestionAnswer,
        }
    }
}

/// The text compared for near duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupText {
    /// Question only.
    Question,
    /// Question, context and answer.
    QuestionAnswer,
}

/// splitmix64 finaliser: a fast, well-mixed 64-bit hash of a 64-bit value.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a over bytes (deterministic across runs, unlike std's RandomState).
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// The sorted, deduplicated hashes of the `k`-word shingles of `text` (lowercased words).
pub fn shingles(text: &str, k: usize) -> Vec<u64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let k = k.max(1);
    let mut out: Vec<u64> = if words.len() <= k {
        vec![fnv(words.join(" ").as_bytes(), 0)]
    } else {
        words
            .windows(k)
            .map(|w| fnv(w.join(" ").as_bytes(), 0))
            .collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Exact Jaccard similarity of two sorted, deduplicated sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// MinHash signature of a shingle set: `num_perm` minima of independently seeded hashes.
pub fn signature(set: &[u64], num_perm: usize) -> Vec<u64> {
    (0..num_perm as u64)
        .map(|p| {
            let seed = mix(p.wrapping_add(0x5EED));
            set.iter().map(|&x| mix(x ^ seed)).min().unwrap_or(u64::MAX)
        })
        .collect()
}

/// Bands `b` and rows `r` (b·r ≤ num_perm) whose S-curve midpoint (1/b)^(1/r) is closest to
/// `threshold`.
pub fn bands_for(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best = (1, num_perm.max(1));
    let mut best_err = f64::INFINITY;
    for r in 1..=num_perm.max(1) {
        let b = num_perm / r;
        if b == 0 {
            break;
        }
        let err = ((1.0 / b as f64).powf(1.0 / r as f64) - threshold).abs();
        if err < best_err {
            best_err = err;
            best = (b, r);
        }
    }
    best
}

/// Buckets larger than this compare each member with the first only (bounds the work on
/// degenerate inputs with many identical texts).
const FULL_COMPARE_BUCKET: usize = 64;

/// Index pairs `(i, j)`, `i < j`, whose shingle sets have Jaccard ≥ `cfg.threshold`, sorted.
pub fn near_duplicate_pairs(texts: &[String], cfg: &NearDupConfig) -> Vec<(usize, usize)> {
    let sets: Vec<Vec<u64>> = texts
        .par_iter()
        .map(|t| shingles(t, cfg.shingle_words))
        .collect();
    let sigs: Vec<Vec<u64>> = sets
        .par_iter()
        .map(|s| signature(s, cfg.num_perm))
        .collect();
    let (b, r) = bands_for(cfg.threshold, cfg.num_perm);
    let candidates: HashSet<(usize, usize)> = (0..b)
        .into_par_iter()
        .map(|band| {
            let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
            for (i, sig) in sigs.iter().enumerate() {
                let rows = &sig[band * r..(band + 1) * r];
                let key = rows.iter().fold(band as u64, |h, &v| mix(h ^ v));
                buckets.entry(key).or_default().push(i);
            }
            let mut pairs = Vec::new();
            for members in buckets.values().filter(|m| m.len() > 1) {
                if members.len() <= FULL_COMPARE_BUCKET {
                    for (x, &i) in members.iter().enumerate() {
                        for &j in &members[x + 1..] {
                            pairs.push((i, j));
                        }
                    }
                } else {
                    pairs.extend(members[1..].iter().map(|&j| (members[0], j)));
                }
            }
            pairs
        })
        .flatten()
        .collect();
    let mut confirmed: Vec<(usize, usize)> = candidates
        .into_par_iter()
        .filter(|&(i, j)| jaccard(&sets[i], &sets[j]) >= cfg.threshold)
        .collect();
    confirmed.sort_unstable();
    confirmed
}

/// Disjoint sets with path halving and union by size.
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    /// `n` singleton sets.
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    /// Representative of `x`'s set.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Merges the sets of `a` and `b`.
    pub fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_shingles() {
        let a = shingles("the quick brown fox jumps", 2);
        let b = shingles("The quick brown fox leaps", 2);
        // shingles: {the quick, quick brown, brown fox, fox jumps} vs {..., fox leaps}: 3/5
        assert!((jaccard(&a, &b) - 0.6).abs() < 1e-12);
        assert_eq!(jaccard(&a, &a), 1.0);
    }

    #[test]
    fn bands_track_threshold() {
        let (b, r) = bands_for(0.8, 128);
        assert!(b * r <= 128);
        assert!(
            ((1.0 / b as f64).powf(1.0 / r as f64) - 0.8).abs() < 0.03,
            "{b}x{r}"
        );
    }

    #[test]
    fn finds_near_duplicates_not_unrelated_texts() {
        let base = "Glaucoma is a group of diseases that damage the optic nerve and can cause vision loss and blindness";
        let texts = vec![
            base.to_string(),
            format!("{base}."),
            base.replace("blindness", "blindness in adults"),
            "Asthma is a chronic disease of the airways that makes breathing difficult".to_string(),
        ];
        let cfg = NearDupConfig::default();
        let pairs = near_duplicate_pairs(&texts, &cfg);
        assert!(pairs.contains(&(0, 1)));
        assert!(pairs.iter().all(|&(i, j)| i != 3 && j != 3), "{pairs:?}");
    }

    #[test]
    fn union_find_clusters() {
        let mut uf = UnionFind::new(5);
        uf.union(0, 1);
        uf.union(3, 1);
        assert_eq!(uf.find(3), uf.find(0));
        assert_ne!(uf.find(2), uf.find(0));
    }
}
