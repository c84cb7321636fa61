//! `medtune demo`: the main job end to end on the embedded default — prepare MedQuAD, evaluate the
//! base, fine-tune LoRA adapters on the frozen 4-bit base, evaluate again on the same items,
//! safety-check the answers, and write a run directory with `report.md`, plots, the adapter and
//! `manifest.json`.

use anyhow::Context;
use clap::Args;
use medtune_data::pipeline::{prepare as prepare_data, PrepareOptions};
use medtune_data::template::Message;
use medtune_data::{DataConfig, Record};
use medtune_eval::metrics::{bleu::Bleu, rouge::RougeScorer, squad};
use medtune_model::{generate, GenerateOptions};
use medtune_safety::{SafetyReport, Validator};
use medtune_train::config::TrainConfig;
use medtune_train::lora_model::{prepare, LoraModel, PreparedRun};
use medtune_train::plot::{bar_chart, Bar, Labels};
use medtune_train::trainer::StepModel;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::train::{pick_device, ProgressObserver};

const MEDQUAD_CONFIG: &str = include_str!("../../../../configs/data/medquad.toml");
const FALLBACK_CONFIG: &str = include_str!("../../../../configs/data/demo-fallback.toml");
const FALLBACK_DATA: &str = include_str!("../../../../fixtures/demo/medical_qa.jsonl");
const DEMO_CONFIG: &str = include_str!("../../../../configs/demo.toml");

/// Fine-tune the default model on medical QA and show what changed.
#[derive(Args)]
pub struct DemoArgs {
    /// Smallest run (a few minutes on 2 CPU cores).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Largest run (all training examples, one epoch; for a GPU).
    #[arg(long)]
    pub full: bool,
    /// Base model (folder or .gguf).
    #[arg(long, default_value = "models/smollm2-135m-instruct")]
    pub model: PathBuf,
    /// Data directory holding `medquad/`; without it a small QA set of our own is used.
    #[arg(long, default_value = "../shared/data")]
    pub data_dir: PathBuf,
    /// Run directory.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Override any run-config key (`--set optim.lr=1e-4`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Sizes of a demo run.
struct Size {
    name: &'static str,
    steps: usize,
    train_examples: usize,
    eval_examples: usize,
    gen_items: usize,
    max_new_tokens: usize,
}

fn size(args: &DemoArgs, gpu: bool) -> Size {
    match (args.quick, args.full, gpu) {
        (true, _, _) => Size {
            name: "quick",
            steps: 30,
            train_examples: 120,
            eval_examples: 24,
            gen_items: 6,
            max_new_tokens: 48,
        },
        (_, true, _) => Size {
            name: "full",
            steps: 0,
            train_examples: 0,
            eval_examples: 200,
            gen_items: 50,
            max_new_tokens: 128,
        },
        (_, _, true) => Size {
            name: "gpu",
            steps: 300,
            train_examples: 2400,
            eval_examples: 200,
            gen_items: 40,
            max_new_tokens: 128,
        },
        _ => Size {
            name: "default",
            steps: 60,
            train_examples: 240,
            eval_examples: 32,
            gen_items: 10,
            max_new_tokens: 64,
        },
    }
}

/// Scores of generated answers against references.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct GenScores {
    rouge_l_f: f64,
    rouge_1_f: f64,
    bleu: f64,
    token_f1: f64,
    mean_words: f64,
    safety_warnings: usize,
    safety_by_category: std::collections::BTreeMap<String, usize>,
}

struct Answer {
    question: String,
    reference: String,
    text: String,
    safety: SafetyReport,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let device = pick_device();
    let sz = size(&args, device.is_cuda());
    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    step(
        1,
        &format!(
            "medtune demo ({} run on {}) → {}",
            sz.name,
            if device.is_cuda() { "GPU" } else { "CPU" },
            out.display()
        ),
    );

    // 1. Data: MedQuAD from the data directory, else our own small QA set.
    let dataset_dir = out.join("data");
    let (data_name, data_cfg_text, data_dir) = if args.data_dir.join("medquad").is_dir() {
        ("MedQuAD", MEDQUAD_CONFIG, args.data_dir.clone())
    } else {
        let src = out.join("source");
        std::fs::create_dir_all(&src)?;
        std::fs::write(src.join("medical_qa.jsonl"), FALLBACK_DATA)?;
        (
            "medtune's own demo QA set (no data directory found)",
            FALLBACK_CONFIG,
            src,
        )
    };
    step(
        2,
        &format!("preparing {data_name}: clean, near-duplicate-aware split"),
    );
    let data_cfg = DataConfig::from_toml_str(data_cfg_text, "embedded data config")?;
    let prepared = prepare_data(
        &data_cfg,
        &PrepareOptions {
            data_dir: &data_dir,
            out_dir: Some(&dataset_dir),
            strict: false,
            config_text: Some(data_cfg_text),
            tokens: None,
            dose_rules: &medtune_data::augment::dose::BuiltinDoseTable,
        },
    )
    .context("preparing the data")?;
    let counts: Vec<String> = prepared
        .manifest
        .counts
        .iter()
        .map(|(s, n)| format!("{} {n}", s.name()))
        .collect();
    println!(
        "    splits: {} (near-duplicate pairs across splits: {})",
        counts.join(", "),
        prepared.stats.leakage.near_dup_pairs_crossing
    );

    // 2. Model + adapters + tokenized splits.
    let mut overrides = vec![
        format!("model.path={:?}", args.model.display().to_string()),
        format!("data.dataset_dir={:?}", dataset_dir.display().to_string()),
        format!(
            "train.output_dir={:?}",
            out.join("train").display().to_string()
        ),
        format!("train.max_steps={}", sz.steps),
        format!("data.max_train_examples={}", sz.train_examples * 6),
        format!("data.max_eval_examples={}", sz.eval_examples * 3),
    ];
    if sz.steps == 0 {
        overrides.push("train.epochs=1".into());
    }
    overrides.extend(args.overrides.iter().cloned());
    let cfg = TrainConfig::from_toml_str(DEMO_CONFIG, "embedded demo config", &overrides)?;
    step(
        3,
        &format!(
            "loading {} and attaching LoRA (r={}, {:?})",
            cfg.model.path.display(),
            cfg.lora.r,
            cfg.lora.target_modules
        ),
    );
    let mut run = prepare(&cfg, &device).context("preparing the training run")?;
    if sz.train_examples > 0 {
        run.train_set.truncate(sz.train_examples);
    }
    run.eval_set.truncate(sz.eval_examples);
    println!(
        "    {} trainable parameters; {} train / {} eval examples; {:.0}% of tokens supervised",
        run.model.lora.num_params(),
        run.train_set.len(),
        run.eval_set.len(),
        100.0 * run.audit.supervised_fraction
    );
    let test: Vec<Record> = prepared
        .splits
        .iter()
        .find(|(s, _)| s.name() == "test")
        .map(|(_, r)| {
            r.iter()
                .filter(|r| r.answer.len() < 700)
                .take(sz.gen_items)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let validator = Validator::new(medtune_safety::Config::default())?;
    let system = data_cfg.prompt.system_prompt.clone();

    // 3. Base: answers to held-out questions (adapters start at B = 0: exactly the base).
    step(
        4,
        &format!("base model answers {} held-out questions", test.len()),
    );
    let base_answers = answer_all(
        &run,
        &test,
        system.as_deref(),
        sz.max_new_tokens,
        &validator,
    )?;

    // 4. Fine-tune.
    step(5, &format!("fine-tuning ({} steps)", cfg.train.max_steps));
    let mut obs = ProgressObserver::new(args.quiet);
    let summary = run.train(&cfg, false, &mut obs)?;
    drop(obs);
    run.model
        .load_adapter(&summary.adapter_dir)
        .context("loading the best adapter")?;

    // 5. Tuned: the same questions.
    step(6, "fine-tuned model answers the same questions");
    let tuned_answers = answer_all(
        &run,
        &test,
        system.as_deref(),
        sz.max_new_tokens,
        &validator,
    )?;

    // 6. Report.
    step(7, "writing the report");
    let (b, t) = (scores(&base_answers), scores(&tuned_answers));
    let rows = vec![
        (
            "eval loss (validation)",
            summary.initial_eval_loss,
            summary.best_eval_loss.or(summary.final_eval_loss),
            4,
        ),
        (
            "eval perplexity",
            summary.initial_eval_loss.map(f64::exp),
            summary
                .best_eval_loss
                .or(summary.final_eval_loss)
                .map(f64::exp),
            2,
        ),
        (
            "ROUGE-L F1 (held-out answers)",
            Some(b.rouge_l_f),
            Some(t.rouge_l_f),
            4,
        ),
        ("ROUGE-1 F1", Some(b.rouge_1_f), Some(t.rouge_1_f), 4),
        ("BLEU (sentence mean)", Some(b.bleu), Some(t.bleu), 2),
        ("token F1 (SQuAD)", Some(b.token_f1), Some(t.token_f1), 4),
        (
            "answer length (words)",
            Some(b.mean_words),
            Some(t.mean_words),
            1,
        ),
        (
            "safety warnings",
            Some(b.safety_warnings as f64),
            Some(t.safety_warnings as f64),
            0,
        ),
    ];
    let table = render_table(&rows);
    write_report(
        &out,
        &cfg,
        &summary,
        &table,
        &base_answers,
        &tuned_answers,
        data_name,
        &run.model,
    )?;
    let bars: Vec<Bar> = [("base", &b), ("tuned", &t)]
        .iter()
        .flat_map(|(who, s)| {
            [("ROUGE-L", s.rouge_l_f), ("token F1", s.token_f1)].map(|(m, v)| Bar {
                label: format!("{m} {who}"),
                value: v,
                ci: None,
            })
        })
        .collect();
    if let Err(e) = bar_chart(
        &out.join("before_after"),
        &Labels {
            title: "Held-out answers: base vs fine-tuned",
            x: "",
            y: "score",
        },
        &bars,
    ) {
        eprintln!("warning: {e}");
    }
    for f in ["loss.png", "loss.svg"] {
        let _ = std::fs::copy(out.join("train").join(f), out.join(f));
    }
    checkpoint_copy(&summary.adapter_dir, &out.join("adapter"))?;
    if let Some(m) = &run.model.manifest {
        let mut m = m.clone();
        m.results
            .insert("train".into(), serde_json::to_value(&summary)?);
        m.results.insert("base".into(), serde_json::to_value(&b)?);
        m.results.insert("tuned".into(), serde_json::to_value(&t)?);
        m.results.insert(
            "safety".into(),
            serde_json::json!({
                "base": safety_summary(&base_answers),
                "tuned": safety_summary(&tuned_answers),
            }),
        );
        m.write(&out)?;
        m.write(&out.join("adapter"))?;
    }
    println!("\n{table}");
    println!(
        "\nrun directory: {} (report.md, loss.png, before_after.png, adapter/, manifest.json) — {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn step(n: usize, msg: &str) {
    println!("[{n}/7] {msg}");
}

fn answer_all(
    run: &PreparedRun,
    items: &[Record],
    system: Option<&str>,
    max_new_tokens: usize,
    validator: &Validator,
) -> anyhow::Result<Vec<Answer>> {
    let (model, tok, text_tok, eos_ids) = (
        &run.model,
        &run.tokenizer,
        &run.text_tokenizer,
        &run.eos_ids,
    );
    model.lora.set_train(false);
    // All questions in one left-padded batch: one decode step serves every row.
    let mut prompts = Vec::with_capacity(items.len());
    for r in items {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::new("system", s));
        }
        messages.push(Message::new("user", r.question.clone()));
        let prompt = tok.template().render(&messages, true)?;
        let enc = text_tok
            .encode(prompt.as_str(), false)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        prompts.push(enc.get_ids().to_vec());
    }
    let opts = GenerateOptions {
        max_new_tokens,
        eos_token_ids: eos_ids.to_vec(),
        ..GenerateOptions::default()
    };
    let gens = if prompts.is_empty() {
        Vec::new()
    } else {
        generate(&model.model, &prompts, &opts, None, &mut |_, _| {})?
    };
    let mut out = Vec::new();
    for (r, g) in items.iter().zip(gens) {
        let text = text_tok
            .decode(&g.tokens, true)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?
            .trim()
            .to_string();
        let safety = validator.check(&r.question, &text, None);
        out.push(Answer {
            question: r.question.clone(),
            reference: r.answer.clone(),
            text,
            safety,
        });
    }
    Ok(out)
}

fn scores(answers: &[Answer]) -> GenScores {
    let n = answers.len().max(1) as f64;
    let rouge = RougeScorer::new(true);
    let bleu = Bleu {
        effective_order: true,
        ..Bleu::default()
    };
    let mut s = GenScores::default();
    for a in answers {
        let refs = [a.reference.as_str()];
        let r = rouge.score_multi(&refs, &a.text);
        s.rouge_l_f += r.rouge_l.fmeasure / n;
        s.rouge_1_f += r.rouge1.fmeasure / n;
        s.bleu += bleu.sentence_score(&a.text, &refs).score / n;
        s.token_f1 += squad::f1(&a.text, &refs) / n;
        s.mean_words += a.text.split_whitespace().count() as f64 / n;
        s.safety_warnings += a.safety.warnings.len();
        for w in &a.safety.warnings {
            let cat = serde_json::to_value(w.category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *s.safety_by_category.entry(cat).or_default() += 1;
        }
    }
    s
}

/// The safety section of the run manifest for one set of answers: how many were checked, how
/// many drew warnings, the warnings by category and the highest risk level.
fn safety_summary(answers: &[Answer]) -> serde_json::Value {
    let mut by_category = std::collections::BTreeMap::<String, usize>::new();
    for w in answers.iter().flat_map(|a| &a.safety.warnings) {
        let cat = serde_json::to_value(w.category)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *by_category.entry(cat).or_default() += 1;
    }
    serde_json::json!({
        "answers_checked": answers.len(),
        "answers_with_warnings": answers.iter().filter(|a| !a.safety.warnings.is_empty()).count(),
        "warnings": answers.iter().map(|a| a.safety.warnings.len()).sum::<usize>(),
        "max_risk_level": answers.iter().map(|a| a.safety.risk_level).max().unwrap_or(0),
        "by_category": by_category,
    })
}

fn render_table(rows: &[(&str, Option<f64>, Option<f64>, usize)]) -> String {
    let f = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
    let mut t = String::from("| metric | base | fine-tuned | change |\n|---|---|---|---|\n");
    for (name, b, a, p) in rows {
        let d = match (b, a) {
            (Some(b), Some(a)) => format!("{:+.p$}", a - b, p = *p),
            _ => "-".into(),
        };
        t.push_str(&format!(
            "| {name} | {} | {} | {d} |\n",
            f(*b, *p),
            f(*a, *p)
        ));
    }
    t
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    out: &Path,
    cfg: &TrainConfig,
    s: &medtune_train::trainer::TrainSummary,
    table: &str,
    base: &[Answer],
    tuned: &[Answer],
    data_name: &str,
    model: &LoraModel,
) -> anyhow::Result<()> {
    let mut md = String::new();
    md.push_str("# medtune demo report\n\n");
    md.push_str(&format!(
        "Base model `{}`, frozen ({}), LoRA r={} alpha={} on {:?}{}; data: {data_name}. {} optimizer steps, {:.0} training tokens/s, {:.0} s of training.\n\n",
        cfg.model.path.display(),
        model.manifest.as_ref().map(|m| m.base_storage.as_str()).unwrap_or("-"),
        cfg.lora.r,
        cfg.lora.lora_alpha,
        cfg.lora.target_modules,
        if cfg.lora.layers_to_transform.is_empty() { String::new() } else { format!(" in layers {:?}", cfg.lora.layers_to_transform) },
        s.steps,
        s.tokens_per_s,
        s.elapsed_s
    ));
    md.push_str("## Before and after\n\n");
    md.push_str(table);
    md.push_str("\nEval loss is the mean token loss on validation answers (lower is better). Answer metrics compare generated answers to MedQuAD reference answers on held-out test questions (greedy decoding).\n\n![loss](loss.png)\n\n![before/after](before_after.png)\n\n## Answers\n\n");
    for (b, t) in base.iter().zip(tuned) {
        md.push_str(&format!(
            "**Q:** {}\n\n- *reference:* {}\n- *base:* {}\n- *fine-tuned:* {}\n- *safety (fine-tuned):* risk {} — {}\n\n",
            b.question,
            clip(&b.reference, 400),
            clip(&b.text, 400),
            clip(&t.text, 400),
            t.safety.risk_level,
            if t.safety.warnings.is_empty() { "no warnings".to_string() } else { t.safety.warnings.iter().map(|w| w.message.clone()).collect::<Vec<_>>().join("; ") }
        ));
    }
    md.push_str("\n---\nmedtune's answers are not medical advice. Adapter: `adapter/` (PEFT format); provenance: `manifest.json`.\n");
    medtune_data::io::write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

fn checkpoint_copy(src: &Path, dst: &Path) -> anyhow::Result<()> {
    medtune_train::checkpoint::write_dir_atomic(dst, |tmp| {
        medtune_train::checkpoint::copy_dir(src, tmp)
    })?;
    Ok(())
}
