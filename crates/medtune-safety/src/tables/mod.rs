//! Reference tables: the CSV files under `data/` (embedded) or from a directory, parsed into rows.
//!
//! Copied tables (see `data/SOURCES.md`): `drug_synonyms.csv`, `drug_interactions.csv`,
//! `max_daily_doses.csv`, `opioid_mme.csv`, `opioid_mme_thresholds.csv`,
//! `emergency_red_flags.csv`. Written by medtune (see `data/README.md`): `drug_classes.csv`,
//! `extra_synonyms.csv`, `misuse_rules.csv`.

mod classes;
mod interactions;
mod max_doses;
mod misuse;
mod mme;
mod red_flags;
mod synonyms;

pub(crate) use classes::ClassRow;
pub(crate) use interactions::InteractionRow;
pub(crate) use max_doses::{DoseLimit, MaxDoseRow};
pub(crate) use misuse::MisuseRow;
pub(crate) use mme::{MmeRow, MmeThresholds};
pub(crate) use red_flags::{RedFlagRow, Trigger};
pub(crate) use synonyms::SynonymRow;

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// File names of the tables, in the order of [`TableTexts`]'s fields.
pub const TABLE_FILES: [&str; 9] = [
    "drug_synonyms.csv",
    "extra_synonyms.csv",
    "drug_classes.csv",
    "drug_interactions.csv",
    "max_daily_doses.csv",
    "opioid_mme.csv",
    "opioid_mme_thresholds.csv",
    "emergency_red_flags.csv",
    "misuse_rules.csv",
];

/// The raw CSV text of every table. [`TableTexts::embedded`] gives the copies compiled into the
/// crate; [`TableTexts::from_dir`] reads a directory with the same file names.
#[derive(Debug, Clone)]
pub struct TableTexts {
    /// `drug_synonyms.csv`.
    pub drug_synonyms: String,
    /// `extra_synonyms.csv` (same columns as `drug_synonyms.csv`).
    pub extra_synonyms: String,
    /// `drug_classes.csv`.
    pub drug_classes: String,
    /// `drug_interactions.csv`.
    pub drug_interactions: String,
    /// `max_daily_doses.csv`.
    pub max_daily_doses: String,
    /// `opioid_mme.csv`.
    pub opioid_mme: String,
    /// `opioid_mme_thresholds.csv`.
    pub opioid_mme_thresholds: String,
    /// `emergency_red_flags.csv`.
    pub emergency_red_flags: String,
    /// `misuse_rules.csv`.
    pub misuse_rules: String,
}

impl TableTexts {
    /// The tables compiled into this crate.
    pub fn embedded() -> Self {
        Self {
            drug_synonyms: include_str!("../../data/drug_synonyms.csv").to_owned(),
            extra_synonyms: include_str!("../../data/extra_synonyms.csv").to_owned(),
            drug_classes: include_str!("../../data/drug_classes.csv").to_owned(),
            drug_interactions: include_str!("../../data/drug_interactions.csv").to_owned(),
            max_daily_doses: include_str!("../../data/max_daily_doses.csv").to_owned(),
            opioid_mme: include_str!("../../data/opioid_mme.csv").to_owned(),
            opioid_mme_thresholds: include_str!("../../data/opioid_mme_thresholds.csv").to_owned(),
            emergency_red_flags: include_str!("../../data/emergency_red_flags.csv").to_owned(),
            misuse_rules: include_str!("../../data/misuse_rules.csv").to_owned(),
        }
    }

    /// Reads the tables from `dir`. A file missing there falls back to the embedded copy, so a
    /// directory can override just one table.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut t = Self::embedded();
        let slots: [&mut String; 9] = [
            &mut t.drug_synonyms,
            &mut t.extra_synonyms,
            &mut t.drug_classes,
            &mut t.drug_interactions,
            &mut t.max_daily_doses,
            &mut t.opioid_mme,
            &mut t.opioid_mme_thresholds,
            &mut t.emergency_red_flags,
            &mut t.misuse_rules,
        ];
        for (name, slot) in TABLE_FILES.iter().zip(slots) {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => *slot = text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
        Ok(t)
    }
}

/// All tables, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub synonyms: Vec<SynonymRow>,
    pub classes: Vec<ClassRow>,
    pub interactions: Vec<InteractionRow>,
    pub max_doses: Vec<MaxDoseRow>,
    pub mme: Vec<MmeRow>,
    pub thresholds: MmeThresholds,
    pub red_flags: Vec<RedFlagRow>,
    pub misuse: Vec<MisuseRow>,
}

impl Tables {
    /// Parses every table; the first bad row stops with an error naming file, line and field.
    pub fn parse(t: &TableTexts) -> Result<Self> {
        let mut synonyms = SynonymRow::parse_all(TABLE_FILES[0], &t.drug_synonyms)?;
        synonyms.extend(SynonymRow::parse_all(TABLE_FILES[1], &t.extra_synonyms)?);
        Ok(Self {
            synonyms,
            classes: ClassRow::parse_all(TABLE_FILES[2], &t.drug_classes)?,
            interactions: InteractionRow::parse_all(TABLE_FILES[3], &t.drug_interactions)?,
            max_doses: MaxDoseRow::parse_all(TABLE_FILES[4], &t.max_daily_doses)?,
            mme: MmeRow::parse_all(TABLE_FILES[5], &t.opioid_mme)?,
            thresholds: MmeThresholds::parse(TABLE_FILES[6], &t.opioid_mme_thresholds)?,
            red_flags: RedFlagRow::parse_all(TABLE_FILES[7], &t.emergency_red_flags)?,
            misuse: MisuseRow::parse_all(TABLE_FILES[8], &t.misuse_rules)?,
        })
    }
}

/// Deserialises every record of a CSV text into `T`, with its 1-based line number.
pub(crate) fn read_rows<T: DeserializeOwned>(file: &str, text: &str) -> Result<Vec<(u64, T)>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|source| Error::Csv {
            file: file.to_owned(),
            line: 1,
            source,
        })?
        .clone();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| Error::Csv {
            file: file.to_owned(),
            line: source.position().map_or(0, |p| p.line()),
            source,
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row = record
            .deserialize(Some(&headers))
            .map_err(|source| Error::Csv {
                file: file.to_owned(),
                line,
                source,
            })?;
        out.push((line, row));
    }
    Ok(out)
}

/// Splits a `;`-separated list, trimming items and dropping empty ones.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// True for the `verified_*` values of the `verification` columns.
pub(crate) fn is_verified(v: &str) -> bool {
    v.trim_start().starts_with("verified")
}

/// A field error for `file`, `line`, `field`.
pub(crate) fn field_error(file: &str, line: u64, field: &str, message: impl Into<String>) -> Error {
    Error::Field {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_parse_with_expected_row_counts() {
        let t = Tables::parse(&TableTexts::embedded()).expect("tables parse");
        // Row counts as stated in data/SOURCES.md (plus our own files).
        assert_eq!(t.synonyms.len(), 236 + 6);
        assert_eq!(t.interactions.len(), 43);
        assert_eq!(t.max_doses.len(), 66);
        assert_eq!(t.mme.len(), 48);
        assert_eq!(t.red_flags.len(), 15);
        assert_eq!(t.misuse.len(), 8);
        assert_eq!(t.thresholds.caution, 50.0);
        assert_eq!(t.thresholds.strong, 90.0);
    }

    #[test]
    fn bad_row_names_file_line_and_field() {
        let mut texts = TableTexts::embedded();
        texts.misuse_rules =
            "id,category,subcategory,risk_level,requires_class,pattern,message,notes\n\
                              X-1,recreational,x,seven,,abc,msg,\n"
                .to_owned();
        let err = Tables::parse(&texts).expect_err("bad risk level");
        let msg = err.to_string();
        assert!(msg.contains("misuse_rules.csv"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("risk_level"), "{msg}");
    }

    #[test]
    fn from_dir_overrides_one_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("misuse_rules.csv"),
            "id,category,subcategory,risk_level,requires_class,pattern,message,notes\n",
        )
        .expect("write");
        let t = Tables::parse(&TableTexts::from_dir(dir.path()).expect("read")).expect("parse");
        assert!(t.misuse.is_empty());
        assert_eq!(t.red_flags.len(), 15);
    }
}
