//! Reference-matching text metrics.
//!
//! Every metric here reproduces a reference implementation to 1e-6 and is
//! checked against vectors produced by that implementation
//! (`scripts/reference_vectors/generate.py`, committed under `tests/fixtures/`):
//!
//! | module | reference |
//! |---|---|
//! | [`bleu`] | sacrebleu 2.x `BLEU` (13a tokenizer, smoothing, effective order) |
//! | [`rouge`] | rouge-score 0.1.2 `RougeScorer` (rouge1/2/L/Lsum, optional Porter stemming) |
//! | [`porter`] | nltk `PorterStemmer` (all three modes) |
//! | [`meteor`] | nltk 3.x `meteor_score` with [`wordnet`] synonyms |
//! | [`squad`] | SQuAD v1.1 exact match and token F1 |
//! | [`classification`] | scikit-learn accuracy, P/R/F1, confusion matrix |
//! | [`perplexity`] | exp of the mean negative token log-likelihood |
//! | [`bootstrap`] | percentile bootstrap confidence intervals (numpy percentiles) |
//! | [`embedding`] | BERTScore-style greedy matching and mean-pooled cosine with a candle BERT |
//!
//! [`pairs`] scores a JSON Lines file of hypothesis/reference pairs with all of them
//! and summarises the corpus with bootstrap intervals.
//!
//! ```
//! use medtune_eval::metrics::{bleu::Bleu, rouge::RougeScorer, squad};
//! let bleu = Bleu { effective_order: true, ..Bleu::default() };
//! let s = bleu.sentence_score("the cat sat on the mat", &["the cat sat on a mat"]);
//! assert!(s.score > 0.0 && s.score < 100.0);
//! let r = RougeScorer::new(false).score_multi(&["the cat sat"], "the cat");
//! assert_eq!(r.rouge1.precision, 1.0);
//! assert_eq!(squad::exact_match("The Cat!", &["cat"]), 1.0);
//! ```

pub mod bleu;
pub mod bootstrap;
pub mod classification;
pub mod embedding;
pub mod meteor;
pub mod pairs;
pub mod perplexity;
pub mod porter;
pub mod pystr;
pub mod rouge;
pub mod squad;
pub mod wordnet;

use std::path::PathBuf;

/// Errors raised by the metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file has a malformed line.
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// An argument is out of range or inconsistent with another.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A tensor operation of the embedding encoder failed.
    #[error("encoder: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer of the embedding encoder failed.
    #[error("tokenizer {context}: {msg}")]
    Tokenizer { context: String, msg: String },
}

/// Result alias for the metrics.
pub type Result<T> = std::result::Result<T, Error>;
