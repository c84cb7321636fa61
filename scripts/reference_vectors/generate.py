#!/usr/bin/env python3
"""Produce the metric reference vectors under crates/medtune-eval/tests/fixtures/.

Run from the repository root with sacrebleu 2.x, rouge-score 0.1.2, nltk 3.x,
numpy, scikit-learn, safetensors and tokenizers installed:

    NLTK_DATA=<dir with corpora/wordnet> python scripts/reference_vectors/generate.py \
        [--minilm models/all-minilm-l6-v2]

The WordNet 3.0 files (Debian `wordnet-base`: /usr/share/wordnet) must sit in
$NLTK_DATA/corpora/wordnet together with a `lexnames` file (45 lines, only its
line count matters here). The full WordNet is not committed: this script writes a
subset holding only what the METEOR test sentences look up, in the same format.
"""

import argparse
import json
import math
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import PAIRS, STEM_WORDS  # noqa: E402

OUT = "crates/medtune-eval/tests/fixtures"


def dump(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", path)


def gen_bleu():
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    configs = {
        "exp": dict(),
        "exp_eff": dict(effective_order=True),
        "none": dict(smooth_method="none"),
        "floor": dict(smooth_method="floor"),
        "add-k": dict(smooth_method="add-k"),
        "exp_lower": dict(lowercase=True),
    }

    def as_dict(s):
        return {"score": s.score, "bp": s.bp, "precisions": list(s.precisions),
                "sys_len": s.sys_len, "ref_len": s.ref_len,
                "counts": list(s.counts), "totals": list(s.totals)}

    sentences = []
    for pid, refs, hyp in PAIRS:
        entry = {"id": pid, "references": refs, "hypothesis": hyp, "scores": {}}
        for name, kw in configs.items():
            entry["scores"][name] = as_dict(BLEU(**kw).sentence_score(hyp, refs))
        sentences.append(entry)
    # corpus: every segment with its first reference, and with a fixed 2-reference layout
    hyps = [p[2] for p in PAIRS]
    one_ref = [[p[1][0] for p in PAIRS]]
    two_refs = [[p[1][0] for p in PAIRS], [p[1][-1] if len(p[1]) > 1 else p[2] for p in PAIRS]]
    corpus = {}
    for name, kw in configs.items():
        corpus[name + "/one_ref"] = as_dict(BLEU(**kw).corpus_score(hyps, one_ref))
        corpus[name + "/two_refs"] = as_dict(BLEU(**kw).corpus_score(hyps, two_refs))
    # every segment with all its references (streams padded with None, as sacrebleu allows)
    k = max(len(p[1]) for p in PAIRS)
    all_refs = [[p[1][i] if i < len(p[1]) else None for p in PAIRS] for i in range(k)]
    corpus["exp/all_refs"] = as_dict(BLEU().corpus_score(hyps, all_refs))
    texts = sorted({t for p in PAIRS for t in p[1] + [p[2]]})
    tokenized = [{"text": t, "tokens": tok(t.rstrip())} for t in texts]
    dump("bleu.json", {"sentences": sentences, "corpus": corpus,
                       "corpus_second_refs": two_refs[1], "tokenized": tokenized})


def gen_pairs():
    """The test pairs as a `medtune eval metrics` input file."""
    path = os.path.join(OUT, "pairs.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for pid, refs, hyp in PAIRS:
            f.write(json.dumps({"id": pid, "references": refs, "hypothesis": hyp},
                               ensure_ascii=False) + "\n")
    print("wrote", path)


def gen_rouge():
    from rouge_score import rouge_scorer
    from rouge_score import tokenizers

    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    out = []
    for pid, refs, hyp in PAIRS:
        entry = {"id": pid, "references": refs, "hypothesis": hyp}
        for stem in (False, True):
            sc = rouge_scorer.RougeScorer(types, use_stemmer=stem)
            res = sc.score_multi(refs, hyp)
            key = "stem" if stem else "plain"
            entry[key] = {t: [res[t].precision, res[t].recall, res[t].fmeasure] for t in types}
            entry[key + "_first_ref"] = {
                t: list(sc.score(refs[0], hyp)[t]) for t in types}
            entry[key + "_tokens"] = tokenizers.DefaultTokenizer(stem).tokenize(hyp)
        out.append(entry)
    dump("rouge.json", out)


def gen_porter():
    from nltk.stem.porter import PorterStemmer

    modes = {
        "nltk": PorterStemmer(PorterStemmer.NLTK_EXTENSIONS),
        "martin": PorterStemmer(PorterStemmer.MARTIN_EXTENSIONS),
        "original": PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM),
    }
    words = list(dict.fromkeys(STEM_WORDS + [w.lower() for p in PAIRS for t in p[1] + [p[2]]
                                             for w in t.split()]))
    dump("porter.json", {m: {w: s.stem(w) for w in words} for m, s in modes.items()})


def gen_meteor():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # The WordNet-version mapping needs an index.sense file we do not use.
    WordNetCorpusReader.map_wn = lambda self, version="wordnet": None
    from nltk.corpus import wordnet as wn
    from nltk.translate import meteor_score as ms

    looked_up = set()
    original = wn.synsets

    def recording(lemma, *a, **kw):
        looked_up.add(lemma.lower())
        return original(lemma, *a, **kw)

    wn.synsets = recording
    out = []
    for pid, refs, hyp in PAIRS:
        score = ms.meteor_score([r.split() for r in refs], hyp.split(), wordnet=wn)
        singles = [ms.single_meteor_score(r.split(), hyp.split(), wordnet=wn) for r in refs]
        out.append({"id": pid, "references": refs, "hypothesis": hyp,
                    "meteor": score, "single": singles})
    wn.synsets = original
    synonyms = {w: sorted({l.name() for s in wn.synsets(w) for l in s.lemmas()})
                for w in sorted(looked_up)}
    dump("meteor.json", {"pairs": out, "synonyms": synonyms})
    write_wordnet_subset(wn, looked_up)


def write_wordnet_subset(wn, words):
    """Index, data and exception lines needed to answer `synsets(w)` for `words`."""
    files = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
    root = wn.root.path if hasattr(wn.root, "path") else str(wn.root)
    dest = os.path.join(OUT, "wordnet")
    os.makedirs(dest, exist_ok=True)
    for pos, suffix in files.items():
        exc = {}
        with open(os.path.join(root, suffix + ".exc"), encoding="utf-8") as f:
            for line in f:
                terms = line.split()
                exc[terms[0]] = line
        index = {}
        with open(os.path.join(root, "index." + suffix), encoding="utf-8") as f:
            for line in f:
                if not line.startswith(" "):
                    index[line.split()[0]] = line
        forms, exc_lines = set(), []
        for w in sorted(words):
            candidates = wn._morphy(w, pos) if True else []
            forms.update(candidates)
            if w in exc:
                exc_lines.append(exc[w])
        # data lines at their new byte offsets
        offsets = sorted({int(o) for f_ in forms
                          for o in index[f_].split()[-int(index[f_].split()[2]):]})
        data_path = os.path.join(root, "data." + suffix)
        new_offset, body = {}, b""
        header = ("  1 medtune test subset of WordNet 3.0 (Princeton University), "
                  "only the lines the METEOR tests look up\n").encode()
        body = header
        with open(data_path, "rb") as f:
            raw = f.read()
        for off in offsets:
            end = raw.index(b"\n", off)
            line = raw[off:end + 1]
            new_offset[off] = len(body)
            body += b"%08d" % len(body) + line[8:]
        with open(os.path.join(dest, "data." + suffix), "wb") as f:
            f.write(body)
        with open(os.path.join(dest, "index." + suffix), "w", encoding="utf-8") as f:
            f.write("  1 medtune test subset of WordNet 3.0 (Princeton University)\n")
            for form in sorted(forms):
                parts = index[form].split()
                n = int(parts[2])
                parts[-n:] = ["%08d" % new_offset[int(o)] for o in parts[-n:]]
                f.write(" ".join(parts) + "  \n")
        with open(os.path.join(dest, suffix + ".exc"), "w", encoding="utf-8") as f:
            f.writelines(sorted(exc_lines))
    print("wrote", dest)


# SQuAD v1.1 normalisation, written from the definition in the official evaluation script.
def squad_normalize(s):
    import re
    import string
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(pred, truth):
    p, t = squad_normalize(pred).split(), squad_normalize(truth).split()
    same = sum((Counter(p) & Counter(t)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(t)
    return 2 * prec * rec / (prec + rec)


def gen_squad():
    out = []
    for pid, refs, hyp in PAIRS:
        out.append({"id": pid, "references": refs, "hypothesis": hyp,
                    "normalized": squad_normalize(hyp),
                    "exact_match": max(float(squad_normalize(hyp) == squad_normalize(r)) for r in refs),
                    "f1": max(squad_f1(hyp, r) for r in refs)})
    extra = [("An aspirin", ["aspirin"]), ("the THE a", ["an"]), ("Yes.", ["yes", "no"]),
             ("low-dose aspirin daily", ["Aspirin, low dose, daily"])]
    for i, (hyp, refs) in enumerate(extra):
        out.append({"id": f"extra{i}", "references": refs, "hypothesis": hyp,
                    "normalized": squad_normalize(hyp),
                    "exact_match": max(float(squad_normalize(hyp) == squad_normalize(r)) for r in refs),
                    "f1": max(squad_f1(hyp, r) for r in refs)})
    dump("squad.json", out)


def gen_classification():
    import numpy as np
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)

    rng = np.random.default_rng(5)
    cases = {}
    labels3 = np.array(["yes", "no", "maybe"])
    t = labels3[rng.integers(0, 3, 60)]
    p = np.where(rng.random(60) < 0.6, t, labels3[rng.integers(0, 3, 60)])
    cases["pubmedqa_like"] = (list(t), list(p))
    letters = np.array(list("ABCDE"))
    t = letters[rng.integers(0, 4, 45)]  # "E" is never gold
    p = np.where(rng.random(45) < 0.4, t, letters[rng.integers(0, 5, 45)])
    cases["pred_only_label"] = (list(t), list(p))
    cases["perfect"] = (["a", "b", "a"], ["a", "b", "a"])
    out = {}
    for name, (t, p) in cases.items():
        labels = sorted(set(t) | set(p))
        prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
        out[name] = {
            "y_true": [str(x) for x in t], "y_pred": [str(x) for x in p],
            "labels": labels, "accuracy": accuracy_score(t, p),
            "macro_f1": f1_score(t, p, average="macro", zero_division=0),
            "micro_f1": f1_score(t, p, average="micro", zero_division=0),
            "weighted_f1": f1_score(t, p, average="weighted", zero_division=0),
            "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(),
            "support": sup.tolist(),
            "confusion": confusion_matrix(t, p, labels=labels).tolist()}
    dump("classification.json", out)


def gen_perplexity_percentile():
    import numpy as np

    rng = np.random.default_rng(7)
    seqs = [np.log(rng.uniform(0.01, 1.0, n)).tolist() for n in (5, 17, 1, 40)]
    flat = np.concatenate([np.array(s) for s in seqs])
    values = rng.normal(0.4, 0.2, 37).tolist()
    qs = [0, 2.5, 10, 33.3, 50, 75, 97.5, 100]
    dump("perplexity_percentile.json", {
        "sequences": seqs,
        "per_sequence": [float(np.exp(-np.mean(s))) for s in seqs],
        "corpus": float(np.exp(-flat.mean())),
        "values": values,
        "percentiles": {str(q): float(np.percentile(values, q)) for q in qs}})


def bert_forward(w, ids, cfg):
    """Plain numpy float64 BERT (HF BertModel), last hidden states (T, C)."""
    import numpy as np
    from math import erf, sqrt

    g = lambda k: w[k].astype(np.float64)  # noqa: E731
    eps = cfg["layer_norm_eps"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g(p + ".weight") + g(p + ".bias")

    def lin(x, p):
        return x @ g(p + ".weight").T + g(p + ".bias")

    verf = np.vectorize(erf)
    t = len(ids)
    h = cfg["num_attention_heads"]
    c = cfg["hidden_size"]
    d = c // h
    x = (g("embeddings.word_embeddings.weight")[ids]
         + g("embeddings.position_embeddings.weight")[:t]
         + g("embeddings.token_type_embeddings.weight")[0])
    x = ln(x, "embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (lin(x, f"{p}.attention.self.{n}").reshape(t, h, d).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(t, c)
        a = ln(lin(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        inter = lin(a, f"{p}.intermediate.dense")
        inter = 0.5 * inter * (1 + verf(inter / sqrt(2)))
        x = ln(lin(inter, f"{p}.output.dense") + a, f"{p}.output.LayerNorm")
    return x


def gen_embedding(model_dir):
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    pairs = [p for p in PAIRS if p[0] in ("basic", "synonyms", "no_overlap", "multi_ref", "unicode")]
    texts = sorted({t for p in pairs for t in [p[1][0], p[2]]})
    emb, content = {}, {}
    ids_of = {}
    for text in texts:
        ids = tok.encode(text).ids
        ids_of[text] = ids
        hidden = bert_forward(w, np.array(ids), cfg)
        emb[text] = hidden.mean(0)
        c = hidden[1:-1]
        content[text] = c / np.linalg.norm(c, axis=1, keepdims=True)
    out = {"texts": [{"text": t, "ids": ids_of[t], "mean_pooled": emb[t].tolist()} for t in texts],
           "pairs": []}
    for pid, refs, hyp in pairs:
        ref = refs[0]
        a, b = emb[hyp], emb[ref]
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        sim = content[hyp] @ content[ref].T
        prec, rec = float(sim.max(1).mean()), float(sim.max(0).mean())
        out["pairs"].append({"id": pid, "reference": ref, "hypothesis": hyp, "cosine": cos,
                             "bertscore": [prec, rec, 2 * prec * rec / (prec + rec)]})
    # sentence-transformers' own output, when it is installed, as a second check
    try:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(model_dir, device="cpu")
        out["sentence_transformers_normalized"] = st.encode(texts).tolist()
    except ImportError:
        pass
    dump("embedding.json", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", default="models/all-minilm-l6-v2")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    jobs = {"pairs": gen_pairs, "bleu": gen_bleu, "rouge": gen_rouge, "porter": gen_porter, "meteor": gen_meteor,
            "squad": gen_squad, "classification": gen_classification,
            "perplexity": gen_perplexity_percentile,
            "embedding": lambda: gen_embedding(args.minilm)}
    for name, fn in jobs.items():
        if not args.only or name in args.only:
            fn()


if __name__ == "__main__":
    main()
