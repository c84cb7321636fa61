//! Over a real 127.0.0.1 socket: graceful shutdown finishes in-flight requests, and the load
//! generator behind `medtune bench serve` counts successes and 429s.

mod common;

use common::{ScriptEngine, TestSafety};
use medtune_serve::loadtest::{self, LoadTestConfig};
use medtune_serve::{serve, AppState, ServeSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(
    engine: ScriptEngine,
    settings: ServeSettings,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<medtune_serve::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (state, worker) =
        AppState::new(Arc::new(engine), Some(Arc::new(TestSafety)), settings, None).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, state, worker, async {
        let _ = rx.await;
    }));
    (url, tx, handle)
}

/// One raw HTTP/1.1 request with `Connection: close`; returns the whole response text.
async fn raw_post(addr: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let settings = ServeSettings {
        batch_window: Duration::from_millis(1),
        ..ServeSettings::default()
    };
    let (url, stop, handle) = start(ScriptEngine::slow(100), settings).await;
    let addr = url.trim_start_matches("http://").to_string();
    let in_flight = tokio::spawn({
        let addr = addr.clone();
        async move {
            raw_post(
                &addr,
                "/generate",
                "{\"question\": \"one two three four five\", \"use_safety\": false}",
            )
            .await
        }
    });
    // Let the request reach the worker (6 tokens x 100 ms), then ask the server to stop.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t0 = Instant::now();
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("echo one two three four five"),
        "{response}"
    );
    handle.await.unwrap().expect("serve returns cleanly");
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the request"
    );
    // Nothing listens any more.
    assert!(TcpStream::connect(&addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_test_counts_successes_and_rejections() {
    let settings = ServeSettings {
        queue_capacity: 2,
        max_batch: 2,
        batch_window: Duration::from_millis(1),
        ..ServeSettings::default()
    };
    let (url, stop, handle) = start(ScriptEngine::slow(5), settings).await;
    let cfg = LoadTestConfig {
        url: url.clone(),
        clients: 16,
        duration: Duration::from_millis(800),
        max_tokens: 4,
        question: "a b c".into(),
        backoff: Duration::from_millis(20),
        api_key: None,
    };
    loadtest::wait_ready(&url, Duration::from_secs(5))
        .await
        .unwrap();
    let report = loadtest::run(&cfg).await.unwrap();
    assert!(report.ok > 0, "{report:?}");
    assert!(
        report.rejected_429 > 0,
        "16 clients on a queue of 2 must see 429s: {report:?}"
    );
    assert_eq!(report.transport_errors, 0, "{report:?}");
    assert!(report.other_status.is_empty(), "{report:?}");
    // "echo a b c" is 4 words; max_tokens 4.
    assert_eq!(report.completion_tokens, 4 * report.ok);
    let p50 = report.percentile_ms(50.0).unwrap();
    let p99 = report.percentile_ms(99.0).unwrap();
    assert!(p50 <= p99);
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
