//! Tokenization with a model's own template from `tokenizer_config.json` (the repo's tiny
//! ChatML fixture), packing into a batch, and the label/attention invariants.

use medtune_data::pack::{pack, Batch};
use medtune_data::prompt::{AnswerFormat, PromptConfig};
use medtune_data::template::ChatTemplate;
use medtune_data::tokenize::{ExampleTokenizer, TokenizeConfig, Tokenizer, IGNORE_INDEX};
use medtune_data::Record;
use std::path::Path;

fn tiny() -> ExampleTokenizer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hf-tiny/tokenizer");
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap();
    let template = ChatTemplate::from_tokenizer_config(&cfg, "hf-tiny").unwrap();
    ExampleTokenizer::new(
        tok,
        template,
        TokenizeConfig {
            max_len: 256,
            ..Default::default()
        },
    )
    .unwrap()
}

fn rec(i: usize, label: &str) -> Record {
    Record {
        id: format!("t:{i}"),
        question: format!("Is finding number {i} serious?"),
        answer: label.into(),
        label: Some(label.into()),
        source: "t".into(),
        ..Default::default()
    }
}

#[test]
fn yes_no_json_labels_and_packing() {
    let t = tiny();
    let cfg = PromptConfig {
        answer_format: AnswerFormat::YesNoJson,
        system_prompt: Some("Answer in JSON.".into()),
    };
    let exs: Vec<_> = (0..6)
        .map(|i| {
            t.tokenize_record(&rec(i, ["yes", "no"][i % 2]), &cfg)
                .unwrap()
                .unwrap()
        })
        .collect();
    for e in &exs {
        let first = e.labels.iter().position(|&l| l != IGNORE_INDEX).unwrap();
        assert!(first > 0);
        assert_eq!(*e.input_ids.last().unwrap(), t.eos_id());
        assert_eq!(*e.labels.last().unwrap(), t.eos_id() as i64);
    }
    let longest = exs.iter().map(|e| e.input_ids.len()).max().unwrap();
    let packed = pack(&exs, longest * 2);
    assert!(
        packed.len() < exs.len(),
        "at least two examples share a sequence"
    );
    let batch = Batch::from_packed(&packed, 0);
    let supervised: usize = exs.iter().map(|e| e.supervised()).sum();
    assert_eq!(
        batch.supervised_tokens(),
        supervised,
        "packing keeps every supervised token"
    );
    for b in 0..batch.batch_size {
        for q in 0..batch.seq_len {
            for k in 0..=q {
                let same = batch.segment_ids[b * batch.seq_len + q]
                    == batch.segment_ids[b * batch.seq_len + k];
                assert_eq!(
                    batch.may_attend(b, q, k),
                    same && batch.segment_ids[b * batch.seq_len + q] != 0
                );
            }
        }
    }
}
