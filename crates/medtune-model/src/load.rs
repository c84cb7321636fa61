//! `load(path)`: a model folder (HF safetensors or one `.gguf`) or a `.gguf` file →
//! [`LoadedModel`] with model, tokenizer, chat template and EOS ids.

use crate::config::{token_ids, ModelConfig};
use crate::decoder::DecoderLm;
use crate::error::{Error, Result};
use crate::generate::Detokenize;
use crate::gguf;
use crate::gguf_tokenizer;
use crate::weights::{SafetensorsWeights, WeightSource, Weights};
use candle_core::{DType, Device};
use medtune_data::template::{ChatTemplate, Message};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype of dense weights and activations (f32 or bf16).
    pub dtype: DType,
    /// Device for weights and activations.
    pub device: Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }
}

/// The on-disk format a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// HF safetensors (one file or shards).
    Safetensors,
    /// A GGUF file.
    Gguf,
}

/// A tokenizer plus the file it came from (for error messages).
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads a HF `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Wraps an already-built tokenizer; `path` is the file it came from (a `tokenizer.json` or
    /// the `.gguf` whose metadata described it), named in errors.
    pub fn new(inner: tokenizers::Tokenizer, path: PathBuf) -> Self {
        Self { inner, path }
    }

    /// Builds the tokenizer stored in a GGUF file's `tokenizer.*` metadata (see
    /// [`crate::gguf_tokenizer`]).
    pub fn from_gguf(path: &Path) -> Result<Self> {
        let g = gguf_tokenizer::from_file(path)?;
        Ok(Self::new(g.tokenizer, path.to_path_buf()))
    }

    /// The file this tokenizer was read from (`tokenizer.json` or a `.gguf`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Text → ids; `add_special_tokens` adds BOS/EOS as the tokenizer's post-processor says.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Ids → text, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

impl Detokenize for TextTokenizer {
    fn detokenize(&self, ids: &[u32]) -> Result<String> {
        self.decode(ids)
    }
}

/// A loaded model with everything needed to prompt it.
pub struct LoadedModel {
    /// The network.
    pub model: DecoderLm,
    /// The normalised config.
    pub config: ModelConfig,
    /// Tokenizer from `tokenizer.json`, else from a GGUF file's `tokenizer.*` metadata, when
    /// either is present.
    pub tokenizer: Option<TextTokenizer>,
    /// The model's chat template, when it has one.
    pub chat_template: Option<ChatTemplate>,
    /// Ids that end generation (config, generation_config, tokenizer_config, GGUF).
    pub eos_token_ids: Vec<u32>,
    /// Source format.
    pub format: SourceFormat,
    /// The weight file (or shard index / folder).
    pub weights_path: PathBuf,
    /// Every stored tensor: name, storage type, shape (as stored).
    pub tensor_infos: Vec<(String, String, Vec<usize>)>,
}

impl LoadedModel {
    /// The tokenizer, or an error naming the model path.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::Tokenizer {
            path: self.weights_path.clone(),
            message: "no tokenizer.json next to the model and no tokenizer metadata \
                      (`tokenizer.ggml.model`) in a GGUF file"
                .into(),
        })
    }

    /// Text → ids without added special tokens (chat templates write them as text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer()?.encode(text, false)
    }

    /// Renders `messages` with the model's chat template (opening the assistant turn) and
    /// tokenizes the result.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let t = self.chat_template.as_ref().ok_or_else(|| {
            Error::Template(format!(
                "{}: model has no chat template",
                self.weights_path.display()
            ))
        })?;
        let text = t
            .render(messages, true)
            .map_err(|e| Error::Template(e.to_string()))?;
        self.encode(&text)
    }
}

/// Loads a model from a folder or a `.gguf` file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "model path not found"),
        ));
    }
    let (dir, gguf_file) = resolve(path)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let mut tokenizer = if tokenizer_path.is_file() {
        Some(TextTokenizer::from_file(&tokenizer_path)?)
    } else {
        None
    };
    let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let (model, config, format, weights_path, infos, gguf_template, gguf_tokens) = match gguf_file {
        Some(file) => {
            let g = gguf::open(&file, &opts.device)?;
            // Without tokenizer.json, the GGUF's own tokenizer metadata (if any) is used.
            if tokenizer.is_none() && gguf_tokenizer::has_tokenizer(&g.metadata) {
                let t = gguf_tokenizer::from_metadata(&file, &g.metadata)?;
                tokenizer = Some(TextTokenizer::new(t.tokenizer, file.clone()));
            }
            let w = Weights::new(
                WeightSource::Gguf(g.weights),
                opts.dtype,
                opts.device.clone(),
            );
            let model = DecoderLm::load(&g.config, &w)?;
            (
                model,
                g.config,
                SourceFormat::Gguf,
                file,
                g.tensor_infos,
                g.chat_template,
                g.tokens,
            )
        }
        None => {
            let config = ModelConfig::from_file(&dir.join("config.json"))?;
            let st = SafetensorsWeights::open_dir(&dir)?;
            let infos = st.tensor_infos();
            let w = Weights::new(
                WeightSource::Safetensors(st),
                opts.dtype,
                opts.device.clone(),
            );
            let model = DecoderLm::load(&config, &w)?;
            (
                model,
                config,
                SourceFormat::Safetensors,
                dir.clone(),
                infos,
                None,
                Vec::new(),
            )
        }
    };
    // Special-token strings: tokenizer_config first, else the vocabulary.
    let token_str = |key: &str, id: Option<u32>| -> String {
        let from_cfg = tok_cfg.as_ref().and_then(|c| special_token(c.get(key)));
        from_cfg
            .or_else(|| id.and_then(|i| tokenizer.as_ref().and_then(|t| t.id_to_token(i))))
            .or_else(|| id.and_then(|i| gguf_tokens.get(i as usize).cloned()))
            .unwrap_or_default()
    };
    let bos = token_str("bos_token", config.bos_token_id);
    let eos = token_str("eos_token", config.eos_token_ids.first().copied());
    let mut eos_ids = config.eos_token_ids.clone();
    let gen_cfg_path = dir.join("generation_config.json");
    if let Some(g) = read_json_opt(&gen_cfg_path)? {
        eos_ids.extend(token_ids(
            g.get("eos_token_id"),
            &gen_cfg_path,
            "eos_token_id",
        )?);
    }
    if let Some(id) = tokenizer.as_ref().and_then(|t| t.token_to_id(&eos)) {
        eos_ids.push(id);
    }
    eos_ids.sort_unstable();
    eos_ids.dedup();
    let template_src = match std::fs::read_to_string(dir.join("chat_template.jinja")) {
        Ok(s) => Some(s),
        Err(_) => tok_cfg
            .as_ref()
            .and_then(|c| template_from_config(c.get("chat_template")))
            .or(gguf_template),
    };
    let chat_template = match template_src {
        Some(src) => Some(
            ChatTemplate::from_jinja(&dir.display().to_string(), &src, &bos, &eos)
                .map_err(|e| Error::Template(e.to_string()))?,
        ),
        None => None,
    };
    Ok(LoadedModel {
        model,
        config,
        tokenizer,
        chat_template,
        eos_token_ids: eos_ids,
        format,
        weights_path,
        tensor_infos: infos,
    })
}

/// The tokenizer of a model path without loading its weights, as [`load`] picks it: a
/// `tokenizer.json` file itself; for a model folder or a `.gguf` file, the folder's
/// `tokenizer.json`, else the GGUF file's `tokenizer.*` metadata (only its header is read).
pub fn load_tokenizer(path: &Path) -> Result<TextTokenizer> {
    if path.is_file() && !is_gguf(path) {
        return TextTokenizer::from_file(path);
    }
    let (dir, gguf_file) = resolve(path)?;
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return TextTokenizer::from_file(&json);
    }
    match gguf_file {
        Some(file) => TextTokenizer::from_gguf(&file),
        None => Err(Error::BadFile {
            path: dir,
            message: "no tokenizer.json and no .gguf file".into(),
        }),
    }
}

fn is_gguf(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// (folder, GGUF file if the model is GGUF).
fn resolve(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if path.is_file() {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        return if is_gguf(path) {
            Ok((dir, Some(path.to_path_buf())))
        } else {
            Err(Error::BadFile {
                path: path.to_path_buf(),
                message: "expected a model folder or a .gguf file".into(),
            })
        };
    }
    let has_st = path.join("model.safetensors").is_file()
        || path.join("model.safetensors.index.json").is_file();
    if has_st {
        return Ok((path.to_path_buf(), None));
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut ggufs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_gguf(p))
        .collect();
    ggufs.sort();
    match ggufs.len() {
        // No weights found: let the safetensors path report the missing file.
        0 => Ok((path.to_path_buf(), None)),
        1 => Ok((path.to_path_buf(), ggufs.pop())),
        _ => Err(Error::BadFile {
            path: path.to_path_buf(),
            message: format!("several .gguf files ({}); pass one file", ggufs.len()),
        }),
    }
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A special token written as a string or as `{"content": ...}`.
fn special_token(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// `chat_template` as a string, or a list of `{name, template}` (the `default` one).
fn template_from_config(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|i| i.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}
