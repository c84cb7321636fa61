use medtune_data::augment::dose::BuiltinDoseTable;
use medtune_data::pipeline::{prepare, PrepareOptions};
use medtune_data::DataConfig;
use std::path::Path;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let cfg = DataConfig::from_toml_str(&text, &args[1]).unwrap();
    let t = std::time::Instant::now();
    let opts = PrepareOptions { data_dir: Path::new("/work/shared/data"), out_dir: Some(Path::new(&args[2])), strict: false, config_text: Some(&text), tokens: None, dose_rules: &BuiltinDoseTable };
    let p = prepare(&cfg, &opts).unwrap();
    println!("{:.2}s {:?} {:?}", t.elapsed().as_secs_f64(), p.manifest.counts, p.manifest.timings_s);
    println!("{:?}", p.stats.leakage);
    println!("{}", serde_json::to_string_pretty(&p.cleaning.dropped_by_reason).unwrap());
}
