//! [`AppState`]: everything handlers share, a cheap `Clone` of `Arc`s.

use crate::config::ServeSettings;
use crate::engine::{Engine, ModelInfo};
use crate::metrics::Metrics;
use crate::queue::{BatchPolicy, Queue, Worker};
use crate::request::RequestLimits;
use crate::safety::SafetyHook;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Shared server state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    model: ModelInfo,
    safety: Option<Arc<dyn SafetyHook>>,
    queue: Queue,
    metrics: Arc<Metrics>,
    settings: ServeSettings,
    manifest: Option<serde_json::Value>,
    started_unix: u64,
    started: Instant,
    next_id: AtomicU64,
}

impl AppState {
    /// Starts the generation worker for `engine` and builds the state. `manifest` is the run
    /// manifest of the adapter (shown by `/health`), read by the caller.
    pub fn new(
        engine: Arc<dyn Engine>,
        safety: Option<Arc<dyn SafetyHook>>,
        settings: ServeSettings,
        manifest: Option<serde_json::Value>,
    ) -> crate::Result<(AppState, Worker)> {
        let metrics = Arc::new(Metrics::default());
        let policy = BatchPolicy {
            capacity: settings.queue_capacity,
            max_batch: settings.max_batch,
            window: settings.batch_window,
        };
        let model = engine.info();
        let (queue, worker) = Queue::start(engine, policy, Arc::clone(&metrics))?;
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let inner = Inner {
            model,
            safety,
            queue,
            metrics,
            settings,
            manifest,
            started_unix,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        };
        Ok((
            AppState {
                inner: Arc::new(inner),
            },
            worker,
        ))
    }

    /// The served model.
    pub fn model(&self) -> &ModelInfo {
        &self.inner.model
    }

    /// The safety hook, if any.
    pub fn safety(&self) -> Option<&dyn SafetyHook> {
        self.inner.safety.as_deref()
    }

    /// The generation queue.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// Server metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Server settings.
    pub fn settings(&self) -> &ServeSettings {
        &self.inner.settings
    }

    /// Parser limits derived from the settings.
    pub fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_tokens_limit: self.inner.settings.max_tokens_limit,
            default_max_tokens: self.inner.settings.default_max_tokens,
        }
    }

    /// Adapter run manifest, if one was found.
    pub fn manifest(&self) -> Option<&serde_json::Value> {
        self.inner.manifest.as_ref()
    }

    /// Unix time the server started (the `created` of `/v1/models`).
    pub fn started_unix(&self) -> u64 {
        self.inner.started_unix
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// A fresh request id (for logs and completion ids).
    pub fn next_request_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
