//! Every run config shipped in `configs/` (the demo's included) parses and validates.

use medtune_train::config::TrainConfig;
use std::path::Path;

#[test]
fn shipped_run_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut files = vec![root.join("demo.toml")];
    for entry in std::fs::read_dir(root.join("smollm2-135m")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() >= 2);
    for f in files {
        let cfg =
            TrainConfig::load(Some(&f), &[]).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(cfg.lora.r > 0, "{}", f.display());
    }
}
