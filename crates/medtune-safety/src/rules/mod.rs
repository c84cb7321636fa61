//! The rules. Each takes the normalised inputs and returns warnings.

pub(crate) mod doses;
pub(crate) mod interactions;
pub(crate) mod misuse;
pub(crate) mod mme;
pub(crate) mod triage;

use crate::drugs::Mention;
use crate::report::{Evidence, Field};
use crate::text::NormText;
use std::ops::Range;

/// One input text, normalised, with its drug mentions.
#[derive(Debug)]
pub(crate) struct FieldText<'a> {
    pub field: Field,
    pub orig: &'a str,
    pub norm: NormText,
    pub mentions: Vec<Mention>,
}

impl FieldText<'_> {
    /// Evidence for a normalised byte range.
    pub fn evidence(&self, r: Range<usize>) -> Evidence {
        let o = self.norm.orig_range(r);
        Evidence {
            field: self.field,
            start: o.start,
            end: o.end,
            text: self.orig.get(o.clone()).unwrap_or_default().to_owned(),
        }
    }
}

/// Prefix for messages from rows not verified in a stored source.
pub(crate) const UNVERIFIED_NOTE: &str =
    "(reference entry not verified against a primary source; please check with a pharmacist or doctor)";

/// Formats a number for messages: whole numbers without decimals, others with up to 2.
pub(crate) fn fmt_num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}
