//! Server metrics rendered in the Prometheus text exposition format (version 0.0.4).
//!
//! Families: `medtune_http_requests_total{route,status}`,
//! `medtune_http_request_duration_seconds{route}` (histogram, until the response head),
//! `medtune_generation_duration_seconds` (histogram, per batch), `medtune_prompt_tokens_total`,
//! `medtune_generated_tokens_total`, `medtune_queue_depth`, `medtune_batch_size` (histogram),
//! `medtune_safety_warnings_total{category}`, `medtune_emergency_escalations_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Latency bucket upper bounds, seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Batch size bucket upper bounds.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, x: f64) {
        for (bound, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if x <= *bound {
                *c += 1;
            }
        }
        self.sum += x;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Labelled {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    warnings: BTreeMap<String, u64>,
    generation: Option<Histogram>,
    batch: Option<Histogram>,
}

/// Shared counters, cheap to update from handlers and the worker thread.
#[derive(Debug, Default)]
pub struct Metrics {
    labelled: Mutex<Labelled>,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    escalations: AtomicU64,
    queue_depth: AtomicUsize,
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Labelled) -> R) -> R {
        // A poisoned lock only means a panic elsewhere mid-update; counters stay usable.
        let mut guard = match self.labelled.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Records one finished HTTP request.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|l| {
            *l.requests.entry((route.to_string(), status)).or_default() += 1;
            l.latency
                .entry(route.to_string())
                .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(seconds);
        });
    }

    /// Records one generated batch: its size, duration and token counts.
    pub fn observe_batch(&self, size: usize, seconds: f64, prompt: usize, generated: usize) {
        self.prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(generated as u64, Ordering::Relaxed);
        self.with(|l| {
            l.generation
                .get_or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(seconds);
            l.batch
                .get_or_insert_with(|| Histogram::new(&BATCH_BUCKETS))
                .observe(size as f64);
        });
    }

    /// Records the warnings of one safety report, by category.
    pub fn observe_warnings<'a>(&self, categories: impl IntoIterator<Item = &'a str>) {
        self.with(|l| {
            for c in categories {
                *l.warnings.entry(c.to_string()).or_default() += 1;
            }
        });
    }

    /// Records an emergency answered with the escalation message.
    pub fn observe_escalation(&self) {
        self.escalations.fetch_add(1, Ordering::Relaxed);
    }

    /// A request entered the queue.
    pub fn queue_push(&self) {
        self.queue_depth.fetch_add(1, Ordering::Relaxed);
    }

    /// A request left the queue (taken by the worker, or rejected after a push).
    pub fn queue_pop(&self) {
        // Saturating: never wraps below zero.
        let _ = self
            .queue_depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(1))
            });
    }

    /// Requests waiting for the worker.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|l| {
            out.push_str("# HELP medtune_http_requests_total HTTP requests by route and status.\n");
            out.push_str("# TYPE medtune_http_requests_total counter\n");
            for ((route, status), n) in &l.requests {
                let _ = writeln!(
                    out,
                    "medtune_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str(
                "# HELP medtune_http_request_duration_seconds Time to response head, by route.\n",
            );
            out.push_str("# TYPE medtune_http_request_duration_seconds histogram\n");
            for (route, h) in &l.latency {
                let labels = format!("route=\"{}\"", escape(route));
                h.render(&mut out, "medtune_http_request_duration_seconds", &labels);
            }
            out.push_str(
                "# HELP medtune_generation_duration_seconds Time to generate one batch.\n",
            );
            out.push_str("# TYPE medtune_generation_duration_seconds histogram\n");
            l.generation
                .clone()
                .unwrap_or_else(|| Histogram::new(&LATENCY_BUCKETS))
                .render(&mut out, "medtune_generation_duration_seconds", "");
            out.push_str("# HELP medtune_batch_size Requests generated together.\n");
            out.push_str("# TYPE medtune_batch_size histogram\n");
            l.batch
                .clone()
                .unwrap_or_else(|| Histogram::new(&BATCH_BUCKETS))
                .render(&mut out, "medtune_batch_size", "");
            out.push_str("# HELP medtune_safety_warnings_total Safety warnings by category.\n");
            out.push_str("# TYPE medtune_safety_warnings_total counter\n");
            for (category, n) in &l.warnings {
                let _ = writeln!(
                    out,
                    "medtune_safety_warnings_total{{category=\"{}\"}} {n}",
                    escape(category)
                );
            }
        });
        let scalars = [
            (
                "medtune_prompt_tokens_total",
                "counter",
                "Prompt tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "medtune_generated_tokens_total",
                "counter",
                "Tokens generated.",
                self.generated_tokens.load(Ordering::Relaxed),
            ),
            (
                "medtune_emergency_escalations_total",
                "counter",
                "Questions answered with the emergency escalation message.",
                self.escalations.load(Ordering::Relaxed),
            ),
            (
                "medtune_queue_depth",
                "gauge",
                "Requests waiting for the generation worker.",
                self.queue_depth() as u64,
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_request("/generate", 200, 0.03);
        m.observe_request("/generate", 200, 3.0);
        m.observe_request("/generate", 429, 0.001);
        m.observe_batch(3, 0.2, 30, 12);
        m.observe_warnings(["max_dose", "max_dose", "interaction"]);
        m.queue_push();
        let text = m.render();
        assert!(text.contains("medtune_http_requests_total{route=\"/generate\",status=\"200\"} 2"));
        assert!(text.contains("medtune_http_requests_total{route=\"/generate\",status=\"429\"} 1"));
        assert!(text.contains(
            "medtune_http_request_duration_seconds_bucket{route=\"/generate\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "medtune_http_request_duration_seconds_bucket{route=\"/generate\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("medtune_http_request_duration_seconds_count{route=\"/generate\"} 3"));
        assert!(text.contains("medtune_safety_warnings_total{category=\"max_dose\"} 2"));
        assert!(text.contains("medtune_prompt_tokens_total 30"));
        assert!(text.contains("medtune_generated_tokens_total 12"));
        assert!(text.contains("medtune_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("medtune_queue_depth 1"));
        m.queue_pop();
        m.queue_pop();
        assert_eq!(m.queue_depth(), 0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
