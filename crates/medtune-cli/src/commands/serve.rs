//! `medtune serve`: the REST + OpenAI-compatible server with the chat page, on 127.0.0.1 by
//! default. Settings: `--config serve.toml` (see `medtune_serve::ServeConfig`), then flags.

use anyhow::Context;
use clap::Args;
use medtune_serve::{ModelEngine, ServeConfig, ValidatorHook};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `medtune serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Model folder (HF safetensors or one .gguf plus tokenizer.json) or a .gguf file.
    #[arg(long, default_value = "models/smollm2-135m-instruct")]
    pub model: PathBuf,
    /// PEFT LoRA adapter folder; its manifest.json, if any, is shown by /health.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// serve.toml with host, port, queue_capacity, max_batch, batch_window_ms,
    /// request_timeout_secs, body_limit_bytes, max_tokens_limit, default_max_tokens, api_key.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Bind address (default 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default 8080; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Waiting requests before new ones get 429.
    #[arg(long)]
    pub queue_capacity: Option<usize>,
    /// Requests generated together.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Name of an environment variable holding the API key (`Authorization: Bearer`).
    #[arg(long)]
    pub api_key_env: Option<String>,
}

fn read_config(path: Option<&Path>) -> anyhow::Result<(ServeConfig, String)> {
    match path {
        None => Ok((ServeConfig::default(), "defaults".into())),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading serve config {}", p.display()))?;
            let origin = p.display().to_string();
            Ok((ServeConfig::from_toml_str(&text, &origin)?, origin))
        }
    }
}

/// The provenance `/health` and the chat page show: the summary of the adapter's run manifest
/// (code version, base model and its sha256, dataset hashes, chat template hash, key
/// hyper-parameters, metrics, safety summary). A `manifest.json` of another kind is passed on as
/// it is; a malformed one is an error naming the file.
fn read_manifest(adapter: Option<&Path>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(path) = adapter
        .map(|a| a.join(medtune_train::runs::MANIFEST_FILE))
        .filter(|p| p.is_file())
    else {
        return Ok(None);
    };
    Ok(Some(match medtune_train::runs::read_manifest(&path)? {
        medtune_train::runs::ManifestFile::Run(m) => {
            serde_json::to_value(medtune_train::runs::summary(&m))?
        }
        medtune_train::runs::ManifestFile::Other(v) => v,
    }))
}

/// Runs `medtune serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (mut config, origin) = read_config(args.config.as_deref())?;
    config.host = args.host.or(config.host);
    config.port = args.port.or(config.port);
    config.queue_capacity = args.queue_capacity.or(config.queue_capacity);
    config.max_batch = args.max_batch.or(config.max_batch);
    if let Some(var) = &args.api_key_env {
        let key =
            std::env::var(var).with_context(|| format!("--api-key-env {var}: variable not set"))?;
        config.api_key = Some(key);
    }
    let settings = config.resolve(&origin)?;
    if !args.model.exists() {
        anyhow::bail!(
            "model {} not found\nhint: copy the demo model: mkdir -p models && cp -r ../shared/models/smollm2-135m-instruct models/",
            args.model.display()
        );
    }
    let manifest = read_manifest(args.adapter.as_deref())?;
    let engine = ModelEngine::load(&args.model, args.adapter.as_deref())?;
    let safety = ValidatorHook::new()?;
    let on_ready = |addr: std::net::SocketAddr, m: &medtune_serve::ModelInfo| {
        println!(
            "medtune serve: listening on http://{addr} (model {}, adapter {})",
            m.id,
            m.adapter.as_deref().unwrap_or("none")
        );
    };
    medtune_serve::run_blocking(
        Arc::new(engine),
        Some(Arc::new(safety)),
        settings,
        manifest,
        on_ready,
    )?;
    Ok(ExitCode::SUCCESS)
}
