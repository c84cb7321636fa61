//! Learning-rate schedules with warmup, with the formulas of transformers'
//! `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
//! `get_cosine_schedule_with_warmup` (half a cosine period).
//!
//! `step` is the number of optimizer updates already applied, so the first update uses
//! `lr_at(0)` (zero when there is warmup), as the HF Trainer does. With `w` warmup steps and `N`
//! total steps:
//! 1. warmup (`step < w`): `step / max(1, w)`;
//! 2. then `constant`: 1; `linear`: `max(0, (N − step) / max(1, N − w))`;
//!    `cosine`: `max(0, ½(1 + cos(π · (step − w) / max(1, N − w))))`.
//!
//! Warmup is given in steps or as a ratio of the total (`ceil(N · ratio)` steps, as
//! transformers' `get_warmup_steps`). A schedule is plain data: it serializes to JSON or TOML and
//! has no state besides the step counter the optimizer keeps.
//!
//! ```
//! use medtune_train::schedule::{Schedule, ScheduleKind, Warmup};
//! let s = Schedule::new(ScheduleKind::Cosine, 2e-4, Warmup::Ratio(0.1), 100)?;
//! assert_eq!(s.warmup_steps(), 10);
//! assert_eq!(s.lr_at(0), 0.0);
//! assert!((s.lr_at(10) - 2e-4).abs() < 1e-12);
//! # Ok::<(), medtune_train::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The shape of the decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warmup.
    Constant,
    /// Linear decay to zero at the last step.
    Linear,
    /// Half-period cosine decay to zero at the last step.
    Cosine,
}

/// Warmup length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    /// A number of optimizer steps.
    Steps(u64),
    /// A fraction of the total steps, in [0, 1].
    Ratio(f64),
}

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Decay shape.
    pub kind: ScheduleKind,
    /// Peak learning rate.
    pub base_lr: f64,
    /// Warmup length.
    pub warmup: Warmup,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
}

impl Schedule {
    /// A validated schedule.
    pub fn new(kind: ScheduleKind, base_lr: f64, warmup: Warmup, total_steps: u64) -> Result<Self> {
        let s = Schedule {
            kind,
            base_lr,
            warmup,
            total_steps,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the ranges (call after deserializing).
    pub fn validate(&self) -> Result<()> {
        if !self.base_lr.is_finite() || self.base_lr < 0.0 {
            return Err(Error::config(
                "schedule.base_lr",
                format!("{} must be a finite number >= 0", self.base_lr),
            ));
        }
        if self.total_steps == 0 {
            return Err(Error::config("schedule.total_steps", "must be > 0"));
        }
        match self.warmup {
            Warmup::Ratio(r) if !(0.0..=1.0).contains(&r) => Err(Error::config(
                "schedule.warmup.ratio",
                format!("{r} must be in [0, 1]"),
            )),
            Warmup::Steps(w) if w > self.total_steps => Err(Error::config(
                "schedule.warmup.steps",
                format!("{w} exceeds total_steps {}", self.total_steps),
            )),
            _ => Ok(()),
        }
    }

    /// Warmup length in steps.
    pub fn warmup_steps(&self) -> u64 {
        match self.warmup {
            Warmup::Steps(w) => w,
            Warmup::Ratio(r) => (self.total_steps as f64 * r).ceil() as u64,
        }
    }

    /// The factor applied to `base_lr` after `step` updates.
    pub fn multiplier(&self, step: u64) -> f64 {
        let w = self.warmup_steps();
        if step < w {
            return step as f64 / w.max(1) as f64;
        }
        let n = self.total_steps;
        let decay_steps = n.saturating_sub(w).max(1) as f64;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => (n as f64 - step as f64) / decay_steps,
            ScheduleKind::Cosine => {
                let progress = (step - w) as f64 / decay_steps;
                0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
        .max(0.0)
    }

    /// The learning rate for the update that follows `step` updates.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.multiplier(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn linear_warmup_then_decay() -> Result<()> {
        // w = 2, N = 10: 0, 0.5, then (10 - s) / 8
        let s = Schedule::new(ScheduleKind::Linear, 1.0, Warmup::Steps(2), 10)?;
        let got: Vec<f64> = (0..=11).map(|i| s.lr_at(i)).collect();
        let want = [
            0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0,
        ];
        assert!(got.iter().zip(want).all(|(a, b)| close(*a, b)), "{got:?}");
        Ok(())
    }

    #[test]
    fn cosine_with_warmup_ratio() -> Result<()> {
        // ratio 0.25 of 9 → ceil(2.25) = 3 warmup steps; then ½(1 + cos(π (s − 3) / 6))
        let s = Schedule::new(ScheduleKind::Cosine, 2.0, Warmup::Ratio(0.25), 9)?;
        assert_eq!(s.warmup_steps(), 3);
        assert!(close(s.lr_at(1), 2.0 / 3.0));
        assert!(close(s.lr_at(3), 2.0));
        assert!(close(s.lr_at(6), 1.0)); // halfway: cos(π/2) = 0
        assert!(close(
            s.lr_at(5),
            2.0 * 0.5 * (1.0 + (std::f64::consts::PI / 3.0).cos())
        ));
        assert!(close(s.lr_at(9), 0.0));
        Ok(())
    }

    #[test]
    fn constant_and_no_warmup() -> Result<()> {
        let s = Schedule::new(ScheduleKind::Constant, 3e-4, Warmup::Steps(0), 5)?;
        assert!((0..10).all(|i| close(s.lr_at(i), 3e-4)));
        let w = Schedule::new(ScheduleKind::Constant, 1.0, Warmup::Steps(4), 5)?;
        assert!(close(w.lr_at(1), 0.25) && close(w.lr_at(4), 1.0));
        Ok(())
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Schedule::new(ScheduleKind::Linear, 1.0, Warmup::Ratio(1.5), 10).is_err());
        assert!(Schedule::new(ScheduleKind::Linear, 1.0, Warmup::Steps(11), 10).is_err());
        assert!(Schedule::new(ScheduleKind::Linear, -1.0, Warmup::Steps(0), 10).is_err());
        assert!(Schedule::new(ScheduleKind::Linear, 1.0, Warmup::Steps(0), 0).is_err());
    }

    #[test]
    fn round_trips_through_json() -> Result<()> {
        let s = Schedule::new(ScheduleKind::Cosine, 1e-4, Warmup::Ratio(0.03), 1000)?;
        let json = serde_json::to_string(&s).map_err(|e| Error::config("json", e.to_string()))?;
        assert_eq!(
            json,
            r#"{"kind":"cosine","base_lr":0.0001,"warmup":{"ratio":0.03},"total_steps":1000}"#
        );
        let back: Schedule =
            serde_json::from_str(&json).map_err(|e| Error::config("json", e.to_string()))?;
        assert_eq!(back, s);
        Ok(())
    }
}
