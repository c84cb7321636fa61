#!/usr/bin/env python3
"""Write a copy of all-MiniLM-L6-v2 whose word-embedding table keeps only the
token ids of the embedding test texts (so it fits where the full 90 MB file does
not, e.g. to re-run the reference on another machine with torch).

    python scripts/reference_vectors/compact_minilm.py models/all-minilm-l6-v2 models/minilm-compact

Writes config.json (vocab_size = kept ids), model.safetensors and ids.json
({"texts": [{"text", "ids", "compact_ids"}]}) taken from tests/fixtures/embedding.json.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
fixture = json.load(open("crates/medtune-eval/tests/fixtures/embedding.json"))
keep = sorted({i for t in fixture["texts"] for i in t["ids"]})
index = {old: new for new, old in enumerate(keep)}
w = load_file(os.path.join(src, "model.safetensors"))
w["embeddings.word_embeddings.weight"] = np.ascontiguousarray(
    w["embeddings.word_embeddings.weight"][keep])
w.pop("embeddings.position_ids", None)
save_file(w, os.path.join(dst, "model.safetensors"))
cfg = json.load(open(os.path.join(src, "config.json")))
cfg["vocab_size"] = len(keep)
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
texts = [{"text": t["text"], "ids": t["ids"], "compact_ids": [index[i] for i in t["ids"]]}
         for t in fixture["texts"]]
json.dump({"texts": texts}, open(os.path.join(dst, "ids.json"), "w"), indent=1)
print(dst, len(keep), "ids kept")
