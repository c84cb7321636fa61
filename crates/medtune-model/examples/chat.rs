//! Ask a model one question through its chat template and print the greedy answer.
//!
//! Set `MEDTUNE_DENSE=1` to dequantize GGUF layers to f32 first (the reference path).
//!
//! `cargo run --release -p medtune-model --example chat -- models/smollm2-135m-instruct "What is the capital of France?"`

use medtune_model::{generate, load, BaseWeight, GenerateOptions, LoadOptions, Message};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .unwrap_or_else(|| "models/smollm2-135m-instruct".into());
    let question = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let t = Instant::now();
    let mut m = load(model.as_ref(), &LoadOptions::default())?;
    // MEDTUNE_DENSE=1: dequantize every quantized layer to f32 (reference path); =head: only the LM head.
    let dense = std::env::var("MEDTUNE_DENSE").unwrap_or_default();
    if !dense.is_empty() {
        for l in m.model.linears_mut() {
            if dense == "head" && l.name() != "lm_head" {
                continue;
            }
            let w = l.base().to_dense(candle_core::DType::F32)?;
            l.set_base(BaseWeight::Dense(w))?;
        }
    }
    eprintln!("loaded in {:.2} s", t.elapsed().as_secs_f64());
    let prompt = m.chat_prompt(&[Message::new("user", question)])?;
    let opts = GenerateOptions {
        max_new_tokens: 64,
        eos_token_ids: m.eos_token_ids.clone(),
        ..GenerateOptions::default()
    };
    let t = Instant::now();
    let out = generate(
        &m.model,
        &[prompt],
        &opts,
        Some(m.tokenizer()?),
        &mut |_, _| {},
    )?;
    let secs = t.elapsed().as_secs_f64();
    println!("{}", out[0].text.as_deref().unwrap_or_default());
    eprintln!(
        "{} tokens in {secs:.2} s ({:?})",
        out[0].tokens.len(),
        out[0].finish
    );
    Ok(())
}
