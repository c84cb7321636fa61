//! Chat templates: a model's own Jinja template (from `tokenizer_config.json` or a GGUF) or a
//! built-in one, rendered with minijinja the way Hugging Face renders them (trim_blocks,
//! lstrip_blocks, Python string methods, `raise_exception`, `strftime_now`).
//!
//! The built-in templates (chatml, llama3, mistral, phi3, alpaca, vicuna) are our own text that
//! produces each family's documented prompt layout.

use crate::io::sha256_hex;
use crate::{Error, Result};
use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Message text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Names of the built-in templates.
pub const BUILTIN_TEMPLATES: &[&str] = &["chatml", "llama3", "mistral", "phi3", "alpaca", "vicuna"];

/// (source, bos, eos) of a built-in template.
fn builtin_source(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match name {
        "chatml" => (
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
             {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
            "",
            "<|im_end|>",
        ),
        "llama3" => (
            "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n\
             {{ m.content }}<|eot_id|>{% endfor %}\
             {% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
            "<|begin_of_text|>",
            "<|eot_id|>",
        ),
        "mistral" => (
            "{% set ns = namespace(system='') %}{{ bos_token }}{% for m in messages %}\
             {% if m.role == 'system' %}{% set ns.system = m.content ~ '\n\n' %}\
             {% elif m.role == 'user' %}[INST] {{ ns.system ~ m.content }} [/INST]{% set ns.system = '' %}\
             {% elif m.role == 'assistant' %} {{ m.content }}{{ eos_token }}\
             {% else %}{{ raise_exception('mistral template: unsupported role ' ~ m.role) }}{% endif %}{% endfor %}",
            "<s>",
            "</s>",
        ),
        "phi3" => (
            "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}\
             {% if add_generation_prompt %}<|assistant|>\n{% endif %}",
            "",
            "<|end|>",
        ),
        "alpaca" => (
            "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n\
             {% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n\
             {% elif m.role == 'assistant' %}### Response:\n{{ m.content }}{{ eos_token }}\n\n\
             {% endif %}{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}",
            "",
            "</s>",
        ),
        "vicuna" => (
            "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }} \
             {% elif m.role == 'user' %}USER: {{ m.content }} \
             {% elif m.role == 'assistant' %}ASSISTANT: {{ m.content }}{{ eos_token }}\
             {% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}",
            "<s>",
            "</s>",
        ),
        _ => return None,
    })
}

/// A compiled chat template with its special tokens.
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template. `bos_token`/`eos_token` are passed to it as variables.
    pub fn from_jinja(name: &str, source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::Template {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| -> String {
            strftime_utc(&fmt, now_unix())
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        Ok(ChatTemplate {
            name: name.to_string(),
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            env,
        })
    }

    /// A built-in template by name (see [`BUILTIN_TEMPLATES`]).
    pub fn builtin(name: &str) -> Result<Self> {
        let (src, bos, eos) = builtin_source(name).ok_or_else(|| Error::Template {
            name: name.to_string(),
            message: format!(
                "unknown built-in template (known: {})",
                BUILTIN_TEMPLATES.join(", ")
            ),
        })?;
        Self::from_jinja(name, src, bos, eos)
    }

    /// The template of a `tokenizer_config.json` (its `chat_template`, a string or a list of
    /// `{name, template}` where `default` is used, plus `bos_token`/`eos_token`).
    pub fn from_tokenizer_config(config_json: &str, origin: &str) -> Result<Self> {
        let err = |m: String| Error::Template {
            name: origin.to_string(),
            message: m,
        };
        let v: serde_json::Value =
            serde_json::from_str(config_json).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let template = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_owned))
                .ok_or_else(|| err("chat_template list has no `default` entry".into()))?,
            _ => return Err(err("no `chat_template` field".into())),
        };
        let token = |key: &str| match v.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(obj) => obj
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        };
        Self::from_jinja(origin, &template, &token("bos_token"), &token("eos_token"))
    }

    /// Renders `messages`; with `add_generation_prompt` the assistant header is appended.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut map = BTreeMap::new();
                map.insert("role", Value::from(m.role.as_str()));
                map.insert("content", Value::from(m.content.as_str()));
                Value::from(map)
            })
            .collect();
        let mut ctx = BTreeMap::new();
        ctx.insert("messages", Value::from(msgs));
        ctx.insert("add_generation_prompt", Value::from(add_generation_prompt));
        ctx.insert("bos_token", Value::from(self.bos_token.as_str()));
        ctx.insert("eos_token", Value::from(self.eos_token.as_str()));
        let tmpl = self.env.get_template("chat").map_err(|e| self.err(e))?;
        tmpl.render(Value::from(ctx)).map_err(|e| self.err(e))
    }

    fn err(&self, e: minijinja::Error) -> Error {
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            message.push_str(&format!(": {s}"));
            src = s.source();
        }
        Error::Template {
            name: self.name.clone(),
            message,
        }
    }

    /// sha256 of the template source, bos and eos (for manifests).
    pub fn template_hash(&self) -> String {
        sha256_hex(
            format!(
                "{}\u{0}{}\u{0}{}",
                self.source, self.bos_token, self.eos_token
            )
            .as_bytes(),
        )
    }

    /// The Jinja source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Template name (built-in name or origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The end-of-turn token the template uses (appended and supervised after each answer).
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The template's beginning-of-sequence token (may be empty).
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// days-from-civil inverse, in our own code).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A small `strftime` for UTC time: `%Y %y %m %d %e %B %b %H %M %S %%`; other codes pass through.
pub fn strftime_utc(fmt: &str, unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Vec<Message> {
        vec![
            Message::new("system", "Be brief."),
            Message::new("user", "What is gout?"),
            Message::new("assistant", "A form of arthritis."),
        ]
    }

    #[test]
    fn chatml_layout() {
        let t = ChatTemplate::builtin("chatml").unwrap();
        let s = t.render(&conv()[1..2], true).unwrap();
        assert_eq!(
            s,
            "<|im_start|>user\nWhat is gout?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn every_builtin_renders_prompt_as_prefix_of_conversation() {
        for name in BUILTIN_TEMPLATES {
            let t = ChatTemplate::builtin(name).unwrap();
            let prompt = t.render(&conv()[..2], true).unwrap();
            let full = t.render(&conv(), false).unwrap();
            assert!(full.starts_with(&prompt), "{name}: {prompt:?} vs {full:?}");
            assert!(full.contains("A form of arthritis."), "{name}");
            assert!(full.contains("Be brief."), "{name}");
            assert_eq!(t.template_hash().len(), 64);
        }
        assert_ne!(
            ChatTemplate::builtin("llama3").unwrap().template_hash(),
            ChatTemplate::builtin("chatml").unwrap().template_hash()
        );
        assert!(ChatTemplate::builtin("nope").is_err());
    }

    #[test]
    fn llama3_and_mistral_layouts() {
        let t = ChatTemplate::builtin("llama3").unwrap();
        assert_eq!(
            t.render(&conv()[1..2], true).unwrap(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is gout?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let m = ChatTemplate::builtin("mistral").unwrap();
        assert_eq!(
            m.render(&conv(), false).unwrap(),
            "<s>[INST] Be brief.\n\nWhat is gout? [/INST] A form of arthritis.</s>"
        );
    }

    #[test]
    fn pycompat_raise_exception_and_strftime() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}\
                   {{ messages[0]['content'].strip().upper() }} {{ strftime_now('%Y') | length }}";
        let t = ChatTemplate::from_jinja("custom", src, "", "").unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "  hi ")], false).unwrap(),
            "HI 4"
        );
        let err = t
            .render(&[Message::new("system", "x")], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("first must be user"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported_when_compiled_naming_the_template() {
        let err = ChatTemplate::from_jinja("broken.jinja", "{% for %}", "", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.jinja"), "{err}");
    }

    #[test]
    fn strftime_known_dates() {
        assert_eq!(strftime_utc("%d %b %Y", 0), "01 Jan 1970");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(
            strftime_utc("%Y-%m-%d %H:%M:%S %B", 1_709_210_096),
            "2024-02-29 12:34:56 February"
        );
    }

    #[test]
    fn tokenizer_config_template() {
        let cfg = r#"{"bos_token": null, "eos_token": {"content": "<|im_end|>"}, "chat_template": "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"}"#;
        let t = ChatTemplate::from_tokenizer_config(cfg, "cfg").unwrap();
        assert_eq!(t.eos_token(), "<|im_end|>");
        assert_eq!(
            t.render(&conv()[1..2], false).unwrap(),
            "[user]What is gout?"
        );
    }
}
