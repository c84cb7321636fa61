#!/usr/bin/env python3
"""Cross-check the numpy BERT reference with HF transformers' BertModel (float64).

    python scripts/reference_vectors/check_bert_torch.py models/minilm-compact OUT.json

Reads the compact model written by compact_minilm.py, runs BertModel in float64
on CPU, mean-pools the last hidden states, and reports the largest difference
from the `mean_pooled` vectors in tests/fixtures/embedding.json.
"""
import json
import os
import sys

import torch
from transformers import BertModel

model_dir, out = sys.argv[1], sys.argv[2]
fixture = json.load(open("crates/medtune-eval/tests/fixtures/embedding.json"))
want = {t["text"]: t["mean_pooled"] for t in fixture["texts"]}
model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float64, attn_implementation="eager")
model.eval()
ids = json.load(open(os.path.join(model_dir, "ids.json")))["texts"]
max_diff, rows = 0.0, []
with torch.no_grad():
    for t in ids:
        x = torch.tensor([t["compact_ids"]])
        h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0]
        pooled = h.mean(0).tolist()
        d = max(abs(a - b) for a, b in zip(pooled, want[t["text"]]))
        max_diff = max(max_diff, d)
        rows.append({"text": t["text"], "max_abs_diff": d})
report = {"torch": torch.__version__, "max_abs_diff": max_diff, "texts": rows}
json.dump(report, open(out, "w"), indent=1)
print(json.dumps(report, indent=1))
