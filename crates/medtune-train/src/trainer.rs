//! The training loop: data order → accumulate → normalise → clip → step → log → eval →
//! checkpoint, with exact resume.
//!
//! The loss of one optimizer step is the sum of token losses over all its micro-batches divided
//! by their total number of supervised tokens, so accumulating k micro-batches gives the same
//! update as one batch k times larger (unlike dividing each micro-batch loss by k).

use candle_core::Device;
use medtune_data::tokenize::TokenizedExample;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::batch::{collate, Batch};
use crate::checkpoint::{self, TrainerState};
use crate::clip::clip_grad_norm;
use crate::config::TrainConfig;
use crate::log::{MetricRow, MetricsLog};
use crate::manifest::RunManifest;
use crate::optim::{
    AdamW, AdamW8bit, AdamW8bitConfig, AdamWConfig, GradAccumulator, Grads, NamedVar, Optimizer,
};
use crate::schedule::{Schedule, ScheduleKind, Warmup};
use crate::{Error, Result};

/// What the loop needs from a model with trainable adapters.
pub trait StepModel {
    /// The trainable tensors with their PEFT key names, in a fixed order.
    fn params(&self) -> Vec<NamedVar>;
    /// Forward and backward on one micro-batch with dropout seeded by `dropout_seed`: returns the
    /// SUM of token losses, the number of supervised tokens, and the gradients of that sum.
    fn loss_and_grads(
        &mut self,
        batch: &Batch,
        recompute: bool,
        dropout_seed: u64,
    ) -> Result<(f64, usize, Grads)>;
    /// Sum of token losses and supervised tokens with dropout off and no gradients.
    fn eval_loss(&mut self, batch: &Batch) -> Result<(f64, usize)>;
    /// Writes the adapter in PEFT's format into `dir` (created by the caller's atomic writer).
    fn save_adapter(&self, dir: &Path) -> Result<()>;
    /// Reads adapter weights saved by [`StepModel::save_adapter`] back into the trainable tensors.
    fn load_adapter(&mut self, dir: &Path) -> Result<()>;
    /// The run's provenance. When present, the loop writes it as `manifest.json` into the run
    /// directory, every checkpoint, `best/` and `adapter/`, with the training metrics so far in
    /// its `train` results section.
    fn manifest(&self) -> Option<&RunManifest> {
        None
    }
}

/// Progress reports (the CLI draws a progress bar from these).
pub trait Observer {
    /// The run starts at `start_step` of `total_steps`.
    fn on_start(&mut self, _start_step: u64, _total_steps: u64) {}
    /// An optimizer step finished.
    fn on_step(&mut self, _row: &MetricRow) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _row: &MetricRow, _improved: bool) {}
    /// A message worth showing (checkpoint saved, early stop, resume).
    fn on_message(&mut self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    /// Optimizer steps done.
    pub steps: u64,
    /// Eval loss before the first step (absent when resumed or without eval data).
    pub initial_eval_loss: Option<f64>,
    /// Eval loss at the end.
    pub final_eval_loss: Option<f64>,
    /// Lowest eval loss and its step.
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Mean training loss of the last step.
    pub final_train_loss: Option<f64>,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
    /// Training tokens per second over the run.
    pub tokens_per_s: f64,
    /// The adapter to use: the best checkpoint's when there was eval data, else the last.
    pub adapter_dir: PathBuf,
    /// Seconds spent.
    pub elapsed_s: f64,
}

/// Runs (or resumes) training as `cfg` says, writing everything under `cfg.train.output_dir`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    cfg: &TrainConfig,
    model: &mut dyn StepModel,
    train_set: &[TokenizedExample],
    eval_set: &[TokenizedExample],
    pad_id: u32,
    device: &Device,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    let run_dir = cfg.train.output_dir.clone();
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    if train_set.is_empty() {
        return Err(Error::Audit("the training set is empty".into()));
    }
    let config_sha = hex_sha256(cfg.to_toml().as_bytes());
    let per_step = cfg.train.batch_size * cfg.train.grad_accum;
    let steps_per_epoch = train_set.len().div_ceil(per_step) as u64;
    let total_steps = if cfg.train.max_steps > 0 {
        cfg.train.max_steps as u64
    } else {
        steps_per_epoch * cfg.train.epochs as u64
    };
    let schedule = build_schedule(cfg, total_steps)?;
    let mut optimizer = build_optimizer(cfg, model.params())?;

    let mut state = TrainerState {
        step: 0,
        total_steps,
        epoch: 0,
        cursor: 0,
        best_eval_loss: None,
        best_step: None,
        evals_without_improvement: 0,
        config_sha256: config_sha.clone(),
    };
    let resumed_from = if resume {
        checkpoint::latest(&run_dir)
    } else {
        None
    };
    if let Some(dir) = &resumed_from {
        let (saved, opt_state) = checkpoint::load(dir, device)?;
        if saved.config_sha256 != config_sha {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                message: "saved with different settings; resume needs the same configuration"
                    .into(),
            });
        }
        model.load_adapter(&dir.join("adapter"))?;
        optimizer.load_state(&opt_state)?;
        state = saved;
        observer.on_message(&format!(
            "resumed from {} (step {})",
            dir.display(),
            state.step
        ));
    }
    std::fs::write(run_dir.join("train_config.toml"), cfg.to_toml())
        .map_err(|e| Error::io(&run_dir, e))?;
    let manifest = model.manifest().cloned();
    if let Some(m) = &manifest {
        m.with_result("train", progress(&state, "running", None, None, None))
            .write(&run_dir)?;
    }
    let mut log = MetricsLog::open(&run_dir, resumed_from.as_ref().map(|_| state.step))?;
    observer.on_start(state.step, total_steps);

    let started = Instant::now();
    let mut trained_tokens = 0u64;
    let mut order = epoch_order(train_set.len(), cfg.train.seed, state.epoch);
    let epoch_of = |s: &TrainerState| s.epoch as f64 + s.cursor as f64 / train_set.len() as f64;

    let mut initial_eval_loss = None;
    if resumed_from.is_none() && !eval_set.is_empty() {
        let loss = evaluate(model, eval_set, cfg.train.batch_size, pad_id, device)?;
        initial_eval_loss = Some(loss);
        let row = eval_row(0, 0.0, loss, started);
        log.push(row.clone())?;
        observer.on_eval(&row, false);
    }

    let mut final_train_loss = None;
    let mut final_eval_loss = None;
    let mut early_stopped = false;
    while state.step < total_steps {
        let step_started = Instant::now();
        // 1. Accumulate the sums of token losses and their gradients over the micro-batches.
        let mut acc = GradAccumulator::new();
        let (mut loss_sum, mut supervised, mut tokens) = (0.0f64, 0usize, 0usize);
        for micro in 0..cfg.train.grad_accum {
            let mut picked = Vec::with_capacity(cfg.train.batch_size);
            while picked.len() < cfg.train.batch_size {
                if state.cursor >= order.len() {
                    state.epoch += 1;
                    state.cursor = 0;
                    order = epoch_order(train_set.len(), cfg.train.seed, state.epoch);
                }
                picked.push(&train_set[order[state.cursor]]);
                state.cursor += 1;
            }
            let batch = collate(&picked, pad_id, device)?;
            let seed = dropout_seed(cfg.train.seed, state.step, micro as u64);
            let (sum, n, grads) = model.loss_and_grads(&batch, cfg.train.recompute, seed)?;
            loss_sum += sum;
            supervised += n;
            tokens += batch.tokens;
            acc.add(&grads)?;
        }
        // 2. Normalise by the supervised tokens of the whole accumulated batch.
        let loss = loss_sum / supervised.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                value: loss,
                step: state.step + 1,
            });
        }
        let Some(summed) = acc.take() else {
            return Err(Error::Audit("no micro-batch in an optimizer step".into()));
        };
        let mut grads = summed.scale(1.0 / supervised.max(1) as f64)?;
        // 3. Clip, 4. step with the scheduled learning rate.
        let norm = if cfg.optim.max_grad_norm > 0.0 {
            clip_grad_norm(&mut grads, cfg.optim.max_grad_norm)?
        } else {
            clip_grad_norm(&mut grads, f64::INFINITY)?
        };
        if !norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient norm".into(),
                value: norm,
                step: state.step + 1,
            });
        }
        let lr = schedule.lr_at(state.step);
        optimizer.step(&grads, lr)?;
        state.step += 1;
        trained_tokens += tokens as u64;
        final_train_loss = Some(loss);

        // 5. Log.
        let secs = step_started.elapsed().as_secs_f64();
        let row = MetricRow {
            kind: "train".into(),
            step: state.step,
            epoch: epoch_of(&state),
            loss,
            perplexity: None,
            lr: Some(lr),
            grad_norm: Some(norm),
            tokens: Some(tokens as u64),
            tokens_per_s: Some(tokens as f64 / secs.max(1e-9)),
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        log.push(row.clone())?;
        observer.on_step(&row);

        // 6. Evaluate, keep the best, stop early.
        let last = state.step == total_steps;
        let eval_now = !eval_set.is_empty()
            && (last
                || (cfg.train.eval_every > 0
                    && state.step.is_multiple_of(cfg.train.eval_every as u64)));
        let mut improved = false;
        if eval_now {
            let eval_loss = evaluate(model, eval_set, cfg.train.batch_size, pad_id, device)?;
            if !eval_loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "eval loss".into(),
                    value: eval_loss,
                    step: state.step,
                });
            }
            final_eval_loss = Some(eval_loss);
            improved = state.best_eval_loss.is_none_or(|b| eval_loss < b);
            if improved {
                state.best_eval_loss = Some(eval_loss);
                state.best_step = Some(state.step);
                state.evals_without_improvement = 0;
            } else {
                state.evals_without_improvement += 1;
            }
            let row = eval_row(state.step, epoch_of(&state), eval_loss, started);
            log.push(row.clone())?;
            observer.on_eval(&row, improved);
        }
        let patience = cfg.train.early_stopping_patience;
        early_stopped = patience > 0 && state.evals_without_improvement >= patience;

        // 7. Checkpoint (step checkpoints, and `best` when the eval loss improved).
        let save_now = last
            || early_stopped
            || (cfg.train.save_every > 0 && state.step.is_multiple_of(cfg.train.save_every as u64));
        if save_now || improved {
            let dir = checkpoint::step_dir(&run_dir, state.step);
            let at_step = manifest.as_ref().map(|m| {
                let p = progress(
                    &state,
                    "checkpoint",
                    initial_eval_loss,
                    final_eval_loss,
                    final_train_loss,
                );
                m.with_result("train", p)
            });
            checkpoint::save(
                &dir,
                &state,
                optimizer.as_ref(),
                &|d| {
                    model.save_adapter(d)?;
                    // The adapter carries the metrics of the step it was saved at.
                    at_step.as_ref().map_or(Ok(()), |m| m.write(d))
                },
                at_step.as_ref(),
            )?;
            if improved {
                checkpoint::write_dir_atomic(&run_dir.join("best"), |tmp| {
                    checkpoint::copy_dir(&dir, tmp)
                })?;
            }
            if !save_now {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            } else {
                checkpoint::prune(&run_dir, cfg.train.keep_checkpoints)?;
                observer.on_message(&format!("saved {}", dir.display()));
            }
        }
        if early_stopped {
            observer.on_message(&format!(
                "early stop: no eval improvement in {patience} evaluations (best {:.4} at step {})",
                state.best_eval_loss.unwrap_or(f64::NAN),
                state.best_step.unwrap_or(0)
            ));
            break;
        }
    }

    let adapter_dir = if run_dir.join("best").exists() {
        run_dir.join("best").join("adapter")
    } else {
        checkpoint::latest(&run_dir)
            .map(|d| d.join("adapter"))
            .ok_or_else(|| Error::Checkpoint {
                path: run_dir.clone(),
                message: "no checkpoint written".into(),
            })?
    };
    let final_dir = run_dir.join("adapter");
    checkpoint::write_dir_atomic(&final_dir, |tmp| checkpoint::copy_dir(&adapter_dir, tmp))?;
    plot_losses(&run_dir, log.rows(), observer);
    let elapsed = started.elapsed().as_secs_f64();
    let summary = TrainSummary {
        steps: state.step,
        initial_eval_loss,
        final_eval_loss,
        best_eval_loss: state.best_eval_loss,
        best_step: state.best_step,
        final_train_loss,
        early_stopped,
        tokens_per_s: trained_tokens as f64 / elapsed.max(1e-9),
        adapter_dir: final_dir,
        elapsed_s: elapsed,
    };
    if let Some(m) = &manifest {
        let mut results = serde_json::to_value(&summary).map_err(|e| Error::io(&run_dir, e))?;
        if let Some(obj) = results.as_object_mut() {
            obj.insert("status".into(), "finished".into());
            obj.insert("total_steps".into(), state.total_steps.into());
        }
        let done = m.with_result("train", results);
        done.write(&run_dir)?;
        done.write(&summary.adapter_dir)?;
    }
    Ok(summary)
}

/// The `train` results section of a manifest written while the run goes: the same keys as a
/// serialized [`TrainSummary`] where they are known, plus `status` and `total_steps`.
fn progress(
    state: &TrainerState,
    status: &str,
    initial_eval_loss: Option<f64>,
    final_eval_loss: Option<f64>,
    final_train_loss: Option<f64>,
) -> serde_json::Value {
    serde_json::json!({
        "status": status,
        "steps": state.step,
        "total_steps": state.total_steps,
        "initial_eval_loss": initial_eval_loss,
        "final_eval_loss": final_eval_loss,
        "best_eval_loss": state.best_eval_loss,
        "best_step": state.best_step,
        "final_train_loss": final_train_loss,
    })
}

/// Mean token loss of `model` over `set` (no dropout, no gradients).
pub fn evaluate(
    model: &mut dyn StepModel,
    set: &[TokenizedExample],
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in set.chunks(batch_size.max(1)) {
        let refs: Vec<&TokenizedExample> = chunk.iter().collect();
        let batch = collate(&refs, pad_id, device)?;
        let (s, c) = model.eval_loss(&batch)?;
        sum += s;
        n += c;
    }
    Ok(sum / n.max(1) as f64)
}

fn eval_row(step: u64, epoch: f64, loss: f64, started: Instant) -> MetricRow {
    MetricRow {
        kind: "eval".into(),
        step,
        epoch,
        loss,
        perplexity: Some(loss.exp()),
        lr: None,
        grad_norm: None,
        tokens: None,
        tokens_per_s: None,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// The shuffled example order of `epoch`: a pure function of (seed, epoch), so a resume needs
/// only the epoch and the cursor.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Dropout seed of one micro-batch: a pure function of (seed, step, micro-batch).
fn dropout_seed(seed: u64, step: u64, micro: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(step.to_le_bytes());
    h.update(micro.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn build_schedule(cfg: &TrainConfig, total_steps: u64) -> Result<Schedule> {
    let kind = match cfg.schedule.kind.as_str() {
        "constant" => ScheduleKind::Constant,
        "linear" => ScheduleKind::Linear,
        _ => ScheduleKind::Cosine,
    };
    let warmup = if cfg.schedule.warmup_ratio > 0.0 {
        Warmup::Ratio(cfg.schedule.warmup_ratio)
    } else {
        Warmup::Steps((cfg.schedule.warmup_steps as u64).min(total_steps))
    };
    Schedule::new(kind, cfg.optim.lr, warmup, total_steps.max(1))
}

fn build_optimizer(cfg: &TrainConfig, params: Vec<NamedVar>) -> Result<Box<dyn Optimizer>> {
    let o = &cfg.optim;
    Ok(match o.name.as_str() {
        "adamw8bit" => Box::new(AdamW8bit::new(
            params,
            AdamW8bitConfig {
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
                ..AdamW8bitConfig::default()
            },
        )?),
        _ => Box::new(AdamW::new(
            params,
            AdamWConfig {
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
            },
        )?),
    })
}

/// Writes `loss.png` / `loss.svg` (train and eval loss by step); a missing font only warns.
fn plot_losses(run_dir: &Path, rows: &[MetricRow], observer: &mut dyn Observer) {
    use crate::plot::{line_chart, Labels, Series};
    let series = |kind: &str| Series {
        name: format!("{kind} loss"),
        points: rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.step as f64, r.loss))
            .collect(),
    };
    let labels = Labels {
        title: "Loss",
        x: "optimizer step",
        y: "loss (mean over supervised tokens)",
    };
    if let Err(e) = line_chart(
        &run_dir.join("loss"),
        &labels,
        &[series("train"), series("eval")],
    ) {
        observer.on_message(&format!("warning: loss plot not written: {e}"));
    }
}
