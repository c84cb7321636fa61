//! One module per subcommand.
// subcommand modules (one line each):
pub mod bench_generate;
pub mod bench_serve;
pub mod bench_train;
pub mod data;
pub mod demo;
pub mod eval;
pub mod eval_manifest;
pub mod eval_metrics;
pub mod export;
pub mod generate;
pub mod lora_grads;
pub mod model;
pub mod progressive;
pub mod quant;
pub mod runs;
pub mod safety;
pub mod serve;
pub mod sweep;
pub mod train;
pub mod train_run;
pub mod verify;

/// Peak resident set size (VmHWM) of a process, in KiB, from /proc (Linux only); shared by the
/// bench commands.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path}: no VmHWM line"))
}
