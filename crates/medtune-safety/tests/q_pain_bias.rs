//! Issue 6, point 7 (no new bias): the validator must not refuse or replace any gold "yes" answer
//! of the Q-Pain vignettes, and the warnings it adds must not differ across race × gender
//! substitutions.
//!
//! Two runs: our own vignettes in `tests/fixtures/pain_vignettes.csv` (always), and all of
//! Q-Pain's vignettes from `$MEDTUNE_DATA_DIR/q_pain/` (default `<repo>/../shared/data`), skipped
//! with a message when that directory is absent. Q-Pain is CC BY-SA 4.0 and is not committed.

use medtune_safety::{Action, Config, SafetyReport, Validator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RACES: [&str; 4] = ["Asian", "Black", "Hispanic", "White"];
const GENDERS: [(&str, &str, &str); 2] = [("man", "he", "his"), ("woman", "she", "her")];

struct Vignette {
    file: String,
    row: usize,
    vignette: String,
    question: String,
    answer: String,
    dosage: String,
    explanation: String,
}

fn read_csv(path: &Path) -> Vec<Vignette> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    r.records()
        .enumerate()
        .map(|(i, rec)| {
            let rec = rec.unwrap_or_else(|e| panic!("{file} row {i}: {e}"));
            let f = |k: usize| rec.get(k).unwrap_or_default().to_owned();
            Vignette {
                file: file.clone(),
                row: i,
                vignette: f(0),
                question: f(1),
                answer: f(2),
                dosage: f(3),
                explanation: f(4),
            }
        })
        .collect()
}

fn fill(t: &str, race: &str, gender: (&str, &str, &str)) -> String {
    t.replace("[race]", race)
        .replace("[gender]", gender.0)
        .replace("[subjective]", gender.1)
        .replace("[subject]", gender.1)
        .replace("[possessive]", gender.2)
}

fn is_yes(answer: &str) -> bool {
    answer
        .trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case("yes")
}

/// What the validator added, without spans (which shift with the substituted words).
fn signature(r: &SafetyReport) -> Vec<String> {
    let mut s: Vec<String> = r
        .warnings
        .iter()
        .map(|w| {
            format!(
                "{:?}/{}/{}/{}",
                w.category, w.subcategory, w.source_row_id, w.risk_level
            )
        })
        .collect();
    s.sort();
    s
}

/// Runs every vignette under 8 profiles; returns (yes vignettes, checks, warnings per profile,
/// warning kinds over all checks).
fn run(
    vignettes: &[Vignette],
) -> (
    usize,
    usize,
    BTreeMap<String, usize>,
    BTreeMap<String, usize>,
) {
    let v = Validator::new(Config::default()).expect("validator");
    let mut per_profile: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut yes = 0;
    let mut checks = 0;
    for vg in vignettes {
        let gold_yes = is_yes(&vg.answer);
        yes += usize::from(gold_yes);
        let mut first: Option<(Vec<String>, Vec<String>)> = None;
        for race in RACES {
            for gender in GENDERS {
                let q = fill(
                    &format!("{} {}", vg.vignette.trim(), vg.question),
                    race,
                    gender,
                );
                let a = fill(
                    &format!("{} Dosage: {}. {}", vg.answer, vg.dosage, vg.explanation),
                    race,
                    gender,
                );
                let triage = v.check_question(&q, None);
                let report = v.check(&q, &a, None);
                checks += 2;
                let where_ = format!("{} row {} ({race} {})", vg.file, vg.row, gender.0);
                if gold_yes {
                    assert_ne!(
                        triage.action,
                        Action::Replace,
                        "{where_}: question refused: {:?}",
                        triage.warnings
                    );
                    assert_ne!(
                        report.action,
                        Action::Replace,
                        "{where_}: gold yes replaced: {:?}",
                        report.warnings
                    );
                    assert!(
                        report.final_text.contains(a.trim()),
                        "{where_}: answer not kept"
                    );
                }
                *per_profile
                    .entry(format!("{race} {}", gender.0))
                    .or_default() += report.warnings.len() + triage.warnings.len();
                for k in signature(&triage).into_iter().chain(signature(&report)) {
                    *kinds.entry(k).or_default() += 1;
                }
                let sig = (signature(&triage), signature(&report));
                match &first {
                    None => first = Some(sig),
                    Some(f) => {
                        assert_eq!(f, &sig, "{where_}: warnings differ from the first profile")
                    }
                }
            }
        }
    }
    (yes, checks, per_profile, kinds)
}

fn summarise(name: &str, vignettes: &[Vignette]) {
    let (yes, checks, per_profile, kinds) = run(vignettes);
    let counts: Vec<usize> = per_profile.values().copied().collect();
    println!(
        "{name}: {} vignettes ({yes} gold yes) x {} profiles, {checks} checks; none replaced; warnings per profile: {per_profile:?}",
        vignettes.len(),
        RACES.len() * GENDERS.len()
    );
    println!("{name}: warning kinds over all checks: {kinds:?}");
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "warning counts differ across profiles: {per_profile:?}"
    );
}

#[test]
fn own_fixture_vignettes_are_not_refused_and_are_unbiased() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pain_vignettes.csv");
    let vignettes = read_csv(&path);
    assert_eq!(vignettes.len(), 4);
    summarise("fixture", &vignettes);
}

#[test]
fn all_q_pain_vignettes_are_not_refused_and_are_unbiased() {
    let dir = std::env::var_os("MEDTUNE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
        .join("q_pain");
    if !dir.is_dir() {
        println!(
            "skipped: no data dir ({} not found; set MEDTUNE_DATA_DIR)",
            dir.display()
        );
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let vignettes: Vec<Vignette> = files.iter().flat_map(|f| read_csv(f)).collect();
    assert_eq!(vignettes.len(), 55, "Q-Pain has 5 files x 11 vignettes");
    summarise("q_pain", &vignettes);
}
