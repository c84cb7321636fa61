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
