//! Scoring a file of hypothesis/reference pairs with every text metric.
//!
//! Input is JSON Lines, one object per line:
//! `{"id": "q1", "references": ["..."], "hypothesis": "..."}` (`id` may be a
//! string or an integer; blank lines are skipped). Each pair gets sentence BLEU
//! (sacrebleu, effective order), ROUGE-1/2/L/Lsum with and without stemming,
//! METEOR, SQuAD exact match and F1, and optionally BERTScore-style P/R/F and
//! mean-pooled cosine (best reference by F1 / by cosine). [`summarize`] gives
//! corpus figures with bootstrap intervals: corpus BLEU from pooled statistics
//! and the mean of every per-pair figure.

use super::bleu::{Bleu, BleuScore, BleuStats};
use super::bootstrap::{Bootstrap, Interval};
use super::embedding::{BertScore, Encoder};
use super::meteor::Meteor;
use super::rouge::{RougeScorer, RougeScores};
use super::wordnet::WordNet;
use super::{squad, Error, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One input line.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub id: String,
    pub references: Vec<String>,
    pub hypothesis: String,
    /// 1-based line number in the input file.
    pub line: usize,
}

/// Parses JSON Lines text; `path` only names the source in errors.
pub fn parse_pairs(text: &str, path: &Path) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |msg: String| Error::Parse {
            path: path.to_path_buf(),
            line,
            msg,
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| err("expected a JSON object".into()))?;
        let id = match obj.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => return Err(err("field `id` must be a string or an integer".into())),
            None => return Err(err("missing field `id`".into())),
        };
        let hypothesis = match obj.get("hypothesis") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(err("field `hypothesis` must be a string".into())),
            None => return Err(err("missing field `hypothesis`".into())),
        };
        let refs = match obj.get("references") {
            Some(Value::Array(a)) => a,
            Some(_) => return Err(err("field `references` must be an array of strings".into())),
            None => return Err(err("missing field `references`".into())),
        };
        if refs.is_empty() {
            return Err(err(format!("id {id:?}: `references` is empty")));
        }
        let mut references = Vec::with_capacity(refs.len());
        for (k, r) in refs.iter().enumerate() {
            match r.as_str() {
                Some(s) if !s.trim().is_empty() => references.push(s.to_string()),
                Some(_) => return Err(err(format!("id {id:?}: references[{k}] is empty"))),
                None => return Err(err(format!("id {id:?}: references[{k}] is not a string"))),
            }
        }
        if let Some(first) = seen.insert(id.clone(), line) {
            return Err(err(format!("id {id:?} already used on line {first}")));
        }
        pairs.push(Pair {
            id,
            references,
            hypothesis,
            line,
        });
    }
    Ok(pairs)
}

/// Reads and parses a JSON Lines file of pairs.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pairs(&text, path)
}

/// All figures of one pair.
#[derive(Debug, Clone)]
pub struct PairScores {
    pub id: String,
    /// Sentence BLEU with effective order (0–100).
    pub bleu: BleuScore,
    /// BLEU statistics, pooled for corpus BLEU.
    pub bleu_stats: BleuStats,
    pub rouge: RougeScores,
    pub rouge_stem: RougeScores,
    pub meteor: f64,
    pub exact_match: f64,
    pub f1: f64,
    /// Best reference by F1, when an encoder is given.
    pub bert_score: Option<BertScore>,
    /// Best reference by cosine, when an encoder is given.
    pub cosine: Option<f64>,
}

/// Scores pairs with fixed metric settings.
pub struct PairScorer<'a> {
    pub wordnet: &'a WordNet,
    pub encoder: Option<&'a Encoder>,
    sentence_bleu: Bleu,
    rouge: RougeScorer,
    rouge_stem: RougeScorer,
    meteor: Meteor,
}

impl<'a> PairScorer<'a> {
    /// A scorer using `wordnet` for METEOR and, if given, `encoder` for embedding similarity.
    pub fn new(wordnet: &'a WordNet, encoder: Option<&'a Encoder>) -> Self {
        Self {
            wordnet,
            encoder,
            sentence_bleu: Bleu {
                effective_order: true,
                ..Bleu::default()
            },
            rouge: RougeScorer::new(false),
            rouge_stem: RougeScorer::new(true),
            meteor: Meteor::default(),
        }
    }

    /// Every figure for one pair.
    pub fn score(&self, pair: &Pair) -> Result<PairScores> {
        let (h, refs) = (pair.hypothesis.as_str(), &pair.references);
        let bleu_stats = self.sentence_bleu.segment_stats(h, refs);
        let (bert_score, cosine) = match self.encoder {
            Some(enc) => {
                let hyp = enc.encode(h)?;
                let mut best_bs: Option<BertScore> = None;
                let mut best_cos: Option<f64> = None;
                for r in refs {
                    let reference = enc.encode(r)?;
                    let bs = hyp.bert_score(&reference);
                    if best_bs.is_none_or(|b| bs.f1 > b.f1) {
                        best_bs = Some(bs);
                    }
                    let c = hyp.cosine(&reference);
                    best_cos = Some(best_cos.map_or(c, |b| b.max(c)));
                }
                (best_bs, best_cos)
            }
            None => (None, None),
        };
        Ok(PairScores {
            id: pair.id.clone(),
            bleu: self.sentence_bleu.score_from_stats(&bleu_stats),
            bleu_stats,
            rouge: self.rouge.score_multi(refs, h),
            rouge_stem: self.rouge_stem.score_multi(refs, h),
            meteor: self.meteor.score(refs, h, self.wordnet)?,
            exact_match: squad::exact_match(h, refs),
            f1: squad::f1(h, refs),
            bert_score,
            cosine,
        })
    }
}

fn rouge_entries(out: &mut Map<String, Value>, r: &RougeScores, suffix: &str) {
    for (name, s) in [
        ("rouge1", r.rouge1),
        ("rouge2", r.rouge2),
        ("rougeL", r.rouge_l),
        ("rougeLsum", r.rouge_lsum),
    ] {
        out.insert(format!("{name}_precision{suffix}"), json!(s.precision));
        out.insert(format!("{name}_recall{suffix}"), json!(s.recall));
        out.insert(format!("{name}_fmeasure{suffix}"), json!(s.fmeasure));
    }
}

impl PairScores {
    /// The output line: `id`, `bleu`, `bleu_bp`, `bleu_precisions`, `rouge*_{precision,recall,fmeasure}[_stem]`,
    /// `meteor`, `exact_match`, `f1`, and with an encoder `bertscore_{precision,recall,f1}`, `embedding_cosine`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("bleu".into(), json!(self.bleu.score));
        m.insert("bleu_bp".into(), json!(self.bleu.bp));
        m.insert("bleu_precisions".into(), json!(self.bleu.precisions));
        rouge_entries(&mut m, &self.rouge, "");
        rouge_entries(&mut m, &self.rouge_stem, "_stem");
        m.insert("meteor".into(), json!(self.meteor));
        m.insert("exact_match".into(), json!(self.exact_match));
        m.insert("f1".into(), json!(self.f1));
        if let Some(b) = self.bert_score {
            m.insert("bertscore_precision".into(), json!(b.precision));
            m.insert("bertscore_recall".into(), json!(b.recall));
            m.insert("bertscore_f1".into(), json!(b.f1));
        }
        if let Some(c) = self.cosine {
            m.insert("embedding_cosine".into(), json!(c));
        }
        Value::Object(m)
    }

    /// Per-pair figures that the summary averages, by output key.
    fn averaged(&self) -> Vec<(&'static str, f64)> {
        let mut v = vec![
            ("bleu", self.bleu.score),
            ("rouge1_fmeasure", self.rouge.rouge1.fmeasure),
            ("rouge2_fmeasure", self.rouge.rouge2.fmeasure),
            ("rougeL_fmeasure", self.rouge.rouge_l.fmeasure),
            ("rougeLsum_fmeasure", self.rouge.rouge_lsum.fmeasure),
            ("rouge1_fmeasure_stem", self.rouge_stem.rouge1.fmeasure),
            ("rouge2_fmeasure_stem", self.rouge_stem.rouge2.fmeasure),
            ("rougeL_fmeasure_stem", self.rouge_stem.rouge_l.fmeasure),
            (
                "rougeLsum_fmeasure_stem",
                self.rouge_stem.rouge_lsum.fmeasure,
            ),
            ("meteor", self.meteor),
            ("exact_match", self.exact_match),
            ("f1", self.f1),
        ];
        if let Some(b) = self.bert_score {
            v.push(("bertscore_f1", b.f1));
        }
        if let Some(c) = self.cosine {
            v.push(("embedding_cosine", c));
        }
        v
    }
}

/// Corpus figures with bootstrap intervals.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Number of pairs.
    pub n: usize,
    /// Corpus BLEU (pooled statistics, sacrebleu's `corpus_score`).
    pub corpus_bleu: Interval,
    /// Mean of each per-pair figure, by output key (`bleu` is the mean sentence BLEU).
    pub means: BTreeMap<String, Interval>,
    pub resamples: usize,
    pub confidence: f64,
    pub seed: u64,
}

/// Corpus BLEU and per-figure means, each with a percentile bootstrap interval.
pub fn summarize(scores: &[PairScores], bootstrap: &Bootstrap) -> Result<Summary> {
    let corpus = Bleu::default();
    let corpus_bleu = bootstrap.interval(scores.len(), |idx| {
        let mut sum = BleuStats::default();
        for &i in idx {
            sum += scores[i].bleu_stats;
        }
        corpus.score_from_stats(&sum).score
    })?;
    let mut columns: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for s in scores {
        for (k, v) in s.averaged() {
            columns.entry(k).or_default().push(v);
        }
    }
    let mut means = BTreeMap::new();
    for (k, values) in columns {
        means.insert(k.to_string(), bootstrap.mean(&values)?);
    }
    Ok(Summary {
        n: scores.len(),
        corpus_bleu,
        means,
        resamples: bootstrap.resamples,
        confidence: bootstrap.confidence,
        seed: bootstrap.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Pair>> {
        parse_pairs(text, Path::new("pairs.jsonl"))
    }

    #[test]
    fn parses_good_lines_and_skips_blank_ones() {
        let p = parse("{\"id\":1,\"references\":[\"a b\"],\"hypothesis\":\"a\"}\n\n{\"id\":\"x\",\"references\":[\"c\",\"d\"],\"hypothesis\":\"\"}\n")
            .expect("parses");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id, "1");
        assert_eq!(p[1].line, 3);
    }

    #[test]
    fn bad_lines_name_line_and_field() {
        let cases = [
            (
                "{\"id\":1,\"references\":[\"a\"]}",
                "missing field `hypothesis`",
            ),
            (
                "{\"id\":1,\"references\":[],\"hypothesis\":\"a\"}",
                "`references` is empty",
            ),
            (
                "{\"id\":1,\"references\":[\" \"],\"hypothesis\":\"a\"}",
                "references[0] is empty",
            ),
            (
                "{\"references\":[\"a\"],\"hypothesis\":\"a\"}",
                "missing field `id`",
            ),
            ("[1]", "expected a JSON object"),
            ("{oops", "invalid JSON"),
        ];
        for (line, want) in cases {
            let text =
                format!("{{\"id\":0,\"references\":[\"r\"],\"hypothesis\":\"h\"}}\n{line}\n");
            let err = parse(&text).expect_err(line).to_string();
            assert!(err.contains("pairs.jsonl:2") && err.contains(want), "{err}");
        }
        let dup = "{\"id\":1,\"references\":[\"a\"],\"hypothesis\":\"a\"}\n{\"id\":1,\"references\":[\"a\"],\"hypothesis\":\"a\"}";
        assert!(parse(dup)
            .expect_err("dup")
            .to_string()
            .contains("already used on line 1"));
    }
}
