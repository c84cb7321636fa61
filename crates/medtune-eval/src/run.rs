//! Running suites on a model: the base and each adapter see the same items, scored by option
//! likelihood and/or by generation with answer extraction. Produces one [`Prediction`] per
//! target × suite × mode × item; [`crate::compare`] turns them into figures.

use crate::analysis::{is_refusal, safety_flags};
use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::extract::{extract_decision, extract_mcq};
use crate::freetext::{TextScorer, TextScores};
use crate::likelihood::{score_choices, ChoiceRequest};
use crate::metrics::bootstrap::Bootstrap;
use crate::metrics::wordnet::WordNet;
use crate::qpain::Variant;
use crate::suite::{load_suite, ChoiceTarget, Item, ItemKind, Sources, Suite, SuiteItems};
use medtune_model::{
    detach_lora, generate, peft::load_peft_for_inference, Detokenize, GenerateOptions, LoadedModel,
    Message,
};
use serde::Serialize;
use std::path::PathBuf;

/// How an item was scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Option log-likelihood (free text: reference log-likelihood → perplexity).
    Likelihood,
    /// Greedy generation, then answer extraction or free-text metrics.
    Generate,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Likelihood => "likelihood",
            Mode::Generate => "generate",
        }
    }
}

/// Which modes to run (`--mode likelihood|generate|both`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Modes {
    /// Likelihood only (MedQuAD: reference perplexity).
    #[default]
    Likelihood,
    /// Generation only.
    Generate,
    /// Both.
    Both,
}

impl Modes {
    /// Parses `likelihood`, `generate` or `both`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "likelihood" => Ok(Modes::Likelihood),
            "generate" => Ok(Modes::Generate),
            "both" => Ok(Modes::Both),
            _ => Err(Error::Setting {
                field: "mode".into(),
                message: format!("`{s}` is not likelihood, generate or both"),
            }),
        }
    }

    fn list(self) -> Vec<Mode> {
        match self {
            Modes::Likelihood => vec![Mode::Likelihood],
            Modes::Generate => vec![Mode::Generate],
            Modes::Both => vec![Mode::Likelihood, Mode::Generate],
        }
    }
}

/// Everything that defines an evaluation run except the model.
pub struct EvalSpec {
    /// Suites in report order.
    pub suites: Vec<Suite>,
    /// Where the data is.
    pub sources: Sources,
    /// At most this many items per suite (spread evenly).
    pub limit: Option<usize>,
    /// Modes to run.
    pub modes: Modes,
    /// What an MCQ option is scored as in likelihood mode.
    pub choice_target: ChoiceTarget,
    /// Items per forward batch.
    pub batch_size: usize,
    /// New-token limit for choice questions in generation mode.
    pub max_new_tokens_choice: usize,
    /// New-token limit for free-text answers.
    pub max_new_tokens_text: usize,
    /// WordNet for METEOR (skipped without it).
    pub wordnet: Option<WordNet>,
    /// Safety validator for error analysis (skipped without it).
    pub validator: Option<medtune_safety::Validator>,
    /// Bootstrap settings for every interval.
    pub bootstrap: Bootstrap,
}

impl EvalSpec {
    /// A spec with the defaults: likelihood mode, letter targets, batch 4, 32/192 new tokens,
    /// 1000 bootstrap resamples.
    pub fn new(suites: Vec<Suite>, sources: Sources) -> Self {
        Self {
            suites,
            sources,
            limit: None,
            modes: Modes::default(),
            choice_target: ChoiceTarget::default(),
            batch_size: 4,
            max_new_tokens_choice: 32,
            max_new_tokens_text: 192,
            wordnet: None,
            validator: None,
            bootstrap: Bootstrap::default(),
        }
    }
}

/// A model variant to evaluate: the base (no adapter) or the base plus one PEFT adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalTarget {
    /// Name in the report (`base`, or the adapter folder name).
    pub name: String,
    /// The PEFT adapter folder; `None` = the base model.
    pub adapter: Option<PathBuf>,
}

impl EvalTarget {
    /// The base model.
    pub fn base() -> Self {
        Self {
            name: "base".into(),
            adapter: None,
        }
    }

    /// An adapter, named after its folder.
    pub fn adapter(dir: PathBuf) -> Self {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self {
            name,
            adapter: Some(dir),
        }
    }
}

/// Receives progress; the CLI draws a bar, tests and libraries pass [`NoProgress`].
pub trait Observer {
    /// A new stage starts with `total` items.
    fn stage(&mut self, target: &str, suite: Suite, mode: Mode, total: usize);
    /// `n` more items are done.
    fn advance(&mut self, n: usize);
    /// The stage is done.
    fn finish(&mut self) {}
}

/// An observer that ignores progress.
pub struct NoProgress;

impl Observer for NoProgress {
    fn stage(&mut self, _: &str, _: Suite, _: Mode, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

/// One scored item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Target name.
    pub target: String,
    /// Suite.
    pub suite: Suite,
    /// Mode.
    pub mode: Mode,
    /// Item id.
    pub id: String,
    /// Specialty / subject.
    pub group: String,
    /// Gold label (choice) or reference (free text).
    pub gold: String,
    /// Predicted label; `None` = format failure (generation) or free text.
    pub predicted: Option<String>,
    /// Likelihood mode: the label chosen by length-normalised (mean) log-likelihood.
    pub predicted_norm: Option<String>,
    /// Per-option summed log-likelihood (likelihood mode), in label order.
    pub option_logprobs: Vec<f64>,
    /// Free text likelihood: token count and summed log-likelihood of the reference.
    pub reference_logprob: Option<(usize, f64)>,
    /// Generated text (generation mode).
    pub output: String,
    /// How the answer was extracted (generation mode, choice items).
    pub extraction: Option<String>,
    /// Free-text metrics (generation mode, free text).
    pub text_scores: Option<TextScores>,
    /// Whether the reply reads as a refusal.
    pub refusal: bool,
    /// Categories of safety warnings raised on the answer text.
    pub safety_flags: Vec<String>,
    /// Q-Pain substitution.
    pub variant: Option<Variant>,
    /// Reference answer text (for length ratios and examples).
    pub reference: String,
    /// Question text (for examples).
    pub question: String,
}

impl Prediction {
    /// Whether the choice is right (`None` for free text).
    pub fn correct(&self) -> Option<bool> {
        match self.suite {
            Suite::Medquad => None,
            _ => Some(self.predicted.as_deref() == Some(self.gold.as_str())),
        }
    }

    /// Whether generation gave no readable answer.
    pub fn format_failure(&self) -> bool {
        self.mode == Mode::Generate && self.suite.is_choice() && self.predicted.is_none()
    }
}

fn to_model_messages(item: &Item) -> Vec<Message> {
    item.messages
        .iter()
        .map(|m| Message::new(m.role.clone(), m.content.clone()))
        .collect()
}

fn blank(target: &str, item: &Item, mode: Mode) -> Prediction {
    Prediction {
        target: target.into(),
        suite: item.suite,
        mode,
        id: item.id.clone(),
        group: item.group.clone(),
        gold: item.gold_label().to_string(),
        predicted: None,
        predicted_norm: None,
        option_logprobs: Vec::new(),
        reference_logprob: None,
        output: String::new(),
        extraction: None,
        text_scores: None,
        refusal: false,
        safety_flags: Vec::new(),
        variant: item.variant.clone(),
        reference: item.reference.clone(),
        question: item.question.clone(),
    }
}

/// Indices of `items` sorted by prompt length, in chunks of `batch`: rows of one batch pad
/// little.
fn batches(lens: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// Scores `items` by likelihood.
pub fn run_likelihood(
    lm: &LoadedModel,
    target: &str,
    items: &[Item],
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Prediction>> {
    let merr = |e| Error::model(target, e);
    let mut requests = Vec::with_capacity(items.len());
    for it in items {
        let prompt = lm.chat_prompt(&to_model_messages(it)).map_err(merr)?;
        let conts: Vec<String> = match &it.kind {
            ItemKind::Choice { continuations, .. } => continuations.clone(),
            ItemKind::FreeText => vec![it.reference.clone()],
        };
        let options = conts
            .iter()
            .map(|c| lm.encode(c).map_err(merr))
            .collect::<Result<Vec<_>>>()?;
        if let Some(k) = options.iter().position(Vec::is_empty) {
            return Err(Error::item(
                &it.id,
                format!("option {k} encodes to no tokens"),
            ));
        }
        requests.push(ChoiceRequest { prompt, options });
    }
    let lens: Vec<usize> = requests
        .iter()
        .map(|r| r.prompt.len() + r.options.iter().map(Vec::len).max().unwrap_or(0))
        .collect();
    let mut out: Vec<Option<Prediction>> = vec![None; items.len()];
    for chunk in batches(&lens, batch_size) {
        let reqs: Vec<ChoiceRequest> = chunk.iter().map(|&i| requests[i].clone()).collect();
        let scores = score_choices(&lm.model, &reqs).map_err(|e| match e {
            Error::Model { source, .. } => Error::Model {
                target: target.to_string(),
                source,
            },
            other => other,
        })?;
        for (&i, s) in chunk.iter().zip(scores) {
            let it = &items[i];
            let mut p = blank(target, it, Mode::Likelihood);
            match &it.kind {
                ItemKind::Choice { labels, .. } => {
                    p.predicted = Some(labels[s.argmax(false)].clone());
                    p.predicted_norm = Some(labels[s.argmax(true)].clone());
                    p.option_logprobs = s.sum.clone();
                }
                ItemKind::FreeText => {
                    p.reference_logprob = Some((requests[i].options[0].len(), s.sum[0]));
                }
            }
            out[i] = Some(p);
        }
        observer.advance(chunk.len());
    }
    Ok(out.into_iter().flatten().collect())
}

/// Scores `items` by greedy generation.
#[allow(clippy::too_many_arguments)]
pub fn run_generate(
    lm: &LoadedModel,
    target: &str,
    items: &[Item],
    spec: &EvalSpec,
    scorer: &TextScorer,
    observer: &mut dyn Observer,
) -> Result<Vec<Prediction>> {
    let merr = |e| Error::model(target, e);
    let detok: &dyn Detokenize = lm.tokenizer().map_err(merr)?;
    let prompts = items
        .iter()
        .map(|it| lm.chat_prompt(&to_model_messages(it)).map_err(merr))
        .collect::<Result<Vec<_>>>()?;
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let mut out: Vec<Option<Prediction>> = vec![None; items.len()];
    for chunk in batches(&lens, spec.batch_size) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let free = chunk.iter().any(|&i| items[i].kind == ItemKind::FreeText);
        let opts = GenerateOptions {
            max_new_tokens: if free {
                spec.max_new_tokens_text
            } else {
                spec.max_new_tokens_choice
            },
            eos_token_ids: lm.eos_token_ids.clone(),
            ..GenerateOptions::default()
        };
        let gens = generate(&lm.model, &batch, &opts, Some(detok), &mut |_, _| {}).map_err(merr)?;
        for (&i, g) in chunk.iter().zip(gens) {
            let it = &items[i];
            let text = match g.text {
                Some(t) => t,
                None => detok.detokenize(&g.tokens).map_err(merr)?,
            };
            let text = text.trim().to_string();
            let mut p = blank(target, it, Mode::Generate);
            match &it.kind {
                ItemKind::Choice { labels, .. } => {
                    let found = if it.suite.is_mcq() {
                        extract_mcq(&text, &mcq_options(it))
                    } else {
                        extract_decision(&text, labels)
                    };
                    if let Some((k, how)) = found {
                        p.predicted = Some(labels[k].clone());
                        p.extraction = Some(how.name().into());
                    }
                }
                ItemKind::FreeText => {
                    p.text_scores = Some(scorer.score(&text, &it.reference)?);
                }
            }
            p.refusal = is_refusal(&text);
            if let Some(v) = &spec.validator {
                p.safety_flags = safety_flags(v, &it.question, &text);
            }
            p.output = text;
            out[i] = Some(p);
        }
        observer.advance(chunk.len());
    }
    Ok(out.into_iter().flatten().collect())
}

/// The option texts of an MCQ item, recovered from its user message (`A. text` lines), which
/// [`medtune_data::prompt::build_prompt`] wrote.
fn mcq_options(it: &Item) -> Vec<String> {
    let ItemKind::Choice { labels, .. } = &it.kind else {
        return Vec::new();
    };
    let user = it.messages.last().map(|m| m.content.as_str()).unwrap_or("");
    labels
        .iter()
        .map(|l| {
            let tag = format!("{l}. ");
            user.lines()
                .find_map(|line| line.strip_prefix(tag.as_str()))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Loads every suite once, so all targets see identical items.
pub fn load_items(spec: &EvalSpec) -> Result<Vec<(Suite, SuiteItems)>> {
    spec.suites
        .iter()
        .map(|&s| {
            Ok((
                s,
                load_suite(s, &spec.sources, spec.limit, spec.choice_target)?,
            ))
        })
        .collect()
}

/// Puts `target`'s adapter (or none) on the loaded model.
pub fn apply_target(lm: &mut LoadedModel, target: &EvalTarget) -> Result<()> {
    detach_lora(&mut lm.model);
    if let Some(dir) = &target.adapter {
        load_peft_for_inference(&mut lm.model, dir).map_err(|e| Error::model(&target.name, e))?;
    }
    Ok(())
}

/// Evaluates every target on every suite of `spec` (see the crate docs) and builds the
/// comparison. The model ends with no adapter attached.
pub fn run_suites(
    spec: &EvalSpec,
    lm: &mut LoadedModel,
    targets: &[EvalTarget],
    observer: &mut dyn Observer,
) -> Result<Comparison> {
    if targets.is_empty() {
        return Err(Error::Setting {
            field: "targets".into(),
            message: "nothing to evaluate".into(),
        });
    }
    let mut names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Setting {
            field: "targets".into(),
            message: format!("two targets are named `{}`", w[0]),
        });
    }
    let suites = load_items(spec)?;
    let scorer = TextScorer::new(spec.wordnet.as_ref());
    let mut predictions = Vec::new();
    for target in targets {
        apply_target(lm, target)?;
        for (suite, si) in &suites {
            for mode in spec.modes.list() {
                observer.stage(&target.name, *suite, mode, si.items.len());
                let preds = match mode {
                    Mode::Likelihood => {
                        run_likelihood(lm, &target.name, &si.items, spec.batch_size, observer)?
                    }
                    Mode::Generate => {
                        run_generate(lm, &target.name, &si.items, spec, &scorer, observer)?
                    }
                };
                observer.finish();
                predictions.extend(preds);
            }
        }
    }
    detach_lora(&mut lm.model);
    let skipped = suites
        .iter()
        .flat_map(|(s, si)| {
            si.skipped
                .iter()
                .map(move |(id, why)| (*s, id.clone(), why.clone()))
        })
        .collect();
    let problems = suites
        .iter()
        .flat_map(|(s, si)| si.problems.iter().map(move |p| (*s, p.clone())))
        .collect();
    Comparison::build(
        targets.iter().map(|t| t.name.clone()).collect(),
        predictions,
        skipped,
        problems,
        &spec.bootstrap,
        &scorer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_group_similar_lengths() {
        let b = batches(&[5, 1, 4, 2], 2);
        assert_eq!(b, vec![vec![1, 3], vec![2, 0]]);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Modes::parse("both").unwrap().list().len(), 2);
        assert!(Modes::parse("all").is_err());
    }
}
