//! A loaded decoder with LoRA adapters, as the training loop sees it ([`StepModel`]), and the
//! setup of a run: load (and optionally NF4-quantize) the base, attach adapters, read and
//! tokenize the dataset, audit the labels.

use candle_core::{DType, Device};
use medtune_data::prompt::{AnswerFormat, PromptConfig};
use medtune_data::template::ChatTemplate;
use medtune_data::tokenize::{
    tokenize_records, ExampleTokenizer, TokenizeConfig, TokenizedExample, Truncation,
};
use medtune_data::Record;
use medtune_model::lora::{LayerSelection, TargetModules};
use medtune_model::nf4::Nf4Options;
use medtune_model::{
    attach_lora, loss_and_grads, Backward, DecoderLm, LoadOptions, LoadedModel, LoraConfig,
    LoraSet, TrainBatch,
};
use std::path::{Path, PathBuf};

use crate::audit::{audit_labels, LabelAudit};
use crate::batch::Batch;
use crate::config::TrainConfig;
use crate::optim::{Grads, NamedVar};
use crate::trainer::StepModel;
use crate::{Error, Result};

/// A frozen base plus trainable LoRA adapters.
pub struct LoraModel {
    /// The network (adapters attached).
    pub model: DecoderLm,
    /// The adapters.
    pub lora: LoraSet,
    /// Written into `adapter_config.json` as `base_model_name_or_path`.
    pub base_name: String,
    /// Written as `manifest.json` beside every saved adapter.
    pub manifest: Option<crate::manifest::RunManifest>,
}

impl StepModel for LoraModel {
    fn params(&self) -> Vec<NamedVar> {
        self.lora.vars()
    }

    fn loss_and_grads(
        &mut self,
        batch: &Batch,
        recompute: bool,
        dropout_seed: u64,
    ) -> Result<(f64, usize, Grads)> {
        self.lora.set_train(true);
        // Dropout masks are a function of the pass number: seed it from the loop's seed.
        self.lora.set_pass(dropout_seed);
        let tb = TrainBatch {
            input_ids: &batch.input_ids,
            attention_mask: Some(&batch.attention_mask),
            labels: &batch.labels,
            position_ids: None,
        };
        let mode = if recompute {
            Backward::Recompute
        } else {
            Backward::Plain
        };
        let out = loss_and_grads(&self.model, &self.lora, &tb, mode).map_err(Error::model)?;
        let grads = Grads::new(out.grads.into_iter().map(|(_, g)| g).collect());
        Ok((out.loss_sum, out.n_supervised, grads))
    }

    fn eval_loss(&mut self, batch: &Batch) -> Result<(f64, usize)> {
        self.lora.set_train(false);
        let input = medtune_model::ForwardInput::with_mask(&batch.input_ids, &batch.attention_mask);
        let logits = self.model.forward(&input).map_err(Error::model)?;
        let loss =
            medtune_model::causal_lm_loss_sum(&logits, &batch.labels).map_err(Error::model)?;
        let sum = loss.sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok((sum, loss.count))
    }

    fn save_adapter(&self, dir: &Path) -> Result<()> {
        medtune_model::peft::save_peft(&self.lora, dir, Some(&self.base_name))
            .map_err(Error::model)?;
        match &self.manifest {
            Some(m) => m.write(dir),
            None => Ok(()),
        }
    }

    fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("adapter_model.safetensors");
        let tensors =
            medtune_model::peft::read_tensors(&path, self.model.device()).map_err(Error::model)?;
        self.lora.set_weights(&tensors, &path).map_err(Error::model)
    }

    fn manifest(&self) -> Option<&crate::manifest::RunManifest> {
        self.manifest.as_ref()
    }
}

/// Everything a run needs, ready to hand to [`crate::trainer::train`].
pub struct PreparedRun {
    pub model: LoraModel,
    pub train_set: Vec<TokenizedExample>,
    pub eval_set: Vec<TokenizedExample>,
    pub pad_id: u32,
    pub device: Device,
    pub audit: LabelAudit,
    /// The tokenizer and chat template used to render examples.
    pub tokenizer: ExampleTokenizer,
    /// The plain tokenizer (for prompting and decoding generations).
    pub text_tokenizer: medtune_data::tokenize::Tokenizer,
    /// Token ids that end generation.
    pub eos_ids: Vec<u32>,
    /// Examples dropped by the truncation policy (train, eval).
    pub dropped: (usize, usize),
}

/// The LoRA settings of `cfg` in PEFT's terms.
pub fn lora_config(cfg: &TrainConfig) -> LoraConfig {
    let l = &cfg.lora;
    let target_modules =
        if l.target_modules.len() == 1 && l.target_modules[0] == medtune_model::lora::ALL_LINEAR {
            TargetModules::Pattern(medtune_model::lora::ALL_LINEAR.into())
        } else {
            TargetModules::Names(l.target_modules.clone())
        };
    LoraConfig {
        r: l.r,
        lora_alpha: l.lora_alpha,
        lora_dropout: l.lora_dropout,
        target_modules,
        layers_to_transform: (!l.layers_to_transform.is_empty())
            .then(|| LayerSelection::Many(l.layers_to_transform.clone())),
        use_rslora: l.use_rslora,
        ..LoraConfig::default()
    }
}

/// Loads the base named in `cfg` on `device`, quantizing to NF4 when asked.
pub fn load_base(cfg: &TrainConfig, device: &Device) -> Result<LoadedModel> {
    let dtype = if cfg.model.compute_dtype == "bf16" {
        DType::BF16
    } else {
        DType::F32
    };
    let mut loaded = medtune_model::load(
        &cfg.model.path,
        &LoadOptions {
            dtype,
            device: device.clone(),
        },
    )
    .map_err(Error::model)?;
    // A GGUF base keeps its GGML quantization with `none`; `dense` dequantizes it to the compute
    // dtype (fast f32/bf16 matmuls on CPU), `nf4` dequantizes then re-quantizes to NF4 (QLoRA).
    if loaded.format == medtune_model::SourceFormat::Gguf && cfg.model.quantization != "none" {
        loaded.model.dequantize_linears().map_err(Error::model)?;
    }
    if cfg.model.quantization == "nf4" {
        loaded
            .model
            .quantize_nf4(Nf4Options {
                double_quant: cfg.model.double_quant,
                ..Nf4Options::default()
            })
            .map_err(Error::model)?;
    }
    Ok(loaded)
}

/// The chat template named by `data.template`: the model's own (`model`) or a built-in one.
pub fn chat_template(cfg: &TrainConfig, loaded: &LoadedModel) -> Result<ChatTemplate> {
    if cfg.data.template != "model" {
        return ChatTemplate::builtin(&cfg.data.template).map_err(Error::data);
    }
    let own = loaded.chat_template.as_ref().ok_or_else(|| {
        Error::Model(format!(
            "{} has no chat template; set data.template (e.g. \"chatml\")",
            cfg.model.path.display()
        ))
    })?;
    Ok(own.clone())
}

/// Reads a split file of a prepared dataset (JSON lines of [`Record`]), keeping at most `max`.
pub fn read_split(path: &Path, max: usize) -> Result<Vec<Record>> {
    let mut records = medtune_data::io::read_jsonl(path).map_err(Error::data)?;
    if max > 0 {
        records.truncate(max);
    }
    Ok(records)
}

/// Tokenizes records; returns the kept examples and how many the truncation policy dropped.
pub fn tokenize(
    tok: &ExampleTokenizer,
    records: &[Record],
    prompt: &PromptConfig,
) -> Result<(Vec<TokenizedExample>, usize)> {
    let mut out = Vec::with_capacity(records.len());
    let mut dropped = 0;
    for r in tokenize_records(tok, records, prompt) {
        match r.map_err(Error::data)? {
            Some(e) => out.push(e),
            None => dropped += 1,
        }
    }
    Ok((out, dropped))
}

fn parse_format(s: &str) -> Result<AnswerFormat> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| Error::Config {
        field: "data.answer_format".into(),
        message: format!("unknown format `{s}`"),
    })
}

fn parse_truncation(s: &str) -> Result<Truncation> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| Error::Config {
        field: "data.truncation".into(),
        message: format!("unknown policy `{s}`"),
    })
}

/// Loads the model, attaches adapters, reads and tokenizes the splits and audits the labels.
pub fn prepare(cfg: &TrainConfig, device: &Device) -> Result<PreparedRun> {
    let loaded = load_base(cfg, device)?;
    let template = chat_template(cfg, &loaded)?;
    let tokenizer = loaded.tokenizer().map_err(Error::model)?.inner().clone();
    let text_tokenizer = tokenizer.clone();
    let eos_ids = loaded.eos_token_ids.clone();
    let tok_cfg = TokenizeConfig {
        max_len: cfg.data.max_seq_len,
        truncation: parse_truncation(&cfg.data.truncation)?,
    };
    let tok = ExampleTokenizer::new(tokenizer, template, tok_cfg).map_err(Error::data)?;
    let prompt = PromptConfig {
        answer_format: parse_format(&cfg.data.answer_format)?,
        system_prompt: cfg.data.system_prompt.clone(),
    };
    let dir: PathBuf = cfg.data.dataset_dir.clone();
    let train_records = read_split(&dir.join(&cfg.data.train_file), cfg.data.max_train_examples)?;
    let eval_path = dir.join(&cfg.data.eval_file);
    let eval_records = if eval_path.exists() {
        read_split(&eval_path, cfg.data.max_eval_examples)?
    } else {
        Vec::new()
    };
    let (train_set, d_train) = tokenize(&tok, &train_records, &prompt)?;
    let (eval_set, d_eval) = tokenize(&tok, &eval_records, &prompt)?;
    let audit = audit_labels(
        &train_set,
        tok.eos_id(),
        &tok.template().template_hash(),
        cfg.data.max_unsupervised_fraction,
    )?;
    let pad_id = tok.eos_id();
    let storage = match (loaded.format, cfg.model.quantization.as_str()) {
        (medtune_model::SourceFormat::Gguf, "none") => "gguf".to_string(),
        (medtune_model::SourceFormat::Gguf, "dense") => {
            format!("gguf dequantized to {}", cfg.model.compute_dtype)
        }
        (_, "nf4") if cfg.model.double_quant => "nf4-dq".to_string(),
        (_, "nf4") => "nf4".to_string(),
        _ => cfg.model.compute_dtype.clone(),
    };
    let manifest = crate::manifest::RunManifest::new(
        cfg,
        &loaded.weights_path,
        &storage,
        &tok.template().template_hash(),
    )?;
    let mut model = loaded.model;
    let lora = attach_lora(&mut model, &lora_config(cfg), cfg.train.seed).map_err(Error::model)?;
    Ok(PreparedRun {
        model: LoraModel {
            model,
            lora,
            base_name: cfg.model.path.display().to_string(),
            manifest: Some(manifest),
        },
        train_set,
        eval_set,
        pad_id,
        device: device.clone(),
        audit,
        tokenizer: tok,
        text_tokenizer,
        eos_ids,
        dropped: (d_train, d_eval),
    })
}

impl PreparedRun {
    /// Trains (or resumes) this run's adapters on its tokenized splits, as `cfg` says.
    pub fn train(
        &mut self,
        cfg: &TrainConfig,
        resume: bool,
        observer: &mut dyn crate::trainer::Observer,
    ) -> Result<crate::trainer::TrainSummary> {
        crate::trainer::train(
            cfg,
            &mut self.model,
            &self.train_set,
            &self.eval_set,
            self.pad_id,
            &self.device,
            resume,
            observer,
        )
    }
}
