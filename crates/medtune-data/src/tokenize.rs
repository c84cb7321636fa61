//! Tokenization with completion-only labels.
//!
//! The conversation is rendered twice with the chat template: the prompt with the generation
//! header, and the prompt plus the assistant answer. The answer's character span in the rendered
//! text is known from these two renderings (the first is a prefix of the second), so a token is
//! supervised exactly when its offset range ends inside or after that span start; everything
//! else gets label −100. The template's text after the answer is cut and the EOS token is
//! appended and supervised, so the model learns to stop.

use crate::prompt::{build_prompt, PromptConfig};
use crate::template::{ChatTemplate, Message};
use crate::{Error, Record, Result};
use serde::{Deserialize, Serialize};
pub use tokenizers::Tokenizer;

/// Label value of tokens that carry no loss.
pub const IGNORE_INDEX: i64 = -100;

/// What to do with an example longer than `max_len` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Drop the example.
    Drop,
    /// Cut prompt tokens from the left (keeping a leading BOS); drop if the answer alone is too long.
    TruncatePromptLeft,
    /// Cut the end of the answer (no EOS then); drop if the prompt alone is too long.
    TruncateAnswer,
}

/// Tokenization settings (`[tokenize]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Maximum tokens per example.
    pub max_len: usize,
    /// Over-length policy.
    pub truncation: Truncation,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        TokenizeConfig {
            max_len: 1024,
            truncation: Truncation::TruncatePromptLeft,
        }
    }
}

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizedExample {
    /// Record id.
    pub id: String,
    /// Token ids, length T.
    pub input_ids: Vec<u32>,
    /// Per-token labels, length T: the token id where supervised, [`IGNORE_INDEX`] elsewhere
    /// (HF convention: the loss shifts by one).
    pub labels: Vec<i64>,
    /// Whether truncation changed the example.
    pub truncated: bool,
}

impl TokenizedExample {
    /// Number of supervised tokens.
    pub fn supervised(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }
}

/// A tokenizer plus chat template that turns prompts into [`TokenizedExample`]s.
pub struct ExampleTokenizer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    eos_id: u32,
    bos_id: Option<u32>,
    cfg: TokenizeConfig,
}

impl ExampleTokenizer {
    /// Binds a tokenizer and a template; the template's EOS token must be in the vocabulary.
    pub fn new(tokenizer: Tokenizer, template: ChatTemplate, cfg: TokenizeConfig) -> Result<Self> {
        if cfg.max_len < 2 {
            return Err(Error::config("tokenize.max_len", "must be at least 2"));
        }
        let eos_id = tokenizer.token_to_id(template.eos_token()).ok_or_else(|| {
            Error::Tokenizer(format!(
                "EOS token {:?} of template `{}` is not in the vocabulary",
                template.eos_token(),
                template.name()
            ))
        })?;
        let bos_id = Some(template.bos_token())
            .filter(|b| !b.is_empty())
            .and_then(|b| tokenizer.token_to_id(b));
        Ok(ExampleTokenizer {
            tokenizer,
            template,
            eos_id,
            bos_id,
            cfg,
        })
    }

    /// The chat template in use.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The EOS id appended to each answer.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Token count of plain text (no special tokens), for length filters and statistics.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Tokenizes a record in `prompt`'s answer format. `Ok(None)`: dropped by the truncation policy.
    pub fn tokenize_record(
        &self,
        record: &Record,
        prompt: &PromptConfig,
    ) -> Result<Option<TokenizedExample>> {
        let p = build_prompt(record, prompt)?;
        self.tokenize(&record.id, &p.messages, &p.answer)
    }

    /// Tokenizes `messages` followed by the assistant `answer`. `Ok(None)`: dropped by the
    /// truncation policy.
    pub fn tokenize(
        &self,
        id: &str,
        messages: &[Message],
        answer: &str,
    ) -> Result<Option<TokenizedExample>> {
        let bad = |m: String| Error::Record {
            id: id.to_string(),
            message: m,
        };
        if answer.is_empty() {
            return Err(bad("empty answer".into()));
        }
        let prompt = self.template.render(messages, true)?;
        let mut full_msgs = messages.to_vec();
        full_msgs.push(Message::new("assistant", answer));
        let full = self.template.render(&full_msgs, false)?;
        if !full.starts_with(&prompt) {
            return Err(bad(format!(
                "template `{}`: the generation prompt is not a prefix of the rendered conversation",
                self.template.name()
            )));
        }
        // Answer span: after the prompt, past any whitespace the template puts before it.
        let rest = &full[prompt.len()..];
        let pos = rest
            .find(answer)
            .filter(|&p| rest[..p].trim().is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "template `{}` does not render the answer verbatim after the prompt",
                    self.template.name()
                ))
            })?;
        let start = prompt.len() + pos;
        let end = start + answer.len();
        let enc = self
            .tokenizer
            .encode(&full[..end], false)
            .map_err(|e| Error::Tokenizer(format!("{id}: {e}")))?;
        let mut input_ids = enc.get_ids().to_vec();
        let mut labels: Vec<i64> = enc
            .get_offsets()
            .iter()
            .zip(&input_ids)
            .map(|(&(_, tok_end), &tid)| {
                if tok_end > start {
                    tid as i64
                } else {
                    IGNORE_INDEX
                }
            })
            .collect();
        input_ids.push(self.eos_id);
        labels.push(self.eos_id as i64);
        Ok(self.truncate(TokenizedExample {
            id: id.to_string(),
            input_ids,
            labels,
            truncated: false,
        }))
    }

    /// Applies the truncation policy.
    fn truncate(&self, mut ex: TokenizedExample) -> Option<TokenizedExample> {
        let max = self.cfg.max_len;
        let total = ex.input_ids.len();
        if total <= max {
            return Some(ex);
        }
        let prompt_len = ex
            .labels
            .iter()
            .position(|&l| l != IGNORE_INDEX)
            .unwrap_or(total);
        match self.cfg.truncation {
            Truncation::Drop => None,
            Truncation::TruncatePromptLeft => {
                let keep_bos = usize::from(
                    self.bos_id.is_some() && ex.input_ids.first() == self.bos_id.as_ref(),
                );
                let answer_len = total - prompt_len;
                if answer_len + keep_bos > max {
                    return None;
                }
                let cut = total - max;
                ex.input_ids.drain(keep_bos..keep_bos + cut);
                ex.labels.drain(keep_bos..keep_bos + cut);
                ex.truncated = true;
                Some(ex)
            }
            Truncation::TruncateAnswer => {
                if prompt_len >= max {
                    return None;
                }
                ex.input_ids.truncate(max);
                ex.labels.truncate(max);
                ex.truncated = true;
                Some(ex)
            }
        }
    }
}

/// Tokenizes many records in parallel; one result per record, in order (`Ok(None)`: dropped by
/// the truncation policy).
pub fn tokenize_records(
    tok: &ExampleTokenizer,
    records: &[Record],
    prompt: &PromptConfig,
) -> Vec<Result<Option<TokenizedExample>>> {
    use rayon::prelude::*;
    records
        .par_iter()
        .map(|r| tok.tokenize_record(r, prompt))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Tokenizer {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/hf-tiny/tokenizer/tokenizer.json"
        );
        Tokenizer::from_file(path).unwrap()
    }

    fn ex(cfg: TokenizeConfig) -> ExampleTokenizer {
        ExampleTokenizer::new(tok(), ChatTemplate::builtin("chatml").unwrap(), cfg).unwrap()
    }

    #[test]
    fn labels_cover_exactly_the_answer_and_eos() {
        let t = ex(TokenizeConfig::default());
        let msgs = [Message::new("user", "What is gout?")];
        let e = t
            .tokenize("x", &msgs, "A form of arthritis.")
            .unwrap()
            .unwrap();
        assert_eq!(e.input_ids.len(), e.labels.len());
        assert_eq!(*e.input_ids.last().unwrap(), t.eos_id());
        assert_eq!(*e.labels.last().unwrap(), t.eos_id() as i64);
        let first = e.labels.iter().position(|&l| l != IGNORE_INDEX).unwrap();
        assert!(
            e.labels[first..].iter().all(|&l| l != IGNORE_INDEX),
            "supervised part is contiguous"
        );
        // Decoding the supervised tokens (without EOS) gives back the answer.
        let ans: Vec<u32> = e.input_ids[first..e.input_ids.len() - 1].to_vec();
        assert_eq!(
            t.tokenizer.decode(&ans, false).unwrap(),
            "A form of arthritis."
        );
        // The prompt part decodes to the rendered prompt.
        let prompt = t.template.render(&msgs, true).unwrap();
        assert_eq!(
            t.tokenizer.decode(&e.input_ids[..first], false).unwrap(),
            prompt
        );
    }

    #[test]
    fn truncation_policies() {
        let msgs = [Message::new(
            "user",
            "Explain the long history of this disease in great detail please.",
        )];
        let full = ex(TokenizeConfig::default())
            .tokenize("x", &msgs, "Short.")
            .unwrap()
            .unwrap();
        let n = full.input_ids.len();
        let sup = full.supervised();
        let max = n - 5;
        let drop = ex(TokenizeConfig {
            max_len: max,
            truncation: Truncation::Drop,
        });
        assert!(drop.tokenize("x", &msgs, "Short.").unwrap().is_none());
        let left = ex(TokenizeConfig {
            max_len: max,
            truncation: Truncation::TruncatePromptLeft,
        });
        let l = left.tokenize("x", &msgs, "Short.").unwrap().unwrap();
        assert_eq!(l.input_ids.len(), max);
        assert_eq!(l.supervised(), sup, "the answer is kept whole");
        assert_eq!(l.input_ids[..], full.input_ids[5..]);
        let ans = ex(TokenizeConfig {
            max_len: n - sup + 1,
            truncation: Truncation::TruncateAnswer,
        });
        let a = ans.tokenize("x", &msgs, "Short.").unwrap().unwrap();
        assert_eq!(a.supervised(), 1);
        assert!(a.truncated);
        assert_ne!(*a.input_ids.last().unwrap(), ans.eos_id());
    }
}
