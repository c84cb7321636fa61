//! Hyperparameter sweeps: the sweep file (`medtune sweep --config sweep.toml`), the trials it
//! asks for (a full grid, or seeded random points of that grid), and the ranking of finished
//! trials by eval loss.
//!
//! ```toml
//! base_config = "../smollm2-135m/medquad-qlora.toml"   # a run config, relative to this file
//! method = "random"                                     # or "grid"
//! trials = 6
//! seed = 7
//! trial_steps = 30
//! [space]
//! lr = [1e-4, 2e-4, 5e-4]
//! r = [4, 8, 16]
//! lora_alpha = [16.0, 32.0]
//! lora_dropout = [0.0, 0.05]
//! target_modules = [["q_proj", "v_proj"], ["all-linear"]]
//! ```
//!
//! A dimension left out of `[space]` keeps the base config's value. The library only plans and
//! ranks; the CLI trains each trial as a short run of the base config with the trial's settings
//! given as `section.key=value` overrides ([`Trial::overrides`]).

use crate::config::ConfigError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How trials are chosen from `[space]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every point of the Cartesian product, in a fixed order.
    Grid,
    /// `trials` distinct points of the product, drawn without replacement with `seed`.
    Random,
}

impl Method {
    /// Lower-case name as written in the sweep file.
    pub fn name(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
        }
    }
}

/// `[space]`: the values each hyperparameter may take (empty or absent: the base value).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Space {
    /// Peak learning rates (`optim.lr`).
    pub lr: Vec<f64>,
    /// LoRA ranks (`lora.r`).
    pub r: Vec<usize>,
    /// LoRA scale numerators (`lora.lora_alpha`).
    pub lora_alpha: Vec<f64>,
    /// Adapter dropout probabilities (`lora.lora_dropout`).
    pub lora_dropout: Vec<f64>,
    /// Target module lists (`lora.target_modules`), one list per choice.
    pub target_modules: Vec<Vec<String>>,
}

/// The sweep file as written (before paths are resolved).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    base_config: PathBuf,
    method: Method,
    #[serde(default)]
    trials: Option<usize>,
    #[serde(default = "default_seed")]
    seed: u64,
    trial_steps: usize,
    #[serde(default)]
    trial_overrides: Vec<String>,
    #[serde(default)]
    output_dir: Option<PathBuf>,
    #[serde(default)]
    space: Space,
}

fn default_seed() -> u64 {
    42
}

/// A validated sweep configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// The run config every trial starts from (resolved against the sweep file's folder).
    pub base_config: PathBuf,
    /// Grid or random.
    pub method: Method,
    /// Random: how many points to draw. Grid: the grid size (checked against `trials` if given).
    pub trials: usize,
    /// Seed of the random draw (trials keep the base config's `train.seed`).
    pub seed: u64,
    /// `train.max_steps` of every trial.
    pub trial_steps: usize,
    /// Extra `section.key=value` overrides for trials only (e.g. a smaller eval set); the
    /// continued best run does not get them.
    pub trial_overrides: Vec<String>,
    /// Sweep directory; `None`: `runs/sweep/<file stem>`.
    pub output_dir: Option<PathBuf>,
    /// The search space.
    pub space: Space,
}

/// One point of the space; `None` keeps the base config's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// 0-based position in the sweep.
    pub index: usize,
    pub lr: Option<f64>,
    pub r: Option<usize>,
    pub lora_alpha: Option<f64>,
    pub lora_dropout: Option<f64>,
    pub target_modules: Option<Vec<String>>,
}

impl Trial {
    /// Directory name of the trial inside the sweep directory (`trial-000`, ...).
    pub fn name(&self) -> String {
        format!("trial-{:03}", self.index)
    }

    /// The trial's settings as run-config overrides (`optim.lr=0.0002`, ...), values in TOML
    /// syntax so they keep their types.
    pub fn overrides(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(x) = self.lr {
            v.push(format!("optim.lr={}", toml::Value::Float(x)));
        }
        if let Some(x) = self.r {
            v.push(format!("lora.r={x}"));
        }
        if let Some(x) = self.lora_alpha {
            v.push(format!("lora.lora_alpha={}", toml::Value::Float(x)));
        }
        if let Some(x) = self.lora_dropout {
            v.push(format!("lora.lora_dropout={}", toml::Value::Float(x)));
        }
        if let Some(m) = &self.target_modules {
            let arr = toml::Value::Array(m.iter().cloned().map(toml::Value::String).collect());
            v.push(format!("lora.target_modules={arr}"));
        }
        v
    }

    /// A short human-readable summary (`lr=2e-4 r=8 ...`), only of the swept dimensions.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(x) = self.lr {
            parts.push(format!("lr={x:e}"));
        }
        if let Some(x) = self.r {
            parts.push(format!("r={x}"));
        }
        if let Some(x) = self.lora_alpha {
            parts.push(format!("alpha={x}"));
        }
        if let Some(x) = self.lora_dropout {
            parts.push(format!("dropout={x}"));
        }
        if let Some(m) = &self.target_modules {
            parts.push(format!("targets={}", m.join("+")));
        }
        if parts.is_empty() {
            "base".into()
        } else {
            parts.join(" ")
        }
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl SweepConfig {
    /// Reads and validates a sweep file; `base_config` is resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::from_toml_str(&text, &path.display().to_string())?;
        if cfg.base_config.is_relative() {
            let dir = path.parent().unwrap_or(Path::new(""));
            cfg.base_config = dir.join(&cfg.base_config);
        }
        Ok(cfg)
    }

    /// Parses and validates sweep TOML (`origin` names it in errors); paths stay as written.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawSweep = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let s = &raw.space;
        for (i, &x) in s.lr.iter().enumerate() {
            if !(x > 0.0 && x.is_finite()) {
                return Err(invalid(
                    format!("space.lr[{i}]"),
                    format!("{x} is not a positive number"),
                ));
            }
        }
        for (i, &x) in s.r.iter().enumerate() {
            if x == 0 {
                return Err(invalid(format!("space.r[{i}]"), "must be at least 1"));
            }
        }
        for (i, &x) in s.lora_alpha.iter().enumerate() {
            if !(x > 0.0 && x.is_finite()) {
                return Err(invalid(
                    format!("space.lora_alpha[{i}]"),
                    format!("{x} is not a positive number"),
                ));
            }
        }
        for (i, &x) in s.lora_dropout.iter().enumerate() {
            if !(0.0..1.0).contains(&x) {
                return Err(invalid(
                    format!("space.lora_dropout[{i}]"),
                    format!("{x} is not in [0, 1)"),
                ));
            }
        }
        for (i, m) in s.target_modules.iter().enumerate() {
            if m.is_empty() || m.iter().any(|n| n.trim().is_empty()) {
                return Err(invalid(
                    format!("space.target_modules[{i}]"),
                    "name at least one module (no empty names) or [\"all-linear\"]",
                ));
            }
        }
        if raw.trial_steps == 0 {
            return Err(invalid("trial_steps", "must be at least 1"));
        }
        for (i, o) in raw.trial_overrides.iter().enumerate() {
            if !o.contains('=') {
                return Err(invalid(
                    format!("trial_overrides[{i}]"),
                    format!("`{o}`: expected `section.key=value`"),
                ));
            }
        }
        let size = grid_size(s);
        let trials = match (raw.method, raw.trials) {
            (Method::Random, None) => {
                return Err(invalid("trials", "required with method = \"random\""))
            }
            (Method::Random, Some(0)) => return Err(invalid("trials", "must be at least 1")),
            (Method::Random, Some(n)) if n > size => {
                return Err(invalid(
                    "trials",
                    format!("{n} distinct points asked for, but [space] has only {size}"),
                ))
            }
            (Method::Random, Some(n)) => n,
            (Method::Grid, Some(n)) if n != size => {
                return Err(invalid(
                    "trials",
                    format!(
                        "the grid has {size} points; leave `trials` out or set it to {size} (use method = \"random\" to run fewer)"
                    ),
                ))
            }
            (Method::Grid, _) => size,
        };
        Ok(SweepConfig {
            base_config: raw.base_config,
            method: raw.method,
            trials,
            seed: raw.seed,
            trial_steps: raw.trial_steps,
            trial_overrides: raw.trial_overrides,
            output_dir: raw.output_dir,
            space: raw.space,
        })
    }

    /// The trials to run, in order (see [`grid`] and [`random_points`]).
    pub fn trials(&self) -> Vec<Trial> {
        match self.method {
            Method::Grid => grid(&self.space),
            Method::Random => random_points(&self.space, self.trials, self.seed),
        }
    }
}

/// Number of points of the product (a left-out dimension counts as one value).
pub fn grid_size(space: &Space) -> usize {
    [
        space.lr.len(),
        space.r.len(),
        space.lora_alpha.len(),
        space.lora_dropout.len(),
        space.target_modules.len(),
    ]
    .iter()
    .map(|&n| n.max(1))
    .product()
}

/// The point at `flat` of the product in row-major order: `lr` varies slowest, then `r`,
/// `lora_alpha`, `lora_dropout`, and `target_modules` fastest.
fn point(space: &Space, flat: usize, index: usize) -> Trial {
    let dims = [
        space.target_modules.len(),
        space.lora_dropout.len(),
        space.lora_alpha.len(),
        space.r.len(),
        space.lr.len(),
    ];
    let mut rest = flat;
    let mut pick = [0usize; 5];
    for (k, &n) in dims.iter().enumerate() {
        let n = n.max(1);
        pick[k] = rest % n;
        rest /= n;
    }
    Trial {
        index,
        target_modules: space.target_modules.get(pick[0]).cloned(),
        lora_dropout: space.lora_dropout.get(pick[1]).copied(),
        lora_alpha: space.lora_alpha.get(pick[2]).copied(),
        r: space.r.get(pick[3]).copied(),
        lr: space.lr.get(pick[4]).copied(),
    }
}

/// Every point of the product, `lr` outermost and `target_modules` innermost.
pub fn grid(space: &Space) -> Vec<Trial> {
    (0..grid_size(space)).map(|i| point(space, i, i)).collect()
}

/// `n` distinct points of the product (at most its size), drawn without replacement with a
/// ChaCha8 generator seeded by `seed`; the same seed gives the same trials.
pub fn random_points(space: &Space, n: usize, seed: u64) -> Vec<Trial> {
    let mut order: Vec<usize> = (0..grid_size(space)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    order
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, flat)| point(space, flat, i))
        .collect()
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialOutcome {
    /// The trial.
    pub trial: Trial,
    /// Lowest eval loss of the run (`None` without eval data or when it failed).
    pub best_eval_loss: Option<f64>,
    /// Mean training loss of the last step.
    pub final_train_loss: Option<f64>,
    /// Optimizer steps done.
    pub steps: u64,
    /// Seconds spent.
    pub elapsed_s: f64,
    /// The error that stopped the run, if any.
    pub error: Option<String>,
}

/// A trial with its place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// 1-based rank; valid trials first.
    pub rank: usize,
    /// The outcome.
    pub outcome: TrialOutcome,
    /// Why the trial is ranked last (failed, non-finite or missing eval loss); `None` when valid.
    pub flag: Option<String>,
}

impl Ranked {
    /// Whether the trial has a usable eval loss.
    pub fn is_valid(&self) -> bool {
        self.flag.is_none()
    }
}

fn flag_of(o: &TrialOutcome) -> Option<String> {
    if let Some(e) = &o.error {
        return Some(format!("failed: {e}"));
    }
    match o.best_eval_loss {
        None => Some("no eval loss (no eval data?)".into()),
        Some(x) if !x.is_finite() => Some(format!("non-finite eval loss ({x})")),
        Some(_) => None,
    }
}

/// Ranks outcomes by best eval loss, lowest first (ties keep trial order); failed trials and
/// trials without a finite eval loss come last, in trial order, each with a flag.
pub fn rank(outcomes: Vec<TrialOutcome>) -> Vec<Ranked> {
    let (mut good, mut bad): (Vec<_>, Vec<_>) = outcomes
        .into_iter()
        .map(|o| (flag_of(&o), o))
        .partition(|(f, _)| f.is_none());
    good.sort_by(|(_, a), (_, b)| {
        let (x, y) = (
            a.best_eval_loss.unwrap_or(f64::INFINITY),
            b.best_eval_loss.unwrap_or(f64::INFINITY),
        );
        x.total_cmp(&y).then(a.trial.index.cmp(&b.trial.index))
    });
    bad.sort_by_key(|(_, o)| o.trial.index);
    good.into_iter()
        .chain(bad)
        .enumerate()
        .map(|(i, (flag, outcome))| Ranked {
            rank: i + 1,
            outcome,
            flag,
        })
        .collect()
}

/// Column names of `sweep_results.csv`.
pub const CSV_COLUMNS: [&str; 12] = [
    "rank",
    "trial",
    "lr",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "best_eval_loss",
    "final_train_loss",
    "steps",
    "elapsed_s",
    "flag",
];

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// One CSV row per ranked trial (empty cells for dimensions that were not swept).
pub fn csv_rows(ranked: &[Ranked]) -> Vec<Vec<String>> {
    ranked
        .iter()
        .map(|r| {
            let o = &r.outcome;
            let t = &o.trial;
            vec![
                r.rank.to_string(),
                t.name(),
                opt(t.lr),
                opt(t.r),
                opt(t.lora_alpha),
                opt(t.lora_dropout),
                t.target_modules
                    .as_ref()
                    .map(|m| m.join("+"))
                    .unwrap_or_default(),
                opt(o.best_eval_loss),
                opt(o.final_train_loss),
                o.steps.to_string(),
                format!("{:.1}", o.elapsed_s),
                r.flag.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// The ranking as CSV text (fields with commas, quotes or newlines are quoted).
pub fn to_csv(ranked: &[Ranked]) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for row in csv_rows(ranked) {
        let cells: Vec<String> = row.iter().map(|c| quote(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The ranking as a markdown table.
pub fn to_markdown(ranked: &[Ranked]) -> String {
    let mut out = String::from(
        "| rank | trial | settings | best eval loss | final train loss | steps | s | flag |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in ranked {
        let o = &r.outcome;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            r.rank,
            o.trial.name(),
            o.trial.describe(),
            o.best_eval_loss
                .map(|x| format!("{x:.4}"))
                .unwrap_or_else(|| "-".into()),
            o.final_train_loss
                .map(|x| format!("{x:.4}"))
                .unwrap_or_else(|| "-".into()),
            o.steps,
            o.elapsed_s,
            r.flag
                .as_deref()
                .map(|f| f.replace('|', "\\|").replace('\n', " "))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Space {
        Space {
            lr: vec![1e-4, 2e-4],
            r: vec![4, 8, 16],
            lora_alpha: vec![],
            lora_dropout: vec![0.0, 0.1],
            target_modules: vec![vec!["q_proj".into()], vec!["all-linear".into()]],
        }
    }

    #[test]
    fn grid_has_every_point_in_row_major_order() {
        let g = grid(&space());
        assert_eq!(g.len(), 2 * 3 * 2 * 2);
        assert_eq!(grid_size(&space()), 24);
        // Fastest: target_modules, then dropout, then r; lr slowest.
        assert_eq!(g[0].lr, Some(1e-4));
        assert_eq!(g[0].r, Some(4));
        assert_eq!(g[0].lora_dropout, Some(0.0));
        assert_eq!(g[0].target_modules, Some(vec!["q_proj".to_string()]));
        assert_eq!(g[1].target_modules, Some(vec!["all-linear".to_string()]));
        assert_eq!(g[1].lora_dropout, Some(0.0));
        assert_eq!(g[2].lora_dropout, Some(0.1));
        assert_eq!(g[4].r, Some(8));
        assert_eq!(g[11].lr, Some(1e-4));
        assert_eq!(g[12].lr, Some(2e-4));
        assert_eq!(g[12].r, Some(4));
        assert!(g.iter().all(|t| t.lora_alpha.is_none()));
        assert!(g.iter().enumerate().all(|(i, t)| t.index == i));
        // All distinct.
        for i in 0..g.len() {
            for j in i + 1..g.len() {
                assert_ne!(g[i].overrides(), g[j].overrides());
            }
        }
    }

    #[test]
    fn empty_space_is_one_base_trial() {
        let g = grid(&Space::default());
        assert_eq!(g.len(), 1);
        assert!(g[0].overrides().is_empty());
        assert_eq!(g[0].describe(), "base");
    }

    #[test]
    fn random_is_seeded_distinct_and_within_the_grid() {
        let a = random_points(&space(), 5, 7);
        let b = random_points(&space(), 5, 7);
        let c = random_points(&space(), 5, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 5);
        let all: Vec<Vec<String>> = grid(&space()).iter().map(Trial::overrides).collect();
        for (i, t) in a.iter().enumerate() {
            assert_eq!(t.index, i);
            assert!(all.contains(&t.overrides()));
            for u in &a[i + 1..] {
                assert_ne!(t.overrides(), u.overrides());
            }
        }
        // Asking for the whole grid gives a permutation of it.
        let full = random_points(&space(), 24, 1);
        let mut got: Vec<Vec<String>> = full.iter().map(Trial::overrides).collect();
        let mut want = all.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn overrides_are_valid_run_config_settings() {
        let t = &grid(&space())[13];
        let cfg = crate::config::TrainConfig::from_toml_str("", "t", &t.overrides()).unwrap();
        assert_eq!(cfg.optim.lr, 2e-4);
        assert_eq!(cfg.lora.r, 4);
        assert_eq!(cfg.lora.lora_dropout, 0.0);
        assert_eq!(cfg.lora.target_modules, vec!["all-linear"]);
    }

    fn outcome(index: usize, loss: Option<f64>, error: Option<&str>) -> TrialOutcome {
        TrialOutcome {
            trial: Trial {
                index,
                lr: None,
                r: None,
                lora_alpha: None,
                lora_dropout: None,
                target_modules: None,
            },
            best_eval_loss: loss,
            final_train_loss: None,
            steps: 2,
            elapsed_s: 0.0,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn ranking_puts_failed_and_nan_last_and_flags_them() {
        let ranked = rank(vec![
            outcome(0, Some(2.5), None),
            outcome(1, Some(f64::NAN), None),
            outcome(2, None, Some("out of memory")),
            outcome(3, Some(1.5), None),
            outcome(4, Some(2.5), None),
            outcome(5, None, None),
            outcome(6, Some(f64::INFINITY), None),
        ]);
        let order: Vec<usize> = ranked.iter().map(|r| r.outcome.trial.index).collect();
        assert_eq!(order, vec![3, 0, 4, 1, 2, 5, 6]);
        let ranks: Vec<usize> = ranked.iter().map(|r| r.rank).collect();
        assert_eq!(ranks, (1..=7).collect::<Vec<_>>());
        assert!(ranked[..3].iter().all(Ranked::is_valid));
        assert!(ranked[3].flag.as_deref().unwrap().contains("non-finite"));
        assert!(ranked[4].flag.as_deref().unwrap().contains("out of memory"));
        assert!(ranked[5].flag.as_deref().unwrap().contains("no eval loss"));
        let csv = to_csv(&ranked);
        assert_eq!(csv.lines().count(), 8);
        assert!(csv.lines().nth(1).unwrap().starts_with("1,trial-003,"));
        let md = to_markdown(&ranked);
        assert!(md.contains("| 1 | trial-003 |"));
    }

    const GOOD: &str = r#"
base_config = "run.toml"
method = "grid"
trial_steps = 2
[space]
lr = [1e-4, 2e-4]
target_modules = [["q_proj"], ["q_proj", "v_proj"]]
"#;

    #[test]
    fn parses_and_counts() {
        let c = SweepConfig::from_toml_str(GOOD, "s.toml").unwrap();
        assert_eq!(c.trials, 4);
        assert_eq!(c.trials().len(), 4);
        assert_eq!(c.seed, 42);
        let r = SweepConfig::from_toml_str(
            &GOOD.replace("\"grid\"", "\"random\"\ntrials = 3"),
            "s.toml",
        )
        .unwrap();
        assert_eq!(r.trials().len(), 3);
    }

    fn err(text: &str) -> String {
        SweepConfig::from_toml_str(text, "s.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let m = err(&GOOD.replace("trial_steps", "trial_stepz"));
        assert!(m.contains("s.toml") && m.contains("trial_stepz"), "{m}");
        let m = err(&GOOD.replace("base_config = \"run.toml\"", ""));
        assert!(m.contains("base_config"), "{m}");
        let m = err(&GOOD.replace("\"grid\"", "\"bayes\""));
        assert!(m.contains("method") || m.contains("bayes"), "{m}");
        let m = err(&GOOD.replace("lr = [1e-4, 2e-4]", "lr = [1e-4, -2e-4]"));
        assert!(m.contains("space.lr[1]"), "{m}");
        let m = err(&GOOD.replace("lr = [1e-4, 2e-4]", "learning_rate = [1e-4]"));
        assert!(m.contains("learning_rate"), "{m}");
        let m = err(&GOOD.replace("lr = [1e-4, 2e-4]", "lora_dropout = [1.0]"));
        assert!(m.contains("space.lora_dropout[0]"), "{m}");
        let m = err(&GOOD.replace("lr = [1e-4, 2e-4]", "r = [0]"));
        assert!(m.contains("space.r[0]"), "{m}");
        let m = err(&GOOD.replace("[\"q_proj\"], ", "[], "));
        assert!(m.contains("space.target_modules[0]"), "{m}");
        let m = err(&GOOD.replace("trial_steps = 2", "trial_steps = 0"));
        assert!(m.contains("trial_steps"), "{m}");
        let m = err(&GOOD.replace("\"grid\"", "\"random\""));
        assert!(m.contains("trials"), "{m}");
        let m = err(&GOOD.replace("\"grid\"", "\"random\"\ntrials = 5"));
        assert!(m.contains("trials") && m.contains("only 4"), "{m}");
        let m = err(&GOOD.replace("\"grid\"", "\"grid\"\ntrials = 3"));
        assert!(m.contains("trials"), "{m}");
        let m = err(&GOOD.replace(
            "trial_steps = 2",
            "trial_steps = 2\ntrial_overrides = [\"x\"]",
        ));
        assert!(m.contains("trial_overrides[0]"), "{m}");
        let m = err(&GOOD.replace("lr = [1e-4, 2e-4]", "lr = [\"fast\"]"));
        assert!(m.contains("s.toml"), "{m}");
    }

    #[test]
    fn load_resolves_base_config_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sweep.toml");
        std::fs::write(&p, GOOD).unwrap();
        let c = SweepConfig::load(&p).unwrap();
        assert_eq!(c.base_config, dir.path().join("run.toml"));
        let missing = SweepConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"));
    }
}
