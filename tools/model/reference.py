"""Write fixtures/embeddings/reference.json for the Rust embedding tests.

    "$STRATA_CACHE/venv/bin/python" tools/model/reference.py   # after setup.sh

For each sentence: the token ids (tokenizer.json via minilm.WordPiece, with
[CLS]/[SEP], no padding) and the 384-dim mean-pooled, L2-normalised embedding from
the float64 numpy forward pass (not ONNX), so the Rust side is checked against an
independent implementation. Run once; the output is committed.
"""
import json
import os
import re
from pathlib import Path

import minilm

SENTENCES = [
    "A heart attack occurs when blood flow to the heart is blocked.",
    "Myocardial infarction results from coronary artery occlusion.",
    "The stock market fell sharply today.",
    "Insulin lowers blood glucose by promoting uptake into muscle and fat.",
]

cache = Path(os.environ.get("STRATA_CACHE", Path.home() / ".cache/strata"))
src = cache / "src/all-MiniLM-L6-v2"
out = Path(__file__).resolve().parents[2] / "fixtures/embeddings/reference.json"

cfg = minilm.load_config(src / "config.json")
w = minilm.read_safetensors(src / "model.safetensors")
tok = minilm.WordPiece(cache / "models/all-minilm-l6-v2/tokenizer.json")
rows = []
for s in SENTENCES:
    ids = tok.encode(s)
    rows.append({"text": s, "token_ids": ids, "embedding": [float(x) for x in minilm.embed(w, cfg, ids)]})

doc = {"model": "sentence-transformers/all-MiniLM-L6-v2", "dim": len(rows[0]["embedding"]),
       "pooling": "mean over attention mask, then L2 normalisation",
       "source": "tools/model/reference.py (float64 numpy forward pass)", "sentences": rows}
out.parent.mkdir(parents=True, exist_ok=True)
text = json.dumps(doc, indent=1)  # Python floats print as their shortest exact repr
text = re.sub(r"\[[-0-9.e,\s]+\]", lambda m: json.dumps(json.loads(m.group(0))), text)  # one line per list
out.write_text(text + "\n")
print(f"wrote {out}")
