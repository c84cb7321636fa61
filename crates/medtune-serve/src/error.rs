//! Errors: the library's [`Error`] (setup, config, engine) and the HTTP layer's [`ApiError`],
//! which turns every failure into a JSON body `{"error": {"message", "type", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Errors raised while configuring or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A serve config (TOML) could not be parsed or failed validation.
    #[error("config {origin}: {message}")]
    Config {
        /// Where the config came from (a file path or "defaults").
        origin: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The inference engine failed (loading or generating).
    #[error("engine: {0}")]
    Engine(String),
    /// The safety validator could not be built or rejected its input.
    #[error("safety: {0}")]
    Safety(String),
    /// Binding or serving on a socket failed.
    #[error("server on {addr}: {source}")]
    Io {
        /// The address being served.
        addr: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The load generator could not reach or talk to the server.
    #[error("load test: {0}")]
    LoadTest(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One error type for every HTTP handler. 4xx variants carry a message for the client; 5xx
/// bodies stay generic and the detail goes to the log with the request id.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Malformed JSON, wrong types, missing or out-of-range fields (400).
    BadRequest(String),
    /// Missing or wrong `Authorization: Bearer` key (401).
    Unauthorized,
    /// Unknown route (404).
    NotFound(String),
    /// Known route, wrong method (405).
    MethodNotAllowed,
    /// Body larger than the configured limit (413).
    PayloadTooLarge(usize),
    /// The generation queue is full (429).
    QueueFull,
    /// The server is shutting down or the worker stopped (503).
    Unavailable,
    /// The request did not finish within the per-request timeout (504).
    Timeout(u64),
    /// Anything else (500); the detail is logged, never sent.
    Internal {
        /// Request id shown to the client so the log line can be found.
        request_id: u64,
        /// Logged detail.
        detail: String,
    },
}

impl ApiError {
    /// HTTP status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short machine-readable error type (OpenAI style `type` field).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request_error",
            ApiError::Unauthorized => "authentication_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::QueueFull => "rate_limit_error",
            ApiError::Unavailable => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal { .. } => "server_error",
        }
    }

    /// Message shown to the client.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) => m.clone(),
            ApiError::Unauthorized => {
                "missing or invalid API key (send `Authorization: Bearer <key>`)".into()
            }
            ApiError::NotFound(path) => format!("no route for {path}"),
            ApiError::MethodNotAllowed => "method not allowed on this route".into(),
            ApiError::PayloadTooLarge(limit) => {
                format!("request body larger than the limit of {limit} bytes")
            }
            ApiError::QueueFull => "server busy: generation queue is full, retry later".into(),
            ApiError::Unavailable => "server is shutting down or the generator stopped".into(),
            ApiError::Timeout(secs) => format!("request did not finish within {secs} s"),
            ApiError::Internal { request_id, .. } => {
                format!("internal error (request id {request_id})")
            }
        }
    }

    /// The JSON error body, `{"error": {"message", "type", "code"}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message(),
                "type": self.kind(),
                "code": self.status().as_u16(),
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { request_id, detail } = &self {
            tracing::error!(request_id, %detail, "internal error");
        }
        (self.status(), Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_error_body_hides_detail() {
        let err = ApiError::Internal {
            request_id: 7,
            detail: "secret path /x/y".into(),
        };
        let body = err.body().to_string();
        assert!(!body.contains("secret"));
        assert!(body.contains("request id 7"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn queue_full_is_429() {
        assert_eq!(ApiError::QueueFull.status().as_u16(), 429);
        assert_eq!(ApiError::QueueFull.body()["error"]["code"], 429);
    }
}
