//! One module per subcommand.
// subcommand modules (one line each):
pub mod model;
pub mod generate;
pub mod bench_generate;
pub mod safety;
pub mod quant;
pub mod data;
