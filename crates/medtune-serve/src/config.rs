//! Server settings: the raw `serve.toml` ([`ServeConfig`], every field optional, unknown fields
//! rejected) resolved once into validated [`ServeSettings`].
//!
//! ```toml
//! host = "127.0.0.1"
//! port = 8080
//! queue_capacity = 64      # waiting requests; more get 429 at once
//! max_batch = 8            # requests generated together
//! batch_window_ms = 5      # how long the worker waits to fill a batch
//! request_timeout_secs = 120
//! body_limit_bytes = 65536
//! max_tokens_limit = 1024  # largest max_tokens / max_length accepted
//! default_max_tokens = 256
//! api_key = "secret"       # optional: require `Authorization: Bearer secret`
//! ```

use crate::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// `serve.toml` as written; `None` means "use the default".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Bind address.
    pub host: Option<String>,
    /// Bind port (0 picks a free one).
    pub port: Option<u16>,
    /// Capacity of the waiting queue.
    pub queue_capacity: Option<usize>,
    /// Largest batch the worker generates at once.
    pub max_batch: Option<usize>,
    /// Milliseconds the worker waits for more requests to fill a batch.
    pub batch_window_ms: Option<u64>,
    /// Per-request timeout in seconds.
    pub request_timeout_secs: Option<u64>,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: Option<usize>,
    /// Largest accepted `max_tokens` / `max_length`.
    pub max_tokens_limit: Option<usize>,
    /// `max_tokens` when the request has none.
    pub default_max_tokens: Option<usize>,
    /// Optional API key.
    pub api_key: Option<String>,
}

impl ServeConfig {
    /// Parses TOML text; `origin` (e.g. the file path) is named in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Fills defaults and validates every field.
    pub fn resolve(&self, origin: &str) -> Result<ServeSettings> {
        let bad = |field: &str, why: &str| Error::Config {
            origin: origin.to_string(),
            message: format!("field `{field}`: {why}"),
        };
        let d = ServeSettings::default();
        let s = ServeSettings {
            host: self.host.clone().unwrap_or(d.host),
            port: self.port.unwrap_or(d.port),
            queue_capacity: self.queue_capacity.unwrap_or(d.queue_capacity),
            max_batch: self.max_batch.unwrap_or(d.max_batch),
            batch_window: self
                .batch_window_ms
                .map_or(d.batch_window, Duration::from_millis),
            request_timeout: self
                .request_timeout_secs
                .map_or(d.request_timeout, Duration::from_secs),
            body_limit_bytes: self.body_limit_bytes.unwrap_or(d.body_limit_bytes),
            max_tokens_limit: self.max_tokens_limit.unwrap_or(d.max_tokens_limit),
            default_max_tokens: self.default_max_tokens.unwrap_or(d.default_max_tokens),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
        };
        if s.host.trim().is_empty() {
            return Err(bad("host", "must not be empty"));
        }
        if s.queue_capacity == 0 {
            return Err(bad("queue_capacity", "must be at least 1"));
        }
        if s.max_batch == 0 {
            return Err(bad("max_batch", "must be at least 1"));
        }
        if s.request_timeout.is_zero() {
            return Err(bad("request_timeout_secs", "must be at least 1"));
        }
        if s.body_limit_bytes < 256 {
            return Err(bad("body_limit_bytes", "must be at least 256"));
        }
        if s.max_tokens_limit == 0 {
            return Err(bad("max_tokens_limit", "must be at least 1"));
        }
        if s.default_max_tokens == 0 || s.default_max_tokens > s.max_tokens_limit {
            return Err(bad(
                "default_max_tokens",
                "must be between 1 and max_tokens_limit",
            ));
        }
        Ok(s)
    }
}

/// Validated server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    /// Bind address.
    pub host: String,
    /// Bind port.
    pub port: u16,
    /// Capacity of the waiting queue.
    pub queue_capacity: usize,
    /// Largest batch generated at once.
    pub max_batch: usize,
    /// How long the worker waits to fill a batch.
    pub batch_window: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Largest accepted `max_tokens`.
    pub max_tokens_limit: usize,
    /// Default `max_tokens`.
    pub default_max_tokens: usize,
    /// Required bearer key, if any.
    pub api_key: Option<String>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            host: "127.0.0.1".into(),
            port: 8080,
            queue_capacity: 64,
            max_batch: 8,
            batch_window: Duration::from_millis(5),
            request_timeout: Duration::from_secs(120),
            body_limit_bytes: 64 * 1024,
            max_tokens_limit: 1024,
            default_max_tokens: 256,
            api_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let c = ServeConfig::from_toml_str("port = 9000\nmax_batch = 4\napi_key = \"k\"", "t")
            .expect("parse");
        let s = c.resolve("t").expect("resolve");
        assert_eq!(s.port, 9000);
        assert_eq!(s.max_batch, 4);
        assert_eq!(s.api_key.as_deref(), Some("k"));
        assert_eq!(s.host, "127.0.0.1");
    }

    #[test]
    fn defaults_validate() {
        let s = ServeConfig::default()
            .resolve("defaults")
            .expect("defaults");
        assert_eq!(s, ServeSettings::default());
    }

    #[test]
    fn unknown_field_is_named() {
        let err = ServeConfig::from_toml_str("prot = 1", "serve.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("serve.toml") && msg.contains("prot"), "{msg}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let c = ServeConfig::from_toml_str("queue_capacity = 0", "x").expect("parse");
        assert!(c
            .resolve("x")
            .unwrap_err()
            .to_string()
            .contains("queue_capacity"));
        let c = ServeConfig::from_toml_str("default_max_tokens = 50\nmax_tokens_limit = 10", "x")
            .expect("parse");
        assert!(c
            .resolve("x")
            .unwrap_err()
            .to_string()
            .contains("default_max_tokens"));
    }
}
