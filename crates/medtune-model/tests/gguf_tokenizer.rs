//! The tokenizer rebuilt from GGUF metadata: for SmolLM2-135M-Instruct it must encode and decode
//! exactly like the model's published `tokenizer.json`; a tiny SentencePiece-style (`llama`)
//! vocabulary must merge by score and fall back to bytes; metadata with missing or bad keys must
//! give errors naming the file and the key.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use medtune_model::gguf_tokenizer;
use medtune_model::{load, LoadOptions, Message, TextTokenizer};
use std::path::{Path, PathBuf};

/// `<repo>`.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SmolLM2 GGUF (under `models/`, as scripts/setup.sh places it, else under `../shared`)
/// and the reference `tokenizer.json` from `../shared`; `None` (with a message) when absent.
fn smollm_files() -> Option<(PathBuf, PathBuf)> {
    let shared = repo().join("../shared/models/smollm2-135m-instruct");
    let reference = shared.join("tokenizer.json");
    let gguf = [repo().join("models/smollm2-135m-instruct"), shared]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
        .find(|p| p.extension().is_some_and(|e| e == "gguf"));
    match (gguf, reference.is_file()) {
        (Some(g), true) => Some((g, reference)),
        (g, r) => {
            println!(
                "SKIPPED: SmolLM2 model files absent (gguf found: {}, {} present: {r}); \
                 run scripts/setup.sh with ../shared beside the repo",
                g.is_some(),
                reference.display()
            );
            None
        }
    }
}

/// Texts covering ASCII, medical terms, digit runs, unicode, whitespace runs, newlines and
/// ChatML / other special tokens.
const TEXTS: &[&str] = &[
    "Hello, world!",
    "The patient presents with acute myocardial infarction, hypertension and dyspnea.",
    "Take 500 mg of acetaminophen every 4-6 hours; max 4000mg/day (2.5 × 10^3 µg/kg).",
    "ICD-10 I21.4, HbA1c 7.8%, eGFR 59 mL/min/1.73m², BP 120/80 mmHg, 1234567890123",
    "Unicode: café naïve Größe 日本語 العربية Ελληνικά 😀🩺💊 — «quotes» …",
    "   leading spaces and    runs\t\ttabs and trailing spaces   ",
    "line one\nline two\n\n\nthree\r\nfour\n",
    " ",
    "",
    "don't I'll we've THEY'RE it's O'Neil's",
    "<|im_start|>system\nYou are a careful medical assistant.<|im_end|>\n<|im_start|>user\nIs ibuprofen safe with warfarin?<|im_end|>\n<|im_start|>assistant\n",
    "a<|im_end|>b<|endoftext|>c <repo_name> <file_sep>x",
    "<|im_start |> not special, <|im_start|>special",
    "def f(x):\n    return x**2  # square\n\tpass",
    "Ω≈ç√∫ ¡™£¢∞§¶•ªº–≠ \u{0}\u{7f}\u{0b}\u{0c}",
];

#[test]
fn smollm2_gguf_tokenizer_matches_tokenizer_json() {
    let Some((gguf, reference)) = smollm_files() else {
        return;
    };
    let ours = TextTokenizer::from_gguf(&gguf).expect("GGUF tokenizer builds");
    let theirs = TextTokenizer::from_file(&reference).expect("reference tokenizer.json");
    let (o, t) = (ours.inner(), theirs.inner());
    assert_eq!(o.get_vocab_size(true), t.get_vocab_size(true));
    for id in 0..t.get_vocab_size(true) as u32 {
        assert_eq!(o.id_to_token(id), t.id_to_token(id), "token {id}");
    }
    for text in TEXTS {
        for add_special in [false, true] {
            let want = t.encode(*text, add_special).unwrap();
            let got = o.encode(*text, add_special).unwrap();
            assert_eq!(
                got.get_ids(),
                want.get_ids(),
                "{text:?} (add_special_tokens {add_special})"
            );
        }
        let ids = ours.encode(text, false).unwrap();
        for skip_special in [false, true] {
            assert_eq!(
                o.decode(&ids, skip_special).unwrap(),
                t.decode(&ids, skip_special).unwrap(),
                "{text:?} (skip_special_tokens {skip_special})"
            );
        }
        assert_eq!(o.decode(&ids, false).unwrap(), *text, "round trip");
    }
    // ChatML markers are single special ids, skipped when decoding for display.
    let chat = ours
        .encode("<|im_start|>user\nhi<|im_end|>", false)
        .unwrap();
    assert_eq!(chat.first(), Some(&1));
    assert_eq!(chat.last(), Some(&2));
    assert_eq!(ours.decode(&chat).unwrap(), "user\nhi");

    let g = gguf_tokenizer::from_file(&gguf).unwrap();
    assert_eq!(g.bos_token_id, Some(1));
    assert_eq!(g.eos_token_id, Some(2));
    assert_eq!(g.padding_token_id, Some(2));
    let template = g.chat_template.expect("SmolLM2 GGUF has a chat template");
    assert!(template.contains("<|im_start|>"), "{template}");
}

#[test]
fn a_folder_with_only_the_gguf_loads_with_its_tokenizer_and_template() {
    let Some((gguf, reference)) = smollm_files() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join(gguf.file_name().unwrap());
    std::os::unix::fs::symlink(std::fs::canonicalize(&gguf).unwrap(), &alone).unwrap();
    let m = load(dir.path(), &LoadOptions::default()).expect("loads without tokenizer.json");
    let tok = m.tokenizer().expect("tokenizer from GGUF metadata");
    assert_eq!(tok.path(), alone.as_path());
    assert!(m.eos_token_ids.contains(&2), "{:?}", m.eos_token_ids);
    let theirs = TextTokenizer::from_file(&reference).unwrap();
    let prompt = m
        .chat_prompt(&[Message::new("user", "What is a normal resting heart rate?")])
        .unwrap();
    let rendered = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by \
                    Hugging Face<|im_end|>\n<|im_start|>user\nWhat is a normal resting heart \
                    rate?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(prompt, theirs.encode(rendered, false).unwrap());
}

/// Writes a GGUF holding only `metadata` (no tensors).
fn write_metadata_gguf(path: &Path, metadata: &[(&str, Value)]) {
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = Vec::new();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md, &tensors).unwrap();
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
}

fn i32s(items: &[i32]) -> Value {
    Value::Array(items.iter().map(|&x| Value::I32(x)).collect())
}

/// GGUF metadata as written by `gguf_file::write`.
type Metadata = Vec<(&'static str, Value)>;

/// A valid tiny byte-level vocabulary, to be broken one key at a time.
fn tiny_gpt2() -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        (
            "tokenizer.ggml.tokens",
            strings(&["<|eot|>", "a", "b", "ab", "1", "2", "12"]),
        ),
        ("tokenizer.ggml.token_type", i32s(&[3, 1, 1, 1, 1, 1, 1])),
        ("tokenizer.ggml.merges", strings(&["a b", "1 2"])),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
    ]
}

/// `from_file` on `metadata`: the error text (the test fails if it succeeds).
fn error_of(metadata: &[(&str, Value)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tok.gguf");
    write_metadata_gguf(&path, metadata);
    match gguf_tokenizer::from_file(&path) {
        Ok(_) => panic!("metadata {:?} must be rejected", metadata),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_tiny_byte_level_vocabulary_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tok.gguf");
    write_metadata_gguf(&path, &tiny_gpt2());
    let t = TextTokenizer::from_gguf(&path).unwrap();
    assert_eq!(t.encode("ab<|eot|>ba", false).unwrap(), vec![3, 0, 2, 1]);
    assert_eq!(t.decode(&[3, 0, 2, 1]).unwrap(), "abba");
    // `smollm` splits digits one by one, so the merge `1 2` never applies; GPT-2's regex keeps
    // the digit run together.
    assert_eq!(t.encode("12", false).unwrap(), vec![4, 5]);
    let gpt2: Vec<(&str, Value)> = tiny_gpt2()
        .into_iter()
        .map(|(k, v)| match k {
            "tokenizer.ggml.pre" => (k, Value::String("gpt-2".into())),
            _ => (k, v),
        })
        .collect();
    write_metadata_gguf(&path, &gpt2);
    let t = TextTokenizer::from_gguf(&path).unwrap();
    assert_eq!(t.encode("12", false).unwrap(), vec![6]);
}

#[test]
fn missing_or_bad_tokenizer_keys_are_errors_naming_the_key() {
    let without = |key: &str| -> Vec<(&'static str, Value)> {
        tiny_gpt2().into_iter().filter(|(k, _)| *k != key).collect()
    };
    let with = |key: &'static str, v: Value| -> Vec<(&'static str, Value)> {
        let mut md = without(key);
        md.push((key, v));
        md
    };
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
    ] {
        let e = error_of(&without(key));
        assert!(e.contains(key), "{key}: {e}");
        assert!(e.contains("tok.gguf"), "{key}: {e}");
        assert!(e.contains("missing"), "{key}: {e}");
    }
    // (metadata, key the error must name, detail it must contain)
    let cases: Vec<(Metadata, &str, &str)> = vec![
        (
            with("tokenizer.ggml.model", Value::String("bert".into())),
            "tokenizer.ggml.model",
            "`bert`",
        ),
        (
            with("tokenizer.ggml.pre", Value::String("mystery".into())),
            "tokenizer.ggml.pre",
            "`mystery`",
        ),
        (
            with("tokenizer.ggml.token_type", i32s(&[3, 1])),
            "tokenizer.ggml.token_type",
            "2 entries for 7 tokens",
        ),
        (
            with("tokenizer.ggml.merges", strings(&["a b", "ab"])),
            "tokenizer.ggml.merges",
            "entry 1 `ab`",
        ),
        (
            with("tokenizer.ggml.merges", strings(&["a zz"])),
            "tokenizer.ggml.merges",
            "zz",
        ),
        (
            with("tokenizer.ggml.tokens", Value::U32(4)),
            "tokenizer.ggml.tokens",
            "array",
        ),
        (
            with("tokenizer.ggml.eos_token_id", Value::U32(99)),
            "tokenizer.ggml.eos_token_id",
            "99",
        ),
        (
            with("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            "tokenizer.ggml.bos_token_id",
            "add_bos_token",
        ),
    ];
    for (md, key, detail) in cases {
        let e = error_of(&md);
        assert!(e.contains(key) && e.contains(detail), "{key}: {e}");
        assert!(e.contains("tok.gguf"), "{key}: {e}");
    }
    // Not a GGUF at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.gguf");
    std::fs::write(&path, b"GGUF\x03\x00").unwrap();
    let e = gguf_tokenizer::from_file(&path).err().unwrap().to_string();
    assert!(e.contains("junk.gguf"), "{e}");
}

/// A SentencePiece-style vocabulary: `<unk>`, `<s>`, `</s>`, 256 byte tokens, then normal
/// pieces whose scores order the merges.
fn tiny_llama(with_scores: bool) -> (Vec<(&'static str, Value)>, Vec<String>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    let pieces = [
        ("▁", -20.0),
        ("h", -21.0),
        ("e", -22.0),
        ("l", -23.0),
        ("o", -24.0),
        ("w", -25.0),
        ("r", -26.0),
        ("d", -27.0),
        ("he", -1.0),
        ("ll", -2.0),
        ("▁he", -3.0),
        ("llo", -4.0),
        ("▁hello", -5.0),
    ];
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(1);
        scores.push(s);
    }
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut md = vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", strings(&token_refs)),
        ("tokenizer.ggml.token_type", i32s(&types)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ];
    if with_scores {
        md.push((
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ));
    }
    (md, tokens)
}

#[test]
fn sentencepiece_style_vocabulary_merges_by_score_and_falls_back_to_bytes() {
    let (md, tokens) = tiny_llama(true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spm.gguf");
    write_metadata_gguf(&path, &md);
    let t = TextTokenizer::from_gguf(&path).unwrap();
    let id = |s: &str| tokens.iter().position(|t| t == s).unwrap() as u32;
    let byte = |b: u8| 3 + u32::from(b);

    let ids = t.encode("hello world", false).unwrap();
    let want: Vec<u32> = ["▁hello", "▁", "w", "o", "r", "l", "d"]
        .iter()
        .map(|s| id(s))
        .collect();
    assert_eq!(ids, want);
    assert_eq!(t.decode(&ids).unwrap(), "hello world");

    // `é` is not a piece: its UTF-8 bytes are used.
    let ids = t.encode("hello é", false).unwrap();
    assert_eq!(ids, vec![id("▁hello"), id("▁"), byte(0xC3), byte(0xA9)]);
    assert_eq!(t.decode(&ids).unwrap(), "hello é");

    // BOS is added by default for `llama` vocabularies; control tokens are matched whole.
    assert_eq!(
        t.encode("hello", true).unwrap(),
        vec![1, id("▁hello")],
        "bos"
    );
    assert_eq!(
        t.encode("<s>hello</s>", false).unwrap(),
        vec![1, id("▁hello"), 2]
    );
    assert_eq!(t.decode(&[1, id("▁hello"), 2]).unwrap(), "hello");

    // Without scores and merges the merges cannot be derived.
    let (md, _) = tiny_llama(false);
    let e = error_of(&md);
    assert!(e.contains("tokenizer.ggml.scores"), "{e}");
}
