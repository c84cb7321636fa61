//! `medtune generate`: chat with a model from the command line (streams the answer).

use crate::commands::model::{load_model, ComputeDtype};
use anyhow::Context;
use clap::Args;
use medtune_model::{generate, Detokenize, GenerateOptions, Message, SamplingParams};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `medtune generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// Model folder (HF safetensors, or one .gguf with or without tokenizer.json) or a .gguf
    /// file.
    #[arg(long, default_value = "models/smollm2-135m-instruct")]
    model: PathBuf,
    /// PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, e.g. a run's
    /// `adapter/`) to apply to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Check the answer with the medical safety validator and print its report (risk level,
    /// warnings) and the final text with the disclaimer after the answer.
    #[arg(long)]
    use_safety: bool,
    /// The user message.
    #[arg(long)]
    prompt: String,
    /// Optional system message.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as plain text instead of through the chat template.
    #[arg(long)]
    raw: bool,
    /// Most new tokens.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling threshold.
    #[arg(long)]
    top_p: Option<f64>,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Compute dtype.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// Run GGUF layers with GGML's quantized kernels (8-bit activations) instead of
    /// dequantizing them once at load.
    #[arg(long)]
    keep_quantized: bool,
}

/// Runs `medtune generate`.
pub fn run(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let mut m = load_model(&a.model, a.dtype.dtype())?;
    if !a.keep_quantized {
        m.model
            .dequantize_linears()
            .context("dequantizing GGUF layers")?;
    }
    // Kept alive while generating: the adapter's variables are referenced by the model.
    let _lora = match &a.adapter {
        Some(dir) => {
            let set = medtune_model::peft::load_peft_for_inference(&mut m.model, dir)
                .with_context(|| format!("loading adapter {}", dir.display()))?;
            Some(set)
        }
        None => None,
    };
    let tok = m.tokenizer()?;
    let prompt = if a.raw {
        m.encode(&a.prompt)?
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message::new("system", s.clone()));
        }
        msgs.push(Message::new("user", a.prompt.clone()));
        m.chat_prompt(&msgs).context("rendering the chat prompt")?
    };
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            repetition_penalty: a.repetition_penalty,
            seed: a.seed,
        },
        eos_token_ids: m.eos_token_ids.clone(),
        stop_strings: a.stop.clone(),
    };
    // Stream: decode everything so far and print what is new (multi-byte characters may need
    // several tokens, so the text is re-decoded rather than token by token). With stop strings
    // the text is printed at the end only, so a stop string is never half-printed.
    let stream = a.stop.is_empty();
    let mut ids: Vec<u32> = Vec::new();
    let mut printed = 0usize;
    let mut stdout = std::io::stdout();
    let mut stream_err = None;
    let mut on_token = |_row: usize, id: u32| {
        if !stream {
            return;
        }
        ids.push(id);
        match tok.detokenize(&ids) {
            Ok(text)
                if text.len() > printed
                    && text.is_char_boundary(printed)
                    && !text.ends_with('\u{FFFD}') =>
            {
                let _ = write!(stdout, "{}", &text[printed..]);
                let _ = stdout.flush();
                printed = text.len();
            }
            Ok(_) => {}
            Err(e) => stream_err = Some(e),
        }
    };
    let out =
        generate(&m.model, &[prompt], &opts, Some(tok), &mut on_token).context("generating")?;
    if let Some(e) = stream_err {
        return Err(e).context("decoding streamed tokens");
    }
    // A stop string may have been streamed in part; the final text is authoritative.
    let text = out[0].text.clone().unwrap_or_default();
    if text.len() > printed && text.is_char_boundary(printed) {
        print!("{}", &text[printed..]);
    }
    println!();
    eprintln!(
        "[{} new tokens, finish: {:?}]",
        out[0].tokens.len(),
        out[0].finish
    );
    if a.use_safety {
        let validator = medtune_safety::Validator::new(medtune_safety::Config::default())?;
        let report = validator.check(&a.prompt, &text, None);
        println!("\n--- safety: risk level {} ---", report.risk_level);
        for w in &report.warnings {
            println!("- {}", w.message);
        }
        println!("\n{}", report.final_text);
    }
    Ok(ExitCode::SUCCESS)
}
