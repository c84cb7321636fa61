//! METEOR exactly as nltk 3.x `meteor_score` computes it.
//!
//! Lavie & Agarwal (2007). Words are lowercased and split on whitespace
//! (Python `str.split`). Alignment runs three stages, each on the words left
//! unmatched by the one before: exact match, Porter-stem match, WordNet synonym
//! match. In every stage the hypothesis is scanned from its last word to its
//! first, and each word takes the latest still-free reference position that
//! matches. Note that nltk passes the *stemmed* leftovers of stage 2 to stage 3.
//!
//! With m matches, P = m/|hyp|, R = m/|ref|,
//! F = P·R / (α·P + (1−α)·R), penalty = γ·(chunks/m)^β, score = (1 − penalty)·F;
//! 0 when nothing matches. Several references: the maximum.

use super::porter::PorterStemmer;
use super::pystr::{py_lower, py_split};
use super::wordnet::WordNet;
use super::Result;
use std::collections::{HashMap, HashSet};

/// METEOR parameters; `Meteor::default()` is nltk's (α 0.9, β 3, γ 0.5).
#[derive(Debug, Clone, Copy)]
pub struct Meteor {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
}

impl Default for Meteor {
    fn default() -> Self {
        Self {
            alpha: 0.9,
            beta: 3.0,
            gamma: 0.5,
        }
    }
}

/// Word positions `(index in the original sentence, word)`.
type Enum = Vec<(usize, String)>;

/// Matched pairs `(hypothesis index, reference index)`.
type Matches = Vec<(usize, usize)>;

/// One matching stage: `key(i)` lists the words hypothesis word `i` may match.
fn match_stage<F>(hyp: Enum, refs: Enum, mut candidates: F) -> Result<(Matches, Enum, Enum)>
where
    F: FnMut(&str) -> Result<HashSet<String>>,
{
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, (_, w)) in refs.iter().enumerate() {
        positions.entry(w.as_str()).or_default().push(j);
    }
    let mut matched_h = HashSet::new();
    let mut matched_r = HashSet::new();
    let mut out = Vec::new();
    for i in (0..hyp.len()).rev() {
        let mut best: Option<(usize, &str)> = None;
        for cand in candidates(&hyp[i].1)? {
            if let Some((key, pos)) = positions.get_key_value(cand.as_str()) {
                if let Some(&j) = pos.last() {
                    if best.is_none_or(|(b, _)| j > b) {
                        best = Some((j, key));
                    }
                }
            }
        }
        if let Some((j, key)) = best {
            if let Some(p) = positions.get_mut(key) {
                p.pop();
            }
            matched_h.insert(i);
            matched_r.insert(j);
            out.push((hyp[i].0, refs[j].0));
        }
    }
    let keep = |list: &Enum, used: &HashSet<usize>| -> Enum {
        list.iter()
            .enumerate()
            .filter(|(k, _)| !used.contains(k))
            .map(|(_, p)| p.clone())
            .collect()
    };
    let (h, r) = (keep(&hyp, &matched_h), keep(&refs, &matched_r));
    Ok((out, h, r))
}

/// Minimum number of chunks of adjacent matches (matches sorted by hypothesis index).
fn count_chunks(matches: &[(usize, usize)]) -> usize {
    1 + matches
        .windows(2)
        .filter(|w| !(w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 + 1))
        .count()
}

/// Synonyms of `word` for stage 3: lemma names without `_` of all its synsets, plus itself.
fn synonyms(wordnet: &WordNet, word: &str) -> Result<HashSet<String>> {
    let mut set: HashSet<String> = wordnet
        .synsets(word)?
        .into_iter()
        .flat_map(|s| s.lemma_names)
        .filter(|n| !n.contains('_'))
        .collect();
    set.insert(word.to_string());
    Ok(set)
}

impl Meteor {
    /// Aligns pre-tokenized, lowercased words; returns matches sorted by hypothesis index.
    pub fn align(
        &self,
        hyp: &[String],
        reference: &[String],
        stemmer: &PorterStemmer,
        wordnet: &WordNet,
    ) -> Result<Matches> {
        let h: Enum = hyp.iter().cloned().enumerate().collect();
        let r: Enum = reference.iter().cloned().enumerate().collect();
        let exact = |w: &str| Ok(HashSet::from([w.to_string()]));
        let (mut all, h, r) = match_stage(h, r, exact)?;
        let stem = |list: Enum| -> Enum {
            list.into_iter()
                .map(|(i, w)| (i, stemmer.stem(&w)))
                .collect()
        };
        let (stemmed, h, r) = match_stage(stem(h), stem(r), exact)?;
        all.extend(stemmed);
        let (syn, _, _) = match_stage(h, r, |w| synonyms(wordnet, w))?;
        all.extend(syn);
        all.sort_by_key(|m| m.0);
        Ok(all)
    }

    /// METEOR of a tokenized hypothesis against one tokenized reference (tokens are lowercased here).
    pub fn single_tokens(
        &self,
        reference: &[&str],
        hypothesis: &[&str],
        stemmer: &PorterStemmer,
        wordnet: &WordNet,
    ) -> Result<f64> {
        let h: Vec<String> = hypothesis.iter().map(|w| py_lower(w)).collect();
        let r: Vec<String> = reference.iter().map(|w| py_lower(w)).collect();
        let matches = self.align(&h, &r, stemmer, wordnet)?;
        let m = matches.len() as f64;
        if matches.is_empty() || h.is_empty() || r.is_empty() {
            return Ok(0.0);
        }
        let precision = m / h.len() as f64;
        let recall = m / r.len() as f64;
        let fmean = precision * recall / (self.alpha * precision + (1.0 - self.alpha) * recall);
        let frag = count_chunks(&matches) as f64 / m;
        let penalty = self.gamma * frag.powf(self.beta);
        Ok((1.0 - penalty) * fmean)
    }

    /// METEOR of `hypothesis` against raw-text references (split on whitespace): the best one.
    /// Returns 0 for an empty reference list.
    pub fn score<S: AsRef<str>>(
        &self,
        references: &[S],
        hypothesis: &str,
        wordnet: &WordNet,
    ) -> Result<f64> {
        let stemmer = PorterStemmer::default();
        let hyp = py_split(hypothesis);
        let mut best: Option<f64> = None;
        for r in references {
            let s = self.single_tokens(&py_split(r.as_ref()), &hyp, &stemmer, wordnet)?;
            best = Some(best.map_or(s, |b: f64| b.max(s)));
        }
        Ok(best.unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_of_adjacent_runs() {
        assert_eq!(count_chunks(&[(0, 0), (1, 1), (2, 2)]), 1);
        assert_eq!(count_chunks(&[(0, 0), (1, 2), (2, 3), (4, 5)]), 3);
        assert_eq!(count_chunks(&[(3, 1)]), 1);
    }

    #[test]
    fn exact_stage_takes_latest_reference_position() {
        let e = |v: &[&str]| -> Enum { v.iter().map(|s| s.to_string()).enumerate().collect() };
        let exact = |w: &str| Ok(HashSet::from([w.to_string()]));
        let (m, h, r) = match_stage(e(&["a", "b", "a"]), e(&["a", "a", "c"]), exact).expect("ok");
        assert_eq!(m, vec![(2, 1), (0, 0)]);
        assert_eq!(h, vec![(1, "b".to_string())]);
        assert_eq!(r, vec![(2, "c".to_string())]);
    }
}
