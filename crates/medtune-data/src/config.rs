//! The data config (`data.toml`): sources, cleaning, split, augmentation and prompt settings.
//!
//! Parsed with `deny_unknown_fields` everywhere, so a misspelt key is an error, then validated
//! once by [`DataConfig::validate`].

use crate::augment::AugmentConfig;
use crate::clean::CleanConfig;
use crate::prompt::PromptConfig;
use crate::readers::SourceConfig;
use crate::split::SplitConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A whole data config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset name (default: the config file's stem, set by the caller).
    #[serde(default)]
    pub name: Option<String>,
    /// Seed for splitting, generation and oversampling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A `tokenizer.json` for token-length rules and token histograms, relative to the config
    /// file (resolved by the caller).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Input sources.
    pub sources: Vec<SourceConfig>,
    /// Cleaning rules.
    #[serde(default)]
    pub clean: CleanConfig,
    /// Split layout.
    #[serde(default)]
    pub split: SplitConfig,
    /// Augmentation and balance.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// How records become prompts; every kept record must fit this format.
    #[serde(default)]
    pub prompt: PromptConfig,
}

fn default_seed() -> u64 {
    42
}

impl DataConfig {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let cfg: DataConfig = toml::from_str(text).map_err(|e| Error::Serde {
            path: PathBuf::from(origin),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.sources.is_empty() {
            return Err(Error::config(
                "sources",
                "at least one [[sources]] entry is needed",
            ));
        }
        self.split.validate()?;
        if let Some(v) = &self.augment.vignettes {
            if !(0.0..=1.0).contains(&v.drop_diagnosis_probability) {
                return Err(Error::config(
                    "augment.vignettes.drop_diagnosis_probability",
                    "must be in [0,1]",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_unknown_keys() {
        let c = DataConfig::from_toml_str(
            "[[sources]]\nformat = \"medquad\"\npath = \"medquad\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.seed, 42);
        assert_eq!(c.split.ratios, [0.8, 0.1, 0.1]);
        let err = DataConfig::from_toml_str(
            "[[sources]]\nformat = \"medquad\"\npath = \"m\"\n[split]\nratio = [1.0]\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("t.toml"), "{err}");
        let err = DataConfig::from_toml_str("sources = []\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("sources"));
    }
}
