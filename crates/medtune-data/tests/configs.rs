//! Every example data config in `configs/data/` parses and validates.

use medtune_data::DataConfig;
use std::path::Path;

#[test]
fn all_data_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/data");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            DataConfig::from_toml_str(&text, &p.display().to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected the medquad and pubmedqa configs, found {n}"
    );
}
