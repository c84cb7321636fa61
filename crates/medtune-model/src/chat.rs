//! Chat-template rendering of a model's own Jinja template (HF `chat_template`).
//!
//! Rendered with minijinja configured like transformers' sandbox: `trim_blocks`,
//! `lstrip_blocks`, Python string/dict methods (`.strip()`, `.items()`...) and a
//! `raise_exception(msg)` function.

use crate::error::{Error, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

impl Message {
    fn to_value(&self) -> minijinja::Value {
        let map: std::collections::BTreeMap<String, String> = [
            ("role".to_string(), self.role.clone()),
            ("content".to_string(), self.content.clone()),
        ]
        .into_iter()
        .collect();
        minijinja::Value::from(map)
    }
}

/// A parsed chat template plus the special tokens it may reference.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Wraps template source; `bos_token`/`eos_token` are exposed to the template as variables.
    /// The source is parsed once here so that syntax errors surface at load time.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self> {
        let t = Self {
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        };
        t.env()?;
        Ok(t)
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn env(&self) -> Result<minijinja::Environment<'static>> {
        let mut env = minijinja::Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", self.source.clone())
            .map_err(|e| Error::Template(format!("cannot parse: {e}")))?;
        Ok(env)
    }

    /// Renders `messages`; with `add_generation_prompt` the assistant turn is opened.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = self.env()?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages.iter().map(Message::to_value).collect::<Vec<_>>(),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| Error::Template(format!("cannot render: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_with_python_methods() -> Result<()> {
        let src = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'].strip() }}<|im_end|>\n{% endfor %}\
                   {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let t = ChatTemplate::new(src, "", "<|im_end|>")?;
        let out = t.render(&[Message::new("user", " Hi ")], true)?;
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        Ok(())
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("no system role"), "{e}");
    }

    #[test]
    fn syntax_error_is_reported_at_parse() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }
}
