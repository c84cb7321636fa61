//! The bounded generation queue and its batching worker thread.
//!
//! Handlers [`Queue::submit`] a [`Job`]; when `queue_capacity` jobs are already waiting the
//! submit fails at once (the handler answers 429). One dedicated std thread (generation is CPU
//! bound and must not block the async runtime) takes the first waiting job, waits up to
//! `batch_window` for more, up to `max_batch`, and generates them together. Each job receives
//! its text pieces and then one final [`Event::Done`] over its own channel. A job whose client
//! went away (channel closed) or whose deadline passed is stopped at the next token.

use crate::engine::{Engine, GenOutput, GenRequest, TokenFlow};
use crate::error::ApiError;
use crate::metrics::Metrics;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What a job's owner receives from the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new piece of generated text.
    Token(String),
    /// Generation finished (or failed, with a message for the log).
    Done(std::result::Result<GenOutput, String>),
}

/// One queued generation.
#[derive(Debug)]
pub struct Job {
    /// What to generate.
    pub request: GenRequest,
    /// Where pieces and the final result go.
    pub events: UnboundedSender<Event>,
    /// When the request times out; generation stops at the next token after it.
    pub deadline: Instant,
}

impl Job {
    /// Creates a job and the receiver its owner reads events from.
    pub fn new(request: GenRequest, deadline: Instant) -> (Job, UnboundedReceiver<Event>) {
        let (events, rx) = unbounded_channel();
        (
            Job {
                request,
                events,
                deadline,
            },
            rx,
        )
    }
}

/// Batching limits of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Jobs that may wait; more are rejected.
    pub capacity: usize,
    /// Largest batch.
    pub max_batch: usize,
    /// How long to wait for more jobs once one arrived.
    pub window: Duration,
}

/// Sending side of the queue, shared by all handlers.
#[derive(Debug)]
pub struct Queue {
    sender: Mutex<Option<SyncSender<Job>>>,
    metrics: Arc<Metrics>,
}

/// The worker thread; join it after [`Queue::close`] to finish in-flight work.
#[derive(Debug)]
pub struct Worker {
    handle: JoinHandle<()>,
}

impl Worker {
    /// Waits until the worker has finished every job it accepted.
    pub fn join(self) -> crate::Result<()> {
        self.handle
            .join()
            .map_err(|_| crate::Error::Engine("generation worker panicked".into()))
    }
}

impl Queue {
    /// Starts the worker thread for `engine` and returns the queue feeding it.
    pub fn start(
        engine: Arc<dyn Engine>,
        policy: BatchPolicy,
        metrics: Arc<Metrics>,
    ) -> crate::Result<(Queue, Worker)> {
        let (tx, rx) = mpsc::sync_channel(policy.capacity);
        let worker_metrics = Arc::clone(&metrics);
        let handle = std::thread::Builder::new()
            .name("medtune-generate".into())
            .spawn(move || run_worker(engine.as_ref(), &rx, policy, &worker_metrics))
            .map_err(|e| crate::Error::Engine(format!("cannot start worker thread: {e}")))?;
        Ok((
            Queue {
                sender: Mutex::new(Some(tx)),
                metrics,
            },
            Worker { handle },
        ))
    }

    /// Enqueues a job, or fails at once with 429 when the queue is full (503 once closed).
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let guard = match self.sender.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(sender) = guard.as_ref() else {
            return Err(ApiError::Unavailable);
        };
        // Count before sending so the worker's decrement never precedes the increment.
        self.metrics.queue_push();
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.metrics.queue_pop();
                Err(ApiError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.queue_pop();
                Err(ApiError::Unavailable)
            }
        }
    }

    /// Stops accepting jobs; the worker finishes those already queued and then exits.
    pub fn close(&self) {
        let mut guard = match self.sender.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.take();
    }
}

/// Collects the next batch: blocks for the first job, then waits up to `window` for more.
/// Returns `None` once the queue is closed and empty.
fn next_batch(
    rx: &mpsc::Receiver<Job>,
    policy: BatchPolicy,
    metrics: &Metrics,
) -> Option<Vec<Job>> {
    let first = rx.recv().ok()?;
    metrics.queue_pop();
    let mut jobs = vec![first];
    let window_end = Instant::now() + policy.window;
    while jobs.len() < policy.max_batch {
        let next = match rx.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                let left = window_end.saturating_duration_since(Instant::now());
                // Timeout or disconnect both end the batch.
                rx.recv_timeout(left).ok()
            }
        };
        match next {
            Some(job) => {
                metrics.queue_pop();
                jobs.push(job);
            }
            None => break,
        }
    }
    Some(jobs)
}

fn run_worker(
    engine: &dyn Engine,
    rx: &mpsc::Receiver<Job>,
    policy: BatchPolicy,
    metrics: &Metrics,
) {
    while let Some(mut jobs) = next_batch(rx, policy, metrics) {
        // Skip jobs nobody waits for any more.
        let now = Instant::now();
        jobs.retain(|job| {
            if now >= job.deadline {
                let _ = job
                    .events
                    .send(Event::Done(Err("deadline passed in queue".into())));
                false
            } else {
                !job.events.is_closed()
            }
        });
        if jobs.is_empty() {
            continue;
        }
        generate(engine, &jobs, metrics);
    }
}

fn generate(engine: &dyn Engine, jobs: &[Job], metrics: &Metrics) {
    let requests: Vec<GenRequest> = jobs.iter().map(|j| j.request.clone()).collect();
    let mut on_token = |i: usize, piece: &str| -> TokenFlow {
        let Some(job) = jobs.get(i) else {
            return TokenFlow::Stop;
        };
        if Instant::now() >= job.deadline
            || job.events.send(Event::Token(piece.to_string())).is_err()
        {
            TokenFlow::Stop
        } else {
            TokenFlow::Continue
        }
    };
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        engine.generate_batch(&requests, &mut on_token)
    }));
    let outcome: Result<Vec<GenOutput>, String> = match result {
        Ok(Ok(outputs)) if outputs.len() == jobs.len() => Ok(outputs),
        Ok(Ok(outputs)) => Err(format!(
            "engine returned {} outputs for {} requests",
            outputs.len(),
            jobs.len()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("engine panicked while generating".into()),
    };
    match outcome {
        Ok(outputs) => {
            let prompt = outputs.iter().map(|o| o.prompt_tokens).sum();
            let generated = outputs.iter().map(|o| o.completion_tokens).sum();
            metrics.observe_batch(jobs.len(), start.elapsed().as_secs_f64(), prompt, generated);
            for (job, out) in jobs.iter().zip(outputs) {
                let _ = job.events.send(Event::Done(Ok(out)));
            }
        }
        Err(message) => {
            tracing::error!(%message, batch = jobs.len(), "generation failed");
            for job in jobs {
                let _ = job.events.send(Event::Done(Err(message.clone())));
            }
        }
    }
}
