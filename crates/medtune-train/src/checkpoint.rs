//! Checkpoints: everything an exact resume needs, written atomically.
//!
//! ```text
//! <run>/checkpoints/step-000120/
//!     adapter/                 PEFT files (adapter_config.json, adapter_model.safetensors)
//!     optimizer.safetensors    optimizer moments
//!     optimizer.json           optimizer step counter, hyperparameters, parameter list
//!     trainer_state.json       step, data position, best eval loss, early-stopping counter
//!     manifest.json            the run's provenance and its metrics at this step (when known)
//! <run>/best/                  the checkpoint with the lowest eval loss so far (same layout)
//! ```
//! Each directory is written under a temporary name and renamed into place, so a run killed
//! mid-save leaves the previous checkpoint intact.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::manifest::RunManifest;
use crate::optim::{Optimizer, OptimizerMeta, OptimizerState};
use crate::{Error, Result};

/// Where the loop stands; restored on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Epoch of the next example.
    pub epoch: u64,
    /// Position of the next example in that epoch's shuffled order.
    pub cursor: usize,
    /// Lowest eval loss seen, and its step.
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Evaluations since the last improvement (early stopping).
    pub evals_without_improvement: usize,
    /// sha256 of the resolved run configuration (a resume with other settings is refused).
    pub config_sha256: String,
}

/// Writes a checkpoint directory for `state` at `dest` (atomically), with `manifest` as its
/// `manifest.json` when given.
pub fn save(
    dest: &Path,
    state: &TrainerState,
    optimizer: &dyn Optimizer,
    save_adapter: &dyn Fn(&Path) -> Result<()>,
    manifest: Option<&RunManifest>,
) -> Result<()> {
    write_dir_atomic(dest, |tmp| {
        save_adapter(&tmp.join("adapter"))?;
        let opt = optimizer.state()?;
        candle_core::safetensors::save(&opt.tensors, tmp.join("optimizer.safetensors"))?;
        write_json(&tmp.join("optimizer.json"), &opt.meta)?;
        write_json(&tmp.join("trainer_state.json"), state)?;
        manifest.map_or(Ok(()), |m| m.write(tmp))
    })
}

/// Reads the trainer state and optimizer state of a checkpoint (the adapter is read by the
/// caller from `<dir>/adapter`).
pub fn load(dir: &Path, device: &candle_core::Device) -> Result<(TrainerState, OptimizerState)> {
    let state: TrainerState = read_json(&dir.join("trainer_state.json"))?;
    let meta: OptimizerMeta = read_json(&dir.join("optimizer.json"))?;
    let path = dir.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&path, device).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((state, OptimizerState { tensors, meta }))
}

/// The step checkpoint with the highest step under `<run>/checkpoints`, if any.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    step_dirs(run_dir).into_iter().last().map(|(_, p)| p)
}

/// Step checkpoints of a run, oldest first.
pub fn step_dirs(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(run_dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Path of the checkpoint of `step`.
pub fn step_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step:06}"))
}

/// Removes the oldest step checkpoints so that at most `keep` remain (0: keep all).
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let dirs = step_dirs(run_dir);
    for (_, p) in dirs.iter().take(dirs.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

/// Builds a directory under a temporary name beside `dest`, then swaps it into place.
pub fn write_dir_atomic(dest: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = build(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old{}", std::process::id()));
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(dest, &old).map_err(|e| Error::io(dest, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Copies a directory tree (files and subdirectories).
pub fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::io(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_dir_replaces_and_failed_build_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("best");
        write_dir_atomic(&dest, |t| {
            std::fs::write(t.join("a"), "1").map_err(|e| Error::io(t, e))
        })
        .unwrap();
        write_dir_atomic(&dest, |t| {
            std::fs::write(t.join("a"), "2").map_err(|e| Error::io(t, e))
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "2");
        let r = write_dir_atomic(&dest, |_| Err(Error::Audit("boom".into())));
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "2");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "temporary directories left behind");
    }

    #[test]
    fn latest_and_prune_follow_step_order() {
        let dir = tempfile::tempdir().unwrap();
        for s in [5u64, 10, 15] {
            let d = step_dir(dir.path(), s);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("trainer_state.json"), "{}").unwrap();
        }
        assert_eq!(latest(dir.path()).unwrap(), step_dir(dir.path(), 15));
        prune(dir.path(), 2).unwrap();
        let steps: Vec<u64> = step_dirs(dir.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![10, 15]);
    }
}
