//! `medtune eval metrics`: score hypothesis/reference pairs with the text metrics
//! (BLEU, ROUGE, METEOR, SQuAD EM/F1, optional embedding similarity) and
//! summarise the corpus with bootstrap confidence intervals.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use medtune_eval::metrics::bootstrap::Bootstrap;
use medtune_eval::metrics::embedding::Encoder;
use medtune_eval::metrics::pairs::{read_pairs, summarize, PairScorer, Summary};
use medtune_eval::metrics::wordnet::WordNet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Evaluate models and outputs.
#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Score PAIRS.jsonl lines {"id", "references": [..], "hypothesis"} with BLEU (sacrebleu,
    /// 0-100, sentence level with effective order), ROUGE-1/2/L/Lsum (rouge-score; `_stem` keys
    /// with the Porter stemmer), METEOR (nltk), SQuAD exact match and F1; write one JSON line
    /// per id and a corpus summary with bootstrap CIs.
    Metrics(MetricsArgs),
}

#[derive(Args)]
struct MetricsArgs {
    /// Input JSON Lines: {"id", "references": [..], "hypothesis"} per line.
    #[arg(long)]
    input: PathBuf,
    /// Output JSON Lines, one line of scores per id.
    #[arg(long)]
    out: PathBuf,
    /// WordNet 3.0 directory (index.*, data.*, *.exc) for METEOR synonyms
    /// [default: models/wordnet, else /usr/share/wordnet].
    #[arg(long)]
    wordnet: Option<PathBuf>,
    /// Sentence-embedding model directory (config.json, model.safetensors, tokenizer.json),
    /// e.g. models/all-minilm-l6-v2; adds bertscore_* and embedding_cosine.
    #[arg(long)]
    embed_model: Option<PathBuf>,
    /// Write the corpus summary (JSON) here as well as printing it to stderr.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Bootstrap confidence level.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Bootstrap RNG seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `medtune eval <subcommand>`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EvalCommand::Metrics(a) => run_metrics(a),
    }
}

fn wordnet_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = arg {
        return Ok(dir);
    }
    for candidate in ["models/wordnet", "/usr/share/wordnet"] {
        let dir = PathBuf::from(candidate);
        if dir.join("index.noun").is_file() {
            return Ok(dir);
        }
    }
    bail!(
        "METEOR needs WordNet 3.0 and none was found in models/wordnet or /usr/share/wordnet\n\
         hint: pass --wordnet DIR (Debian: apt-get install wordnet-base gives /usr/share/wordnet)"
    )
}

/// Writes `contents` to `path` through a temporary file in the same directory.
fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

fn print_summary(s: &Summary) {
    let pct = s.confidence * 100.0;
    eprintln!(
        "{} pairs; {pct:.0}% bootstrap CIs ({} resamples, seed {})",
        s.n, s.resamples, s.seed
    );
    eprintln!(
        "  {:<26} {:>10} {:>10} {:>10}",
        "figure", "value", "low", "high"
    );
    let c = &s.corpus_bleu;
    eprintln!(
        "  {:<26} {:>10.4} {:>10.4} {:>10.4}",
        "corpus_bleu", c.value, c.low, c.high
    );
    for (k, i) in &s.means {
        eprintln!(
            "  {:<26} {:>10.4} {:>10.4} {:>10.4}",
            format!("mean {k}"),
            i.value,
            i.low,
            i.high
        );
    }
}

fn run_metrics(args: MetricsArgs) -> anyhow::Result<ExitCode> {
    let pairs = read_pairs(&args.input)?;
    if pairs.is_empty() {
        bail!("{}: no pairs to score", args.input.display());
    }
    let wn_dir = wordnet_dir(args.wordnet)?;
    let wordnet = WordNet::open(&wn_dir)
        .with_context(|| format!("loading WordNet from {}", wn_dir.display()))?;
    let encoder = match &args.embed_model {
        Some(dir) => Some(
            Encoder::load(dir, candle_core::DType::F32, &candle_core::Device::Cpu)
                .with_context(|| format!("loading the embedding model from {}", dir.display()))?,
        ),
        None => None,
    };
    let scorer = PairScorer::new(&wordnet, encoder.as_ref());
    let start = Instant::now();
    let mut scores = Vec::with_capacity(pairs.len());
    let mut out = Vec::new();
    for p in &pairs {
        let s = scorer.score(p).with_context(|| {
            format!("{}:{}: scoring id {:?}", args.input.display(), p.line, p.id)
        })?;
        serde_json::to_writer(&mut out, &s.to_json())?;
        out.push(b'\n');
        scores.push(s);
    }
    let secs = start.elapsed().as_secs_f64();
    write_atomic(&args.out, &out)?;
    let boot = Bootstrap {
        resamples: args.resamples,
        confidence: args.confidence,
        seed: args.seed,
    };
    let summary = summarize(&scores, &boot)?;
    print_summary(&summary);
    if let Some(path) = &args.summary {
        let mut text = serde_json::to_vec_pretty(&summary)?;
        text.push(b'\n');
        write_atomic(path, &text)?;
    }
    eprintln!(
        "scored {} pairs in {secs:.2} s ({:.1} pairs/s); wrote {}",
        pairs.len(),
        pairs.len() as f64 / secs.max(1e-9),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
