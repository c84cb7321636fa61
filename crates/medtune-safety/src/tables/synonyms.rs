//! `drug_synonyms.csv` / `extra_synonyms.csv`: names (brands, abbreviations, INN spellings) of a
//! canonical generic, with the other ingredients of combination products.

use super::{read_rows, split_list};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    canonical_generic: String,
    synonym: String,
    also_contains: String,
}

/// One name of a drug.
#[derive(Debug, Clone)]
pub(crate) struct SynonymRow {
    pub generic: String,
    pub synonym: String,
    /// Other ingredients of a combination product (Percocet: acetaminophen).
    pub also_contains: Vec<String>,
}

impl SynonymRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        Ok(read_rows::<Raw>(file, text)?
            .into_iter()
            .map(|(_, r)| Self {
                generic: r.canonical_generic.trim().to_owned(),
                synonym: r.synonym.trim().to_owned(),
                also_contains: split_list(&r.also_contains),
            })
            .collect())
    }
}
