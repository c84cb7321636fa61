//! [`ModelEngine`]: the real [`Engine`], a `medtune-model` model (HF folder or GGUF) with its
//! tokenizer and chat template, optionally with a PEFT LoRA adapter attached.
//!
//! A batch is split into groups with the same sampling settings (`medtune_model::generate` takes
//! one set per call); each group is generated with left padding in one call. Rows asking for
//! fewer tokens than the group's longest are cut at their own `max_tokens`. Prompts longer than
//! the context allows keep their last tokens.

use crate::engine::{Engine, FinishReason, GenOutput, GenRequest, ModelInfo, TokenFlow};
use crate::stream_text::StreamText;
use crate::{Error, Result};
use medtune_model::sampling::SamplingParams;
use medtune_model::{GenerateOptions, LoadOptions, LoadedModel, Message, RowFlow};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A loaded model served by the worker thread.
pub struct ModelEngine {
    loaded: LoadedModel,
    info: ModelInfo,
    /// Keeps the adapter's variables alive while attached.
    _adapter: Option<medtune_model::lora::LoraSet>,
    next_seed: AtomicU64,
}

fn file_stem(path: &Path) -> String {
    let trimmed = path.components().next_back().map(|c| c.as_os_str());
    let name = trimmed.map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    name.trim_end_matches(".gguf").to_string()
}

impl ModelEngine {
    /// Loads `model` (a folder or `.gguf` file) on the CPU and attaches the PEFT adapter in
    /// `adapter`, if given.
    pub fn load(model: &Path, adapter: Option<&Path>) -> Result<Self> {
        let opts = LoadOptions::default();
        let mut loaded = medtune_model::load(model, &opts)
            .map_err(|e| Error::Engine(format!("loading model {}: {e}", model.display())))?;
        loaded
            .tokenizer()
            .map_err(|e| Error::Engine(format!("model {}: {e}", model.display())))?;
        if loaded.chat_template.is_none() {
            return Err(Error::Engine(format!(
                "model {}: no chat template (chat_template.jinja, tokenizer_config.json or GGUF metadata)",
                model.display()
            )));
        }
        let lora = match adapter {
            Some(dir) => {
                let set = medtune_model::peft::load_peft_for_inference(&mut loaded.model, dir)
                    .map_err(|e| {
                        Error::Engine(format!("loading adapter {}: {e}", dir.display()))
                    })?;
                Some(set)
            }
            None => None,
        };
        let info = ModelInfo {
            id: file_stem(model),
            adapter: adapter.map(file_stem),
            device: "cpu".into(),
            gpu: false,
        };
        let seed0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(ModelEngine {
            loaded,
            info,
            _adapter: lora,
            next_seed: AtomicU64::new(seed0),
        })
    }

    /// Renders the chat template and tokenizes, keeping the last tokens when the prompt plus
    /// `max_tokens` would not fit the context.
    fn prompt_ids(&self, req: &GenRequest) -> Result<Vec<u32>> {
        let messages: Vec<Message> = req
            .messages
            .iter()
            .map(|m| Message::new(m.role.clone(), m.content.clone()))
            .collect();
        let mut ids = self
            .loaded
            .chat_prompt(&messages)
            .map_err(|e| Error::Engine(format!("rendering prompt: {e}")))?;
        let context = self.loaded.config.max_position_embeddings;
        let room = context.saturating_sub(req.sampling.max_tokens).max(1);
        if ids.len() > room {
            ids.drain(..ids.len() - room);
        }
        Ok(ids)
    }

    fn options(&self, req: &GenRequest, max_new_tokens: usize) -> GenerateOptions {
        let s = &req.sampling;
        let seed = s
            .seed
            .unwrap_or_else(|| self.next_seed.fetch_add(1, Ordering::Relaxed));
        GenerateOptions {
            max_new_tokens,
            sampling: SamplingParams {
                temperature: s.temperature,
                top_k: None,
                top_p: (s.top_p < 1.0).then_some(s.top_p),
                repetition_penalty: 1.0,
                seed,
            },
            eos_token_ids: self.loaded.eos_token_ids.clone(),
            // Stop strings are applied by `StreamText` so streamed and final text agree.
            stop_strings: Vec::new(),
        }
    }

    /// Generates one group of requests with identical sampling settings.
    fn generate_group(
        &self,
        reqs: &[GenRequest],
        rows: &[usize],
        on_token: &mut dyn FnMut(usize, &str) -> TokenFlow,
        outputs: &mut [Option<GenOutput>],
    ) -> Result<()> {
        let tokenizer = self
            .loaded
            .tokenizer()
            .map_err(|e| Error::Engine(e.to_string()))?;
        let prompts: Vec<Vec<u32>> = rows
            .iter()
            .map(|&i| self.prompt_ids(&reqs[i]))
            .collect::<Result<_>>()?;
        let max_new = rows
            .iter()
            .map(|&i| reqs[i].sampling.max_tokens)
            .max()
            .unwrap_or(1);
        let opts = self.options(&reqs[rows[0]], max_new);
        struct Row {
            ids: Vec<u32>,
            stream: StreamText,
            cancelled: bool,
            decode_error: Option<String>,
        }
        let mut state: Vec<Row> = rows
            .iter()
            .map(|&i| Row {
                ids: Vec::new(),
                stream: StreamText::new(&reqs[i].sampling.stop),
                cancelled: false,
                decode_error: None,
            })
            .collect();
        // A row whose client went away, whose stop string appeared or which reached its own
        // token limit is finished in the model loop too: no compute is spent on it any more,
        // and the batch ends as soon as every row is done.
        let mut callback = |r: usize, id: u32| {
            let (Some(row), Some(&req_i)) = (state.get_mut(r), rows.get(r)) else {
                return RowFlow::Stop;
            };
            let limit = reqs[req_i].sampling.max_tokens;
            if row.cancelled || row.stream.stopped() || row.ids.len() >= limit {
                return RowFlow::Stop;
            }
            row.ids.push(id);
            match tokenizer.decode(&row.ids) {
                Ok(text) => {
                    if let Some(piece) = row.stream.update(&text) {
                        if on_token(req_i, &piece) == TokenFlow::Stop {
                            row.cancelled = true;
                        }
                    }
                }
                Err(e) => row.decode_error = Some(e.to_string()),
            }
            let done = row.cancelled
                || row.stream.stopped()
                || row.ids.len() >= limit
                || row.decode_error.is_some();
            if done {
                RowFlow::Stop
            } else {
                RowFlow::Continue
            }
        };
        let generations =
            medtune_model::generate_with(&self.loaded.model, &prompts, &opts, None, &mut callback)
                .map_err(|e| Error::Engine(format!("generation: {e}")))?;
        for ((mut row, gen), (&req_i, prompt)) in state
            .into_iter()
            .zip(generations)
            .zip(rows.iter().zip(&prompts))
        {
            if let Some(e) = row.decode_error {
                return Err(Error::Engine(format!("decoding tokens: {e}")));
            }
            let (text, rest) = row.stream.finish();
            if let (Some(piece), false) = (rest, row.cancelled) {
                on_token(req_i, &piece);
            }
            let limit = reqs[req_i].sampling.max_tokens;
            let finish = if row.cancelled {
                FinishReason::Cancelled
            } else if row.stream.stopped() {
                FinishReason::Stop
            } else if row.ids.len() >= limit {
                FinishReason::Length
            } else {
                match gen.finish {
                    medtune_model::FinishReason::Length => FinishReason::Length,
                    medtune_model::FinishReason::Eos
                    | medtune_model::FinishReason::StopString
                    | medtune_model::FinishReason::Stopped => FinishReason::Stop,
                }
            };
            outputs[req_i] = Some(GenOutput {
                text,
                prompt_tokens: prompt.len(),
                completion_tokens: row.ids.len(),
                finish_reason: finish,
            });
        }
        Ok(())
    }
}

/// Requests that can share one `generate` call.
fn same_sampling(a: &GenRequest, b: &GenRequest) -> bool {
    let (x, y) = (&a.sampling, &b.sampling);
    x.temperature == y.temperature && x.top_p == y.top_p && x.seed == y.seed
}

impl Engine for ModelEngine {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn generate_batch(
        &self,
        reqs: &[GenRequest],
        on_token: &mut dyn FnMut(usize, &str) -> TokenFlow,
    ) -> Result<Vec<GenOutput>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..reqs.len() {
            match groups
                .iter_mut()
                .find(|g| same_sampling(&reqs[g[0]], &reqs[i]))
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let mut outputs: Vec<Option<GenOutput>> = vec![None; reqs.len()];
        for rows in &groups {
            self.generate_group(reqs, rows, on_token, &mut outputs)?;
        }
        outputs
            .into_iter()
            .enumerate()
            .map(|(i, o)| o.ok_or_else(|| Error::Engine(format!("no output for request {i}"))))
            .collect()
    }
}
