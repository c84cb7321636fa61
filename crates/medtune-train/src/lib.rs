//! QLoRA training: loss, optimizers, schedules, the train loop, checkpoints and resume.
//!
//! # Main types
//! - [`optim::Optimizer`], implemented by [`optim::AdamW`] (PyTorch semantics) and
//!   [`optim::AdamW8bit`] (bitsandbytes' blockwise 8-bit states); their
//!   [`optim::OptimizerState`] saves and restores exactly (tensors + JSON).
//! - [`optim::Grads`] (one gradient per trainable `Var`) and [`optim::GradAccumulator`].
//! - [`clip::clip_grad_norm`]: global-norm clipping that returns the pre-clip norm.
//! - [`schedule::Schedule`]: constant / linear / cosine with warmup (steps or ratio).
//! - [`manifest::RunManifest`] (`manifest.json` in every run, checkpoint and adapter) and
//!   [`runs`]: find, read, summarise and compare run directories.
//!
//! # Example
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use medtune_train::optim::{AdamW, AdamWConfig, Grads, Optimizer};
//! use medtune_train::schedule::{Schedule, ScheduleKind, Warmup};
//! use medtune_train::clip::clip_grad_norm;
//!
//! let w = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu)?;
//! let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default())?;
//! let schedule = Schedule::new(ScheduleKind::Linear, 1e-2, Warmup::Steps(0), 10)?;
//! for step in 0..10 {
//!     let loss = w.as_tensor().sqr()?.sum_all()?; // minimise ‖w‖²
//!     let mut grads = Grads::from_store(&loss.backward()?, opt.params())?;
//!     clip_grad_norm(&mut grads, 1.0)?;
//!     opt.step(&grads, schedule.lr_at(step))?;
//! }
//! assert!(w.as_tensor().sqr()?.sum_all()?.to_scalar::<f32>()? < 5.0);
//! # Ok::<(), medtune_train::Error>(())
//! ```

pub mod audit;
pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod clip;
pub mod config;
mod error;
pub mod log;
pub mod lora_model;
pub mod manifest;
pub mod optim;
pub mod plot;
pub mod runs;
pub mod schedule;
pub mod sweep;
pub mod trainer;

pub use error::{Error, Result};
