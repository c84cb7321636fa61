//! `medtune eval`: evaluate a base model and its adapters on medical benchmarks and write a
//! comparison report; `medtune eval metrics` (see `eval_metrics.rs`) scores stored text pairs.

use anyhow::Context;
use clap::{Args, FromArgMatches, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use medtune_eval::metrics::wordnet::WordNet;
use medtune_eval::run::Mode;
use medtune_eval::{
    run_suites, write_report, ChoiceTarget, EvalSpec, EvalTarget, Modes, Observer, Sources, Suite,
};
use medtune_model::{load, LoadOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Evaluate models on medical benchmarks (`eval --model ...`) or score text pairs (`eval metrics`).
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalSub>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand)]
enum EvalSub {
    /// Score PAIRS.jsonl hypothesis/reference lines with BLEU, ROUGE, METEOR, EM/F1
    /// (`medtune eval metrics --help` for its options).
    #[command(disable_help_flag = true)]
    Metrics(ForwardedArgs),
}

/// Arguments passed on unchanged to `eval metrics`.
#[derive(Args)]
struct ForwardedArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    rest: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// Base model: a folder (config.json, safetensors, tokenizer.json) or a .gguf file.
    #[arg(long, required = true)]
    model: Option<PathBuf>,
    /// PEFT adapter folder to compare with the base (repeatable).
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// Suites, comma separated: pubmedqa, medmcqa, medqa, mmlu-medical, qpain, medquad.
    #[arg(long, value_delimiter = ',', default_value = "pubmedqa,mmlu-medical")]
    suite: Vec<String>,
    /// Raw benchmark data directory.
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Prepared dataset (`medtune data prepare` output) whose held-out split MedQuAD scores.
    #[arg(long)]
    dataset_dir: Option<PathBuf>,
    /// Held-out split file in --dataset-dir (`test` or `validation`).
    #[arg(long, default_value = "test")]
    split: String,
    /// At most N items per suite, spread evenly over the source (Q-Pain: N vignettes).
    #[arg(long)]
    limit: Option<usize>,
    /// Output folder for the report.
    #[arg(long, default_value = "eval_out")]
    out: PathBuf,
    /// likelihood (option log-likelihood), generate (greedy + answer extraction) or both.
    #[arg(long, default_value = "likelihood")]
    mode: String,
    /// What an MCQ option is scored as in likelihood mode: letter or text.
    #[arg(long, default_value = "letter")]
    mcq_target: String,
    /// Items per forward batch.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// New-token limit for free-text answers (MedQuAD).
    #[arg(long, default_value_t = 192)]
    max_new_tokens: usize,
    /// New-token limit for choice questions in generation mode.
    #[arg(long, default_value_t = 32)]
    max_new_tokens_choice: usize,
    /// WordNet 3.0 directory for METEOR [default: models/wordnet or /usr/share/wordnet when
    /// present; METEOR is skipped without one].
    #[arg(long)]
    wordnet: Option<PathBuf>,
    /// Do not run the safety validator on generated answers.
    #[arg(long)]
    no_safety: bool,
    /// Bootstrap resamples for every interval.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Run GGUF layers with GGML's quantized kernels instead of dequantizing them once at load.
    #[arg(long)]
    keep_quantized: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Draws one progress bar per target × suite × mode on stderr.
struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl Observer for Progress {
    fn stage(&mut self, target: &str, suite: Suite, mode: Mode, total: usize) {
        self.bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total as u64)
        };
        self.bar.set_style(
            ProgressStyle::with_template(
                "{msg:40} {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar
            .set_message(format!("{target} {suite} {}", mode.name()));
    }
    fn advance(&mut self, n: usize) {
        self.bar.inc(n as u64);
    }
    fn finish(&mut self) {
        self.bar.finish();
    }
}

fn wordnet(arg: Option<PathBuf>) -> anyhow::Result<Option<WordNet>> {
    let dir = match arg {
        Some(d) => Some(d),
        None => ["models/wordnet", "/usr/share/wordnet"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("index.noun").is_file()),
    };
    dir.map(|d| WordNet::open(&d).with_context(|| format!("reading WordNet from {}", d.display())))
        .transpose()
}

/// Runs `medtune eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if let Some(EvalSub::Metrics(fwd)) = args.command {
        let cmd = crate::commands::eval_metrics::EvalArgs::augment_args(
            clap::Command::new("medtune eval").subcommand_required(true),
        );
        let argv = ["medtune eval".to_string(), "metrics".to_string()]
            .into_iter()
            .chain(fwd.rest);
        let matches = cmd.try_get_matches_from(argv).unwrap_or_else(|e| e.exit());
        let inner = crate::commands::eval_metrics::EvalArgs::from_arg_matches(&matches)?;
        return crate::commands::eval_metrics::run(inner);
    }
    let a = args.bench;
    let model_path = a.model.context("--model is required")?;
    let settings = super::eval_manifest::EvalSettings {
        suites: a.suite.clone(),
        limit: a.limit,
        mode: a.mode.clone(),
        mcq_target: a.mcq_target.clone(),
        batch_size: a.batch_size,
        max_new_tokens: a.max_new_tokens,
        max_new_tokens_choice: a.max_new_tokens_choice,
        resamples: a.resamples,
        safety: !a.no_safety,
        keep_quantized: a.keep_quantized,
        data_dir: a.data_dir.clone(),
        dataset_dir: a.dataset_dir.clone(),
        split: a.split.clone(),
    };
    let adapter_paths = a.adapter.clone();
    let suites = a
        .suite
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Suite::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut spec = EvalSpec::new(
        suites,
        Sources {
            data_dir: a.data_dir,
            dataset_dir: a.dataset_dir,
            heldout_split: a.split,
        },
    );
    spec.limit = a.limit;
    spec.modes = Modes::parse(&a.mode)?;
    spec.choice_target = match a.mcq_target.as_str() {
        "letter" => ChoiceTarget::Letter,
        "text" => ChoiceTarget::Text,
        other => anyhow::bail!("--mcq-target `{other}` is not letter or text"),
    };
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    spec.batch_size = a.batch_size;
    spec.max_new_tokens_text = a.max_new_tokens;
    spec.max_new_tokens_choice = a.max_new_tokens_choice;
    spec.wordnet = wordnet(a.wordnet)?;
    spec.bootstrap.resamples = a.resamples;
    if !a.no_safety {
        spec.validator = Some(
            medtune_safety::Validator::new(Default::default())
                .context("building the safety validator")?,
        );
    }
    let t0 = Instant::now();
    let mut lm = load(&model_path, &LoadOptions::default())
        .with_context(|| format!("loading {}", model_path.display()))?;
    if !a.keep_quantized {
        lm.model
            .dequantize_linears()
            .context("dequantizing GGUF layers")?;
    }
    let mut targets = vec![EvalTarget::base()];
    targets.extend(a.adapter.into_iter().map(EvalTarget::adapter));
    let mut progress = Progress {
        bar: ProgressBar::hidden(),
        quiet: a.quiet,
    };
    let cmp = run_suites(&spec, &mut lm, &targets, &mut progress)?;
    let mut files = write_report(&cmp, &a.out)
        .with_context(|| format!("writing the report to {}", a.out.display()))?;
    let manifest =
        super::eval_manifest::build(&model_path, &lm, &adapter_paths, &settings, &cmp.metrics)?;
    files.push(super::eval_manifest::write(&a.out, &manifest)?);
    for r in cmp.metrics.iter().filter(|r| {
        matches!(
            r.metric.as_str(),
            "accuracy" | "rouge_l" | "perplexity" | "format_failure_rate"
        )
    }) {
        eprintln!(
            "{:<14} {:<13} {:<10} {:<20} {:.4} [{:.4}, {:.4}] n={}",
            r.target,
            r.suite.name(),
            r.mode.name(),
            r.metric,
            r.value.value,
            r.value.low,
            r.value.high,
            r.n
        );
    }
    eprintln!(
        "wrote {} files to {} in {:.1}s (report: {})",
        files.len(),
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        a.out.join("report.md").display()
    );
    Ok(ExitCode::SUCCESS)
}
