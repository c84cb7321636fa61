//! `medtune bench serve`: a load test and latency benchmark of the server (not a test). Either
//! drives a running server (`--url`, loopback only; `--pid` for its peak RSS) or starts
//! `medtune serve` itself on a free 127.0.0.1 port, then prints throughput, P50/P95/P99 latency,
//! the 429 count and the server's peak RSS (VmHWM).

use anyhow::Context;
use clap::Args;
use medtune_serve::loadtest::{self, LoadTestConfig, LoadTestReport};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

/// Arguments of `medtune bench serve`.
#[derive(Args)]
pub struct BenchServeArgs {
    /// A running server (http://127.0.0.1:PORT); without it the command starts one.
    #[arg(long)]
    url: Option<String>,
    /// Process id of the server given by --url, for its peak RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Model of the server started by the command.
    #[arg(long, default_value = "models/smollm2-135m-instruct")]
    model: PathBuf,
    /// Adapter of the server started by the command.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// serve.toml of the server started by the command.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// How long clients send requests, e.g. 30s, 2m, 500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// max_tokens of each request.
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
    /// The question every client asks.
    #[arg(long, default_value = "What are common symptoms of type 2 diabetes?")]
    question: String,
    /// Pause of a client after a 429, in ms.
    #[arg(long, default_value_t = 100)]
    backoff_ms: u64,
    /// Environment variable holding the server's API key, if it needs one.
    #[arg(long)]
    api_key_env: Option<String>,
}

/// Parses `30s`, `2m`, `500ms` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (e.g. 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => x / 1000.0,
        "s" => x,
        "m" => x * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s or m)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A `medtune serve` child process, stopped with SIGTERM when dropped.
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let termed = Command::new("kill").args(["-TERM", &pid]).status();
        if termed.map(|s| s.success()).unwrap_or(false) {
            for _ in 0..100 {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(a: &BenchServeArgs) -> anyhow::Result<(ServerChild, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let exe = std::env::current_exe().context("locating the medtune binary")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--model",
    ])
    .arg(&a.model)
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some(adapter) = &a.adapter {
        cmd.arg("--adapter").arg(adapter);
    }
    if let Some(config) = &a.config {
        cmd.arg("--config").arg(config);
    }
    if let Some(var) = &a.api_key_env {
        cmd.args(["--api-key-env", var]);
    }
    let child = cmd.spawn().context("starting medtune serve")?;
    Ok((ServerChild(child), format!("http://127.0.0.1:{port}")))
}

fn print_report(a: &BenchServeArgs, url: &str, r: &LoadTestReport, rss: Option<(u32, u64)>) {
    let ms = |q: f64| {
        r.percentile_ms(q)
            .map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
    };
    println!(
        "medtune bench serve: {url}, {} clients, {:.0} s, max_tokens {}",
        a.clients,
        a.duration.as_secs_f64(),
        a.max_tokens
    );
    println!("  elapsed            {:.1} s", r.elapsed.as_secs_f64());
    println!(
        "  requests ok (200)  {} ({:.2} req/s)",
        r.ok,
        r.throughput_rps()
    );
    println!(
        "  generated tokens   {} ({:.1} tok/s)",
        r.completion_tokens,
        r.tokens_per_s()
    );
    println!(
        "  latency ms (200)   p50 {}  p95 {}  p99 {}",
        ms(50.0),
        ms(95.0),
        ms(99.0)
    );
    println!("  429 responses      {}", r.rejected_429);
    for (code, n) in &r.other_status {
        println!("  {code} responses      {n}");
    }
    println!("  transport errors   {}", r.transport_errors);
    match rss {
        Some((pid, kib)) => println!(
            "  server peak RSS    {:.1} MiB (VmHWM of pid {pid})",
            kib as f64 / 1024.0
        ),
        None => println!("  server peak RSS    n/a (pass --pid with --url)"),
    }
}

/// Runs `medtune bench serve`.
pub fn run(a: BenchServeArgs) -> anyhow::Result<ExitCode> {
    let api_key = match &a.api_key_env {
        Some(var) => Some(
            std::env::var(var).with_context(|| format!("--api-key-env {var}: variable not set"))?,
        ),
        None => None,
    };
    let (child, url, pid) = match &a.url {
        Some(url) => (None, url.clone(), a.pid),
        None => {
            let (child, url) = start_server(&a)?;
            let pid = child.0.id();
            (Some(child), url, Some(pid))
        }
    };
    loadtest::wait_ready_blocking(&url, Duration::from_secs(120))?;
    let cfg = LoadTestConfig {
        url: url.clone(),
        clients: a.clients,
        duration: a.duration,
        max_tokens: a.max_tokens,
        question: a.question.clone(),
        backoff: Duration::from_millis(a.backoff_ms),
        api_key,
    };
    let report = loadtest::run_blocking(&cfg)?;
    let rss = match pid {
        Some(pid) => Some((pid, super::peak_rss_kib(pid)?)),
        None => None,
    };
    drop(child);
    print_report(&a, &url, &report, rss);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
