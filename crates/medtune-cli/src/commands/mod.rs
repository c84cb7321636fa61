//! One module per subcommand.
// subcommand modules (one line each):
pub mod lora_grads;
pub mod export;
pub mod eval_metrics;
pub mod serve;
pub mod bench_serve;
pub mod model;
pub mod generate;
pub mod bench_generate;
pub mod bench_train;
pub mod verify;
pub mod safety;
pub mod quant;
pub mod data;
pub mod train;
pub mod demo;
