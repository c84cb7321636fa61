//! Free-text scoring of generated answers against references with the crate's metrics:
//! sentence BLEU (sacrebleu, effective order), ROUGE-1/2/L F-measure (rouge-score, Porter
//! stemming), METEOR (nltk, only when a WordNet directory is given), SQuAD exact match and
//! token F1. Corpus BLEU pools the sufficient statistics of all items.

use crate::error::Result;
use crate::metrics::bleu::{Bleu, BleuStats};
use crate::metrics::meteor::Meteor;
use crate::metrics::rouge::RougeScorer;
use crate::metrics::squad;
use crate::metrics::wordnet::WordNet;

/// The per-item figures, each in [0, 1] except BLEU in [0, 100].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct TextScores {
    /// Sentence BLEU.
    pub bleu: f64,
    /// ROUGE-1 F.
    pub rouge1: f64,
    /// ROUGE-2 F.
    pub rouge2: f64,
    /// ROUGE-L F.
    pub rouge_l: f64,
    /// METEOR, when WordNet was given.
    pub meteor: Option<f64>,
    /// SQuAD exact match.
    pub exact_match: f64,
    /// SQuAD token F1.
    pub f1: f64,
}

/// The metric names of [`TextScores`], in CSV order.
pub const TEXT_METRICS: [&str; 7] = [
    "bleu",
    "rouge1",
    "rouge2",
    "rouge_l",
    "meteor",
    "exact_match",
    "f1",
];

impl TextScores {
    /// The value of metric `name` (one of [`TEXT_METRICS`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "bleu" => Some(self.bleu),
            "rouge1" => Some(self.rouge1),
            "rouge2" => Some(self.rouge2),
            "rouge_l" => Some(self.rouge_l),
            "meteor" => self.meteor,
            "exact_match" => Some(self.exact_match),
            "f1" => Some(self.f1),
            _ => None,
        }
    }
}

/// Scores free text; holds the metric objects so they are built once.
pub struct TextScorer<'a> {
    bleu: Bleu,
    rouge: RougeScorer,
    meteor: Option<(Meteor, &'a WordNet)>,
}

impl<'a> TextScorer<'a> {
    /// A scorer; METEOR is computed only with `wordnet`.
    pub fn new(wordnet: Option<&'a WordNet>) -> Self {
        Self {
            bleu: Bleu {
                effective_order: true,
                ..Bleu::default()
            },
            rouge: RougeScorer::new(true),
            meteor: wordnet.map(|w| (Meteor::default(), w)),
        }
    }

    /// Scores `hypothesis` against `reference`.
    pub fn score(&self, hypothesis: &str, reference: &str) -> Result<TextScores> {
        let refs = [reference];
        let r = self.rouge.score(reference, hypothesis);
        let meteor = match &self.meteor {
            Some((m, w)) => Some(m.score(&refs, hypothesis, w)?),
            None => None,
        };
        Ok(TextScores {
            bleu: self.bleu.sentence_score(hypothesis, &refs).score,
            rouge1: r.rouge1.fmeasure,
            rouge2: r.rouge2.fmeasure,
            rouge_l: r.rouge_l.fmeasure,
            meteor,
            exact_match: squad::exact_match(hypothesis, &refs),
            f1: squad::f1(hypothesis, &refs),
        })
    }

    /// BLEU sufficient statistics of one pair (sum them for corpus BLEU).
    pub fn bleu_stats(&self, hypothesis: &str, reference: &str) -> BleuStats {
        self.bleu.segment_stats(hypothesis, &[reference])
    }

    /// Corpus BLEU (no effective order) from summed statistics.
    pub fn bleu_from_stats(&self, stats: &BleuStats) -> f64 {
        let corpus = Bleu {
            effective_order: false,
            ..self.bleu
        };
        corpus.score_from_stats(stats).score
    }

    /// Corpus BLEU over `(hypothesis, reference)` pairs.
    pub fn corpus_bleu(&self, pairs: &[(&str, &str)]) -> Result<f64> {
        let hyps: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let refs: Vec<Vec<&str>> = pairs.iter().map(|p| vec![p.1]).collect();
        let corpus = Bleu {
            effective_order: false,
            ..self.bleu
        };
        Ok(corpus.corpus_score(&hyps, &refs)?.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_perfectly_and_unrelated_text_does_not() {
        let s = TextScorer::new(None);
        let same = s
            .score("Aspirin thins the blood.", "Aspirin thins the blood.")
            .unwrap();
        assert!((same.bleu - 100.0).abs() < 1e-9);
        assert_eq!((same.rouge1, same.exact_match, same.f1), (1.0, 1.0, 1.0));
        assert_eq!(same.meteor, None);
        let other = s
            .score("Rest and fluids.", "Aspirin thins the blood.")
            .unwrap();
        assert_eq!((other.rouge1, other.exact_match, other.f1), (0.0, 0.0, 0.0));
        assert!(s.corpus_bleu(&[("a b c d", "a b c d")]).unwrap() > 99.0);
    }
}
