//! `medtune bench generate`: prompt (prefill) and decode throughput on the CPU, with the KV
//! cache, greedy, batch 1. A benchmark, not a test: it prints figures and asserts nothing.

use crate::commands::model::{load_model, ComputeDtype};
use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Args, Subcommand};
use medtune_model::{sampling::argmax, KvCache};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `medtune bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Prompt and decode tokens/s of a model (CPU, batch 1, KV cache).
    Generate(BenchGenerateArgs),
    /// Load test of the server: throughput, P50/P95/P99 latency, 429s, peak RSS.
    Serve(crate::commands::bench_serve::BenchServeArgs),
    /// LoRA/QLoRA training tokens/s and peak GPU memory on random weights of a real shape.
    Train(crate::commands::bench_train::BenchTrainArgs),
}

#[derive(Args)]
struct BenchGenerateArgs {
    /// Model folder or .gguf file.
    #[arg(long, default_value = "models/smollm2-135m-instruct")]
    model: PathBuf,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Timed repetitions (the best is reported); one untimed warm-up runs first.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Compute dtype.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// Run GGUF layers with GGML's quantized kernels instead of dequantizing them at load.
    #[arg(long)]
    keep_quantized: bool,
}

/// Runs `medtune bench ...`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Generate(a) => bench_generate(a),
        BenchCommand::Serve(a) => crate::commands::bench_serve::run(a),
        BenchCommand::Train(a) => crate::commands::bench_train::run(a),
    }
}

/// Seconds for one prefill of `prompt` and for `new_tokens` greedy decode steps.
fn one_run(
    model: &medtune_model::DecoderLm,
    prompt: &[u32],
    new_tokens: usize,
) -> anyhow::Result<(f64, f64)> {
    let dev = Device::Cpu;
    let mut cache = KvCache::new(model.layers().len());
    let ids = Tensor::new(prompt, &dev)?.unsqueeze(0)?;
    let pos = Tensor::arange(0u32, prompt.len() as u32, &dev)?.unsqueeze(0)?;
    let t0 = Instant::now();
    let logits = model.forward_step_last(&ids, &pos, None, &mut cache)?;
    let mut next = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
    let prefill = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for i in 0..new_tokens {
        let ids = Tensor::new(&[[next]], &dev)?;
        let pos = Tensor::new(&[[(prompt.len() + i) as u32]], &dev)?;
        let logits = model.forward_step_last(&ids, &pos, None, &mut cache)?;
        next = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((prefill, t1.elapsed().as_secs_f64()))
}

fn bench_generate(a: BenchGenerateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.prompt_tokens > 0 && a.new_tokens > 0,
        "--prompt-tokens and --new-tokens must be > 0"
    );
    let t_load = Instant::now();
    let mut m = load_model(&a.model, a.dtype.dtype())?;
    if !a.keep_quantized {
        m.model.dequantize_linears()?;
    }
    let load_s = t_load.elapsed().as_secs_f64();
    // A prompt of exactly N tokens: a medical text repeated, tokenized, cut to length.
    let text = "The patient presented with fever, cough and shortness of breath for three days. ";
    let unit = m.encode(text).context("tokenizing the benchmark prompt")?;
    anyhow::ensure!(!unit.is_empty(), "the tokenizer produced no tokens");
    let prompt: Vec<u32> = unit.iter().copied().cycle().take(a.prompt_tokens).collect();
    let limit = m.config.max_position_embeddings;
    anyhow::ensure!(
        a.prompt_tokens + a.new_tokens <= limit,
        "prompt + new tokens exceed the model's context ({limit})"
    );
    one_run(&m.model, &prompt[..prompt.len().min(16)], 4)?; // warm-up
    let (mut best_prefill, mut best_decode) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..a.repeats.max(1) {
        let (p, d) = one_run(&m.model, &prompt, a.new_tokens)?;
        best_prefill = best_prefill.min(p);
        best_decode = best_decode.min(d);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model           {} ({}, {} params)",
        a.model.display(),
        m.config.arch.model_type(),
        m.model.num_params()
    );
    println!("cpu threads     {threads}");
    println!(
        "weights         {}",
        if a.keep_quantized {
            "GGML-quantized kernels"
        } else {
            "dense (dequantized at load)"
        }
    );
    println!("load            {load_s:.2} s");
    println!(
        "prompt          {} tokens in {:.3} s = {:.1} tokens/s",
        a.prompt_tokens,
        best_prefill,
        a.prompt_tokens as f64 / best_prefill
    );
    println!(
        "decode          {} tokens in {:.3} s = {:.1} tokens/s ({:.1} ms/token)",
        a.new_tokens,
        best_decode,
        a.new_tokens as f64 / best_decode,
        1000.0 * best_decode / a.new_tokens as f64
    );
    if let Ok(kib) = super::peak_rss_kib(std::process::id()) {
        println!("peak rss        {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(ExitCode::SUCCESS)
}
