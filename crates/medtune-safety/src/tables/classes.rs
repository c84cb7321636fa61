//! `drug_classes.csv` (written by medtune): class names as the interaction table spells them, and
//! their member drugs.

use super::{read_rows, split_list};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    class: String,
    aliases: String,
    members: String,
}

/// One drug class.
#[derive(Debug, Clone)]
pub(crate) struct ClassRow {
    pub class: String,
    /// Names used for the class in other tables ("SSRIs", "MAO inhibitors").
    pub aliases: Vec<String>,
    pub members: Vec<String>,
}

impl ClassRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        Ok(read_rows::<Raw>(file, text)?
            .into_iter()
            .map(|(_, r)| Self {
                class: r.class.trim().to_owned(),
                aliases: split_list(&r.aliases),
                members: split_list(&r.members),
            })
            .collect())
    }
}
