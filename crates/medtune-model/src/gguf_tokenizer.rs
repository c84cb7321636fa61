//! A Hugging Face [`tokenizers::Tokenizer`] rebuilt from a GGUF file's `tokenizer.*` metadata,
//! for models that ship without `tokenizer.json`.
//!
//! Keys read (llama.cpp's names):
//! - `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece-style BPE with
//!   `▁` for spaces and `<0xNN>` byte fallback).
//! - `tokenizer.ggml.tokens` (id → string), `tokenizer.ggml.token_type` (1 normal, 2 unknown,
//!   3 control, 4 user-defined, 5 unused, 6 byte), `tokenizer.ggml.merges` (`"left right"`;
//!   required for `gpt2`; for `llama` derived from `tokenizer.ggml.scores` when absent).
//! - `tokenizer.ggml.pre`: the pre-tokenizer flavour of `gpt2` vocabularies: `default`/`gpt-2`
//!   (GPT-2's regex), `smollm`/`starcoder`/`refact` (single digits, then GPT-2's regex),
//!   `llama3`/`llama-bpe`/`smaug-bpe`/`dbrx` (Llama 3's regex), `qwen2` (NFC, Qwen2's regex).
//!   Absent means `default`.
//! - `tokenizer.ggml.bos_token_id`, `eos_token_id`, `padding_token_id`, `unknown_token_id`,
//!   `add_bos_token`, `add_eos_token`, `add_space_prefix`; `tokenizer.chat_template`.
//!
//! Tokens typed unknown, control or user-defined become special added tokens: they are matched
//! whole in the input text before BPE runs (so ChatML's `<|im_start|>` is one id) and skipped by
//! `decode(.., true)`.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// The metadata key that says which tokenizer a GGUF file holds.
pub const MODEL_KEY: &str = "tokenizer.ggml.model";

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TYPE_NORMAL: i64 = 1;
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;

/// Llama 3's split regex (digits in groups of up to three).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex (single digits).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values understood for `gpt2` vocabularies.
const SUPPORTED_PRE: &str =
    "default, gpt-2, smollm, starcoder, refact, llama3, llama-bpe, smaug-bpe, dbrx, qwen2";

/// A tokenizer rebuilt from GGUF metadata plus the special ids and template stored with it.
pub struct GgufTokenizer {
    /// The tokenizer, equivalent to the model's `tokenizer.json`.
    pub tokenizer: Tokenizer,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// Whether the metadata describes a tokenizer at all (`tokenizer.ggml.model` present).
pub fn has_tokenizer(metadata: &HashMap<String, Value>) -> bool {
    metadata.contains_key(MODEL_KEY)
}

/// Reads only the header of the GGUF file at `path` and builds its tokenizer.
pub fn from_file(path: &Path) -> Result<GgufTokenizer> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut file).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("not a valid GGUF file (truncated or corrupt?): {e}"),
    })?;
    from_metadata(path, &content.metadata)
}

/// Builds the tokenizer from already-read metadata; `path` names the file in errors.
pub fn from_metadata(path: &Path, metadata: &HashMap<String, Value>) -> Result<GgufTokenizer> {
    let md = Keys {
        map: metadata,
        path,
    };
    let kind = md.string(MODEL_KEY)?;
    let tokens = md.strings("tokenizer.ggml.tokens")?;
    if tokens.is_empty() {
        return Err(md.err("tokenizer.ggml.tokens", "empty vocabulary"));
    }
    let types = md.ints("tokenizer.ggml.token_type")?;
    if types.len() != tokens.len() {
        return Err(md.err(
            "tokenizer.ggml.token_type",
            format!(
                "{} entries for {} tokens in `tokenizer.ggml.tokens`",
                types.len(),
                tokens.len()
            ),
        ));
    }
    let bos = md.id_opt("tokenizer.ggml.bos_token_id", tokens.len())?;
    let eos = md.id_opt("tokenizer.ggml.eos_token_id", tokens.len())?;
    let pad = md.id_opt("tokenizer.ggml.padding_token_id", tokens.len())?;
    let unk = md.id_opt("tokenizer.ggml.unknown_token_id", tokens.len())?;
    let mut tokenizer = match kind.as_str() {
        "gpt2" => byte_level_bpe(&md, &tokens)?,
        "llama" => sentencepiece_bpe(&md, &tokens, &types, unk)?,
        other => {
            return Err(md.err(
                MODEL_KEY,
                format!("unsupported tokenizer model `{other}` (supported: gpt2, llama)"),
            ))
        }
    };
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| matches!(**t, TYPE_UNKNOWN | TYPE_CONTROL | TYPE_USER_DEFINED))
        .map(|(s, _)| AddedToken::from(s.clone(), true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| md.err("tokenizer.ggml.token_type", e.to_string()))?;
    let add_bos = md
        .bool_opt("tokenizer.ggml.add_bos_token")?
        .unwrap_or(kind == "llama");
    let add_eos = md
        .bool_opt("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false);
    if let Some(post) = post_processor(&md, &tokens, (add_bos, bos), (add_eos, eos))? {
        tokenizer.with_post_processor(Some(post));
    }
    let chat_template = match metadata.get("tokenizer.chat_template") {
        None => None,
        Some(v) => Some(
            v.to_string()
                .cloned()
                .map_err(|e| md.err("tokenizer.chat_template", e.to_string()))?,
        ),
    };
    Ok(GgufTokenizer {
        tokenizer,
        bos_token_id: bos,
        eos_token_id: eos,
        padding_token_id: pad,
        chat_template,
    })
}

/// `gpt2`: byte-level BPE over the stored merges, pre-tokenized per `tokenizer.ggml.pre`.
fn byte_level_bpe(md: &Keys, tokens: &[String]) -> Result<Tokenizer> {
    let merges = parse_merges(md, &md.strings("tokenizer.ggml.merges")?)?;
    let vocab: Vocab = vocab_of(tokens);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| md.err("tokenizer.ggml.merges", e.to_string()))?;
    let pre_name = md.string_opt("tokenizer.ggml.pre")?;
    let (normalizer, pre) = pre_for(md, pre_name.as_deref().unwrap_or("default"))?;
    let mut tok = Tokenizer::new(bpe);
    if let Some(n) = normalizer {
        tok.with_normalizer(Some(n))
            .map_err(|e| md.err("tokenizer.ggml.pre", e.to_string()))?;
    }
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    Ok(tok)
}

/// The normalizer and pre-tokenizer of a `gpt2` vocabulary named by `tokenizer.ggml.pre`.
///
/// - `default`, `gpt-2`: GPT-2's regex inside `ByteLevel`.
/// - `smollm`, `starcoder`, `refact`: every digit alone, then GPT-2's regex (SmolLM2).
/// - `llama3`, `llama-bpe`, `smaug-bpe`, `dbrx`: Llama 3's regex, then byte-level mapping.
/// - `qwen2`: NFC, Qwen2's regex, then byte-level mapping.
fn pre_for(md_keys: &Keys, name: &str) -> Result<(Option<NormalizerWrapper>, PreTokenizerWrapper)> {
    let split = |regex: &str| -> Result<PreTokenizerWrapper> {
        let s = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| md_keys.err("tokenizer.ggml.pre", e.to_string()))?;
        Ok(PreSequence::new(vec![s.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    Ok(match name {
        "default" | "gpt-2" => (None, ByteLevel::new(false, true, true).into()),
        "smollm" | "starcoder" | "refact" => (
            None,
            PreSequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
        ),
        "llama3" | "llama-bpe" | "smaug-bpe" | "dbrx" => (None, split(LLAMA3_REGEX)?),
        "qwen2" => (Some(NFC.into()), split(QWEN2_REGEX)?),
        other => {
            return Err(md_keys.err(
                "tokenizer.ggml.pre",
                format!("unsupported pre-tokenizer `{other}` (supported: {SUPPORTED_PRE})"),
            ))
        }
    })
}

/// `llama`: SentencePiece-style BPE. Spaces become `▁` (with one prepended unless
/// `tokenizer.ggml.add_space_prefix` is false), unknown characters fall back to `<0xNN>` byte
/// tokens, and merges come from `tokenizer.ggml.merges` or, when absent, from the scores: every
/// split of a normal token into two normal tokens, the highest-scoring result first (the
/// SentencePiece BPE rule).
fn sentencepiece_bpe(
    md: &Keys,
    tokens: &[String],
    types: &[i64],
    unk: Option<u32>,
) -> Result<Tokenizer> {
    let merges = if md.map.contains_key("tokenizer.ggml.merges") {
        parse_merges(md, &md.strings("tokenizer.ggml.merges")?)?
    } else {
        let scores = md.floats("tokenizer.ggml.scores")?;
        if scores.len() != tokens.len() {
            return Err(md.err(
                "tokenizer.ggml.scores",
                format!("{} entries for {} tokens", scores.len(), tokens.len()),
            ));
        }
        merges_from_scores(tokens, types, &scores)
    };
    let unk_id = unk.or_else(|| {
        types
            .iter()
            .position(|&t| t == TYPE_UNKNOWN)
            .map(|i| i as u32)
    });
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab_of(tokens), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk_id {
        builder = builder.unk_token(tokens[u as usize].clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| md.err("tokenizer.ggml.merges", e.to_string()))?;
    let add_space = md
        .bool_opt("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let bad = |e: tokenizers::Error| md.err("tokenizer.ggml.model", e.to_string());
    let space = Replace::new(" ", "\u{2581}").map_err(bad)?;
    let normalizer: NormalizerWrapper = if add_space {
        NormalizerSequence::new(vec![Prepend::new("\u{2581}".into()).into(), space.into()]).into()
    } else {
        space.into()
    };
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("\u{2581}", " ").map_err(bad)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    let mut tok = Tokenizer::new(bpe);
    tok.with_normalizer(Some(normalizer)).map_err(bad)?;
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}

/// Merges implied by SentencePiece scores: for each normal token, each split into two normal
/// tokens; ordered by the merged token's score (highest first), then its id, then the parts' ids.
fn merges_from_scores(tokens: &[String], types: &[i64], scores: &[f32]) -> Vec<(String, String)> {
    let normal: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types[*i] == TYPE_NORMAL)
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut found: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (&piece, &id) in &normal {
        for (cut, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(cut);
            if let (Some(&li), Some(&ri)) = (normal.get(l), normal.get(r)) {
                found.push((scores[id], id, li, ri));
            }
        }
    }
    found.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    found
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

/// Token string → id; the first id wins if a string repeats.
fn vocab_of(tokens: &[String]) -> Vocab {
    let mut vocab = Vocab::default();
    for (i, t) in tokens.iter().enumerate() {
        vocab.entry(t.clone()).or_insert(i as u32);
    }
    vocab
}

/// `"left right"` strings → pairs; an entry without exactly one space is an error naming it.
fn parse_merges(md: &Keys, merges: &[String]) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut parts = m.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(l), Some(r), None) if !l.is_empty() && !r.is_empty() => {
                    Ok((l.to_string(), r.to_string()))
                }
                _ => Err(md.err(
                    "tokenizer.ggml.merges",
                    format!("entry {i} `{m}` is not two tokens separated by one space"),
                )),
            }
        })
        .collect()
}

/// `bos $A eos` (each only when `tokenizer.ggml.add_bos_token` / `add_eos_token` ask for it),
/// or `None` when neither is added. `bos` and `eos` are (add?, id).
fn post_processor(
    md: &Keys,
    tokens: &[String],
    bos: (bool, Option<u32>),
    eos: (bool, Option<u32>),
) -> Result<Option<TemplateProcessing>> {
    let pick = |(add, id): (bool, Option<u32>), id_key: &str, flag_key: &str| match (add, id) {
        (false, _) => Ok(None),
        (true, Some(i)) => Ok(Some(tokens[i as usize].clone())),
        (true, None) => Err(md.err(id_key, format!("missing, but `{flag_key}` is true"))),
    };
    let bos_tok = pick(
        bos,
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.add_bos_token",
    )?;
    let eos_tok = pick(
        eos,
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_eos_token",
    )?;
    if bos_tok.is_none() && eos_tok.is_none() {
        return Ok(None);
    }
    // One sequence with its type id: `[bos:t] $X:t [eos:t]`.
    let wrap = |seq: &str, type_id: u8| -> String {
        let mut parts = Vec::new();
        if let Some(b) = &bos_tok {
            parts.push(format!("{b}:{type_id}"));
        }
        parts.push(format!("{seq}:{type_id}"));
        if let Some(e) = &eos_tok {
            parts.push(format!("{e}:{type_id}"));
        }
        parts.join(" ")
    };
    let single = wrap("$A", 0);
    let pair = format!("{single} {}", wrap("$B", 1));
    let mut specials: Vec<(String, u32)> = Vec::new();
    if let (Some(t), (_, Some(i))) = (&bos_tok, bos) {
        specials.push((t.clone(), i));
    }
    if let (Some(t), (_, Some(i))) = (&eos_tok, eos) {
        if !specials.iter().any(|(s, _)| s == t) {
            specials.push((t.clone(), i));
        }
    }
    let bad = |e: String| {
        md.err(
            if bos_tok.is_some() {
                "tokenizer.ggml.add_bos_token"
            } else {
                "tokenizer.ggml.add_eos_token"
            },
            format!("cannot build the template `{single}`: {e}"),
        )
    };
    let t = TemplateProcessing::builder()
        .try_single(single.as_str())
        .map_err(bad)?
        .try_pair(pair.as_str())
        .map_err(bad)?
        .special_tokens(specials)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(t))
}

/// Typed access to GGUF metadata with errors naming the file and key.
struct Keys<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Keys<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> Error {
        Error::config(self.path, key, message)
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.map
            .get(key)
            .ok_or_else(|| self.err(key, "missing GGUF metadata key"))
    }

    fn string(&self, key: &str) -> Result<String> {
        self.get(key)?
            .to_string()
            .cloned()
            .map_err(|e| self.err(key, e.to_string()))
    }

    fn string_opt(&self, key: &str) -> Result<Option<String>> {
        if self.map.contains_key(key) {
            self.string(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_bool()
                .map(Some)
                .map_err(|e| self.err(key, e.to_string())),
        }
    }

    fn array(&self, key: &str) -> Result<&Vec<Value>> {
        self.get(key)?
            .to_vec()
            .map_err(|e| self.err(key, format!("expected an array: {e}")))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.err(key, format!("entry {i}: {e}")))
            })
            .collect()
    }

    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                int_of(v).ok_or_else(|| self.err(key, format!("entry {i}: not an integer: {v:?}")))
            })
            .collect()
    }

    fn floats(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_f32()
                    .or_else(|_| v.to_f64().map(|x| x as f32))
                    .map_err(|e| self.err(key, format!("entry {i}: {e}")))
            })
            .collect()
    }

    /// An optional token id, checked against the vocabulary size.
    fn id_opt(&self, key: &str, vocab: usize) -> Result<Option<u32>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let id = int_of(v).ok_or_else(|| self.err(key, format!("not an integer: {v:?}")))?;
        if id < 0 || id as usize >= vocab {
            return Err(self.err(
                key,
                format!("token id {id} outside the vocabulary of {vocab} tokens"),
            ));
        }
        Ok(Some(id as u32))
    }
}

/// Any GGUF integer value as i64 (`None` for non-integers and u64 beyond i64).
fn int_of(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::I8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::I16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::I32(x) => Some(x.into()),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I64(x) => Some(x),
        _ => None,
    }
}
