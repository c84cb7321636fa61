//! Classification metrics as scikit-learn computes them for single-label data.
//!
//! Labels are the sorted union of true and predicted labels (`np.unique`).
//! Per class: precision tp/(tp+fp), recall tp/(tp+fn), F1 their harmonic mean,
//! each 0 when its denominator is 0 (sklearn's `zero_division=0` result).
//! Macro F1 averages the per-class F1, weighted F1 weighs it by support, and
//! micro F1 pools the counts (equal to accuracy for single-label data).

use super::{Error, Result};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true instances of the class.
    pub support: usize,
}

/// Everything `classification_report` and `confusion_matrix` give.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    /// Sorted labels; the order of `per_class` and of the matrix axes.
    pub labels: Vec<String>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub micro_f1: f64,
    pub weighted_f1: f64,
    pub per_class: Vec<ClassScore>,
    /// `confusion[true][predicted]` counts, `labels.len()` square.
    pub confusion: Vec<Vec<usize>>,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

fn f1_of(p: f64, r: f64) -> f64 {
    ratio(2.0 * p * r, p + r)
}

/// Scores predictions against gold labels (same length, at least one item).
pub fn classification_report<S: AsRef<str>>(
    y_true: &[S],
    y_pred: &[S],
) -> Result<ClassificationReport> {
    if y_true.len() != y_pred.len() {
        return Err(Error::Invalid(format!(
            "{} gold labels but {} predictions",
            y_true.len(),
            y_pred.len()
        )));
    }
    if y_true.is_empty() {
        return Err(Error::Invalid("no items to score".into()));
    }
    let mut labels: Vec<String> = y_true
        .iter()
        .chain(y_pred)
        .map(|s| s.as_ref().to_string())
        .collect();
    labels.sort();
    labels.dedup();
    let k = labels.len();
    let idx = |s: &str| labels.binary_search_by(|l| l.as_str().cmp(s)).unwrap_or(0);
    let mut confusion = vec![vec![0usize; k]; k];
    for (t, p) in y_true.iter().zip(y_pred) {
        confusion[idx(t.as_ref())][idx(p.as_ref())] += 1;
    }
    let n = y_true.len();
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassScore> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..k).map(|i| confusion[i][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = ratio(tp, predicted as f64);
            let recall = ratio(tp, support as f64);
            ClassScore {
                label: labels[c].clone(),
                precision,
                recall,
                f1: f1_of(precision, recall),
                support,
            }
        })
        .collect();
    let accuracy = correct as f64 / n as f64;
    let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64;
    let weighted_f1 = per_class
        .iter()
        .map(|c| c.f1 * c.support as f64)
        .sum::<f64>()
        / n as f64;
    Ok(ClassificationReport {
        labels,
        accuracy,
        macro_f1,
        micro_f1: f1_of(accuracy, accuracy),
        weighted_f1,
        per_class,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores_of_small_case() {
        let t = ["yes", "yes", "no", "maybe"];
        let p = ["yes", "no", "no", "no"];
        let r = classification_report(&t, &p).expect("ok");
        assert_eq!(r.labels, ["maybe", "no", "yes"]);
        assert_eq!(
            r.confusion,
            vec![vec![0, 1, 0], vec![0, 1, 0], vec![0, 1, 1]]
        );
        assert_eq!(r.accuracy, 0.5);
        // "no": P 1/3, R 1, F1 0.5; "yes": P 1, R 0.5, F1 2/3; "maybe": 0
        assert!((r.macro_f1 - (0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!(classification_report(&t, &p[..2]).is_err());
    }
}
