//! Prints the safety report for one question and answer as JSON.
//!
//! `cargo run -p medtune-safety --example report -- "question" "answer"`

use medtune_safety::{Config, Validator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let question = args.next().unwrap_or_default();
    let answer = args.next().unwrap_or_default();
    let v = Validator::new(Config::default())?;
    let r = v.check(&question, &answer, None);
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
