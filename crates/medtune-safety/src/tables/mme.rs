//! `opioid_mme.csv` (conversion factors by factor set) and `opioid_mme_thresholds.csv`.

use super::{field_error, is_verified, max_doses::clean_drug_name, read_rows};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    factor_set: String,
    drug: String,
    route_form: String,
    daily_dose_range: String,
    mme_conversion_factor: String,
}

/// One conversion factor.
#[derive(Debug, Clone)]
pub(crate) struct MmeRow {
    /// `opioid_mme.csv:LINE`.
    pub id: String,
    pub factor_set: String,
    pub drug: String,
    pub route_form: String,
    /// `None` where the table excludes the drug (buprenorphine).
    pub factor: Option<f64>,
    /// Daily-dose band in mg, inclusive lower bound and exclusive upper bound (methadone 2016).
    pub band: Option<(f64, f64)>,
}

impl MmeRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (line, r) in read_rows::<Raw>(file, text)? {
            let f = r.mme_conversion_factor.trim();
            let factor = match f {
                "EXCLUDED" | "N/A" | "n/a" | "" => None,
                _ => Some(f.parse::<f64>().map_err(|_| {
                    field_error(
                        file,
                        line,
                        "mme_conversion_factor",
                        format!("not a number: {f:?}"),
                    )
                })?),
            };
            out.push(Self {
                id: format!("{file}:{line}"),
                factor_set: r.factor_set.trim().to_owned(),
                drug: clean_drug_name(&r.drug),
                route_form: r.route_form.trim().to_owned(),
                factor,
                band: parse_band(&r.daily_dose_range),
            });
        }
        Ok(out)
    }
}

/// "1-20" -> [1, 21); "61-80+ (>=61)" -> [61, inf). Bands are whole mg, so the upper bound of
/// "1-20" covers 20.9 too (the next band starts at 21). "any" or empty -> no band.
fn parse_band(s: &str) -> Option<(f64, f64)> {
    let s = s.trim();
    let (lo, hi) = s.split_once('-')?;
    let lo: f64 = lo.trim().parse().ok()?;
    let hi_digits: String = hi.chars().take_while(|c| c.is_ascii_digit()).collect();
    let open = hi.contains('+');
    let hi = if open {
        f64::INFINITY
    } else {
        hi_digits.parse::<f64>().ok()? + 1.0
    };
    Some((lo, hi))
}

/// The MME/day levels that trigger a caution and a strong warning.
#[derive(Debug, Clone)]
pub(crate) struct MmeThresholds {
    pub caution: f64,
    pub strong: f64,
    /// Row ids of the thresholds used.
    pub caution_id: String,
    pub strong_id: String,
}

#[derive(Deserialize)]
struct RawThreshold {
    threshold_mme_per_day: String,
    verification: String,
}

impl MmeThresholds {
    /// Takes the lowest and highest numeric thresholds among verified rows.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let mut values: Vec<(f64, String)> = Vec::new();
        for (line, r) in read_rows::<RawThreshold>(file, text)? {
            if let (Ok(v), true) = (
                r.threshold_mme_per_day.trim().parse::<f64>(),
                is_verified(&r.verification),
            ) {
                values.push((v, format!("{file}:{line}")));
            }
        }
        let lo = values.iter().min_by(|a, b| a.0.total_cmp(&b.0)).cloned();
        let hi = values.iter().max_by(|a, b| a.0.total_cmp(&b.0)).cloned();
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok(Self {
                caution: lo.0,
                strong: hi.0,
                caution_id: lo.1,
                strong_id: hi.1,
            }),
            _ => Err(field_error(
                file,
                2,
                "threshold_mme_per_day",
                "no verified numeric threshold",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        assert_eq!(parse_band("1-20"), Some((1.0, 21.0)));
        assert_eq!(parse_band("61-80+ (>=61)"), Some((61.0, f64::INFINITY)));
        assert_eq!(parse_band("any"), None);
        assert_eq!(parse_band(""), None);
    }
}
