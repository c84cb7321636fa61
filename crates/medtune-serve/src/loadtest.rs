//! Load generator for `medtune bench serve`: N concurrent keep-alive HTTP/1.1 clients send
//! non-streaming chat completions to a server on the loopback interface for a bounded time.
//!
//! Only loopback targets (`127.0.0.0/8`, `localhost`, `[::1]`) are accepted. A client that
//! gets 429 waits `backoff` before its next request, so rejected clients do not spin.

use crate::{Error, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTestConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Concurrent clients.
    pub clients: usize,
    /// How long clients keep sending (requests in flight at the end are awaited).
    pub duration: Duration,
    /// `max_tokens` of each request.
    pub max_tokens: usize,
    /// The question each client asks.
    pub question: String,
    /// Pause after a 429 before the next request.
    pub backoff: Duration,
    /// Optional bearer key.
    pub api_key: Option<String>,
}

/// Figures from one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTestReport {
    /// Wall time from first request to last response.
    pub elapsed: Duration,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered 429.
    pub rejected_429: u64,
    /// Other statuses by code.
    pub other_status: BTreeMap<u16, u64>,
    /// Connection or protocol failures.
    pub transport_errors: u64,
    /// Completion tokens reported by the server over all 200 responses.
    pub completion_tokens: u64,
    /// Latencies of 200 responses, sorted, milliseconds.
    pub latencies_ms: Vec<f64>,
}

impl LoadTestReport {
    /// Successful requests per second.
    pub fn throughput_rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second over successful requests.
    pub fn tokens_per_s(&self) -> f64 {
        self.completion_tokens as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile `q` in 0..=100 (nearest rank) of 200 responses, ms.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let n = self.latencies_ms.len();
        let rank = ((q / 100.0) * n as f64).ceil() as usize;
        self.latencies_ms.get(rank.clamp(1, n) - 1).copied()
    }
}

/// Resolves `url` to a loopback socket address, refusing anything else.
pub fn loopback_addr(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::LoadTest(format!("url {url:?}: only http:// is supported")))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| Error::LoadTest(format!("url {url:?}: {e}")))?
        .find(|a| is_loopback(a.ip()))
        .ok_or_else(|| {
            Error::LoadTest(format!(
                "url {url:?}: only loopback addresses (127.0.0.0/8, localhost, [::1]) are allowed"
            ))
        })?;
    Ok((addr, authority.to_string()))
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[derive(Debug, Default)]
struct ClientTally {
    ok: u64,
    rejected: u64,
    other: BTreeMap<u16, u64>,
    transport_errors: u64,
    tokens: u64,
    latencies_ms: Vec<f64>,
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn completion_tokens(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["usage"]["completion_tokens"].as_u64())
        .unwrap_or(0)
}

async fn client(
    addr: SocketAddr,
    authority: String,
    body: Bytes,
    cfg: LoadTestConfig,
    stop_at: Instant,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < stop_at {
        let s = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(addr).await {
                Ok(s) => s,
                Err(_) => {
                    tally.transport_errors += 1;
                    tokio::time::sleep(cfg.backoff).await;
                    continue;
                }
            },
        };
        let mut s = s;
        let mut builder = hyper::Request::post("/v1/chat/completions")
            .header("host", authority.as_str())
            .header("content-type", "application/json");
        if let Some(key) = &cfg.api_key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let Ok(request) = builder.body(Full::new(body.clone())) else {
            tally.transport_errors += 1;
            break;
        };
        let start = Instant::now();
        let response = match s.send_request(request).await {
            Ok(r) => r,
            Err(_) => {
                tally.transport_errors += 1;
                continue;
            }
        };
        let status = response.status().as_u16();
        let bytes = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                tally.transport_errors += 1;
                continue;
            }
        };
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        sender = Some(s);
        match status {
            200 => {
                tally.ok += 1;
                tally.tokens += completion_tokens(&bytes);
                tally.latencies_ms.push(ms);
            }
            429 => {
                tally.rejected += 1;
                tokio::time::sleep(cfg.backoff).await;
            }
            other => *tally.other.entry(other).or_default() += 1,
        }
    }
    tally
}

/// Runs the load test and gathers the figures.
pub async fn run(cfg: &LoadTestConfig) -> Result<LoadTestReport> {
    if cfg.clients == 0 {
        return Err(Error::LoadTest("clients must be at least 1".into()));
    }
    let (addr, authority) = loopback_addr(&cfg.url)?;
    // Fail fast when nothing listens.
    connect(addr)
        .await
        .map_err(|e| Error::LoadTest(format!("cannot connect to {addr}: {e}")))?;
    let body = Bytes::from(
        serde_json::json!({
            "messages": [{"role": "user", "content": cfg.question}],
            "max_tokens": cfg.max_tokens,
            "temperature": 0.0,
        })
        .to_string(),
    );
    let start = Instant::now();
    let stop_at = start + cfg.duration;
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|_| {
            tokio::spawn(client(
                addr,
                authority.clone(),
                body.clone(),
                cfg.clone(),
                stop_at,
            ))
        })
        .collect();
    let mut report = LoadTestReport {
        elapsed: Duration::ZERO,
        ok: 0,
        rejected_429: 0,
        other_status: BTreeMap::new(),
        transport_errors: 0,
        completion_tokens: 0,
        latencies_ms: Vec::new(),
    };
    for task in tasks {
        let t = task
            .await
            .map_err(|e| Error::LoadTest(format!("client task failed: {e}")))?;
        report.ok += t.ok;
        report.rejected_429 += t.rejected;
        report.transport_errors += t.transport_errors;
        report.completion_tokens += t.tokens;
        report.latencies_ms.extend(t.latencies_ms);
        for (code, n) in t.other {
            *report.other_status.entry(code).or_default() += n;
        }
    }
    report.elapsed = start.elapsed();
    report.latencies_ms.sort_by(f64::total_cmp);
    Ok(report)
}

async fn health_ok(addr: SocketAddr, authority: &str) -> bool {
    let Ok(mut sender) = connect(addr).await else {
        return false;
    };
    let Ok(request) = hyper::Request::get("/health")
        .header("host", authority)
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    matches!(sender.send_request(request).await, Ok(r) if r.status().is_success())
}

/// Polls `GET /health` until it answers 200, or fails after `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration) -> Result<()> {
    let (addr, authority) = loopback_addr(url)?;
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if health_ok(addr, &authority).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::LoadTest(format!(
        "{url}/health did not answer 200 within {} s",
        timeout.as_secs()
    )))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::LoadTest(format!("cannot start the async runtime: {e}")))
}

/// [`wait_ready`] on its own runtime.
pub fn wait_ready_blocking(url: &str, timeout: Duration) -> Result<()> {
    runtime()?.block_on(wait_ready(url, timeout))
}

/// [`run`] on its own runtime.
pub fn run_blocking(cfg: &LoadTestConfig) -> Result<LoadTestReport> {
    runtime()?.block_on(run(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert!(loopback_addr("http://127.0.0.1:8080").is_ok());
        assert!(loopback_addr("http://localhost:8080/").is_ok());
        assert!(loopback_addr("http://10.0.0.1:8080").is_err());
        assert!(loopback_addr("https://127.0.0.1:8080").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let r = LoadTestReport {
            elapsed: Duration::from_secs(2),
            ok: 100,
            rejected_429: 0,
            other_status: BTreeMap::new(),
            transport_errors: 0,
            completion_tokens: 400,
            latencies_ms: (1..=100).map(f64::from).collect(),
        };
        assert_eq!(r.percentile_ms(50.0), Some(50.0));
        assert_eq!(r.percentile_ms(95.0), Some(95.0));
        assert_eq!(r.percentile_ms(99.0), Some(99.0));
        assert_eq!(r.throughput_rps(), 50.0);
        assert_eq!(r.tokens_per_s(), 200.0);
    }
}
