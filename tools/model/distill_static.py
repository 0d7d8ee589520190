"""Distil a static embedding table from all-MiniLM-L6-v2 (the Model2Vec idea), for
strata-embed's `model = "static"` fast path.

    python distill_static.py MODEL_DIR [DIMS]

1. Every real vocabulary token t (not [PAD], [unusedN], [CLS], [SEP], [MASK], [UNK]) goes
   through MODEL_DIR/model.onnx once, as the one-token sentence [CLS] t [SEP]; its vector
   is the model's own sentence embedding of it (mean over the three positions).
2. PCA (centred over the real tokens, by SVD) to DIMS dimensions (default 256), then each
   row scaled to unit length. Centring removes the direction every one-token sentence
   shares ([CLS]/[SEP], the anisotropy of the model's output), which otherwise dominates a
   mean of many tokens; unit rows leave a token's weight to step 3 alone.
3. SIF weighting by Zipf-estimated frequency: BERT's uncased vocabulary lists its tokens
   roughly by corpus frequency (the words from id 1996, "the", on; the single characters,
   ids 999-1995, in code-point order). A token of frequency rank r gets p(r) = (1/r) / H
   (H normalises over the vocabulary) and weight a / (a + p(r)) with a = SIF_A, so "the",
   "of" or "," count far less than "infarction". Characters have no frequency order: ASCII
   punctuation and digits get rank 1 (as frequent as "the"), other characters the rank of
   their position. The weight is folded into each row, so a text's vector is the sum of
   its tokens' rows (the weighted mean up to a scale), L2-normalised by the Rust side.

Writes, into MODEL_DIR through temporary files and renames:
  static.f32   raw little-endian float32 matrix [vocab_size, DIMS], row = token id
               (all-zero rows for tokens that never carry meaning)
  static.json  shape, dtype, weighting, PCA explained variance, source model hash, timing
Deterministic: ORT on CPU with fixed threads, SVD of a fixed matrix, sign-fixed components.
"""
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

DIMS = 256
SIF_A = 3e-6  # chosen among 1e-3..1e-6 on a MedQuAD question->document check (BENCHMARKS.md)
BATCH = 512
FIRST_WORD_ID = 1996  # "the": from here on the vocabulary is ordered by frequency
FIRST_CHAR_ID = 999   # "!": single characters (code-point order) up to FIRST_WORD_ID


def vocab(model_dir):
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    v = tok["model"]["vocab"]
    ids = sorted(v.values())
    assert ids == list(range(len(ids))), "tokenizer.json vocabulary ids must be 0..n-1"
    inv = [None] * len(ids)
    for t, i in v.items():
        inv[i] = t
    return inv


def is_real(token):
    return not re.fullmatch(r"\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]", token)


def token_outputs(model_dir, tokens, threads=2):
    """[n, 384] model sentence embeddings (mean over [CLS] t [SEP]) of each real token."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    cls, sep = tokens.index("[CLS]"), tokens.index("[SEP]")
    real = [i for i, t in enumerate(tokens) if is_real(t)]
    out = np.zeros((len(tokens), 384), np.float32)
    for s in range(0, len(real), BATCH):
        ids = np.array([[cls, i, sep] for i in real[s:s + BATCH]], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        hidden = sess.run(["last_hidden_state"], feed)[0]
        out[real[s:s + BATCH]] = hidden.mean(1)
    return out, np.array(real)


def ranks(tokens):
    """Estimated frequency rank (1 = most frequent) of every token id."""
    r = np.zeros(len(tokens), np.float64)
    for i, t in enumerate(tokens):
        if i >= FIRST_WORD_ID:
            r[i] = i - FIRST_WORD_ID + 1
        elif i >= FIRST_CHAR_ID:
            r[i] = 1 if (t.isascii() and not t.isalpha()) else i - FIRST_CHAR_ID + 1
        else:
            r[i] = len(tokens)
    return r


def sif_weights(tokens, a=SIF_A):
    inv = 1.0 / ranks(tokens)
    p = inv / inv.sum()
    return a / (a + p)


def pca(x, dims):
    """Centred PCA by SVD; each component's sign fixed (largest |loading| positive)."""
    mean = x.mean(0)
    xc = (x - mean).astype(np.float64)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
    vt = vt * signs[:, None]
    explained = (s ** 2) / (s ** 2).sum()
    return (xc @ vt[:dims].T), mean, explained[:dims].sum()


def distil(model_dir, dims=DIMS, threads=2):
    t0 = time.time()
    tokens = vocab(model_dir)
    raw, real = token_outputs(model_dir, tokens, threads)
    t_model = time.time() - t0
    reduced, _, explained = pca(raw[real], dims)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    weights = sif_weights(tokens)
    table = np.zeros((len(tokens), dims), np.float32)
    table[real] = (reduced * weights[real, None]).astype(np.float32)
    info = {
        "format": "raw little-endian float32, row-major [rows, dims], row = token id",
        "rows": len(tokens), "dims": dims, "dtype": "float32",
        "source": "sentence-transformers/all-MiniLM-L6-v2 (model.onnx, fp32)",
        "source_sha256": hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest(),
        "tokenizer_sha256": hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest(),
        "token_vector": "model sentence embedding of [CLS] t [SEP] (mean over 3 positions, before L2)",
        "reduction": {"method": "PCA, centred over real tokens, rows then scaled to unit length", "input_dims": raw.shape[1], "dims": dims,
                      "explained_variance": round(float(explained), 4)},
        "weighting": {"method": "SIF a/(a+p), p = Zipf 1/rank normalised; rank = id-1995 for words,"
                                " 1 for ASCII punctuation/digits, position for other characters",
                      "a": SIF_A, "min": round(float(weights[real].min()), 4),
                      "max": round(float(weights[real].max()), 4)},
        "real_tokens": int(len(real)), "zero_rows": int(len(tokens) - len(real)),
        "seconds_model": round(t_model, 1), "seconds_total": round(time.time() - t0, 1),
    }
    return table, info


def main(model_dir, dims=DIMS):
    model_dir = Path(model_dir)
    table, info = distil(model_dir, int(dims), int(os.environ.get("STRATA_DISTILL_THREADS", "2")))
    tmp = model_dir / f"static.f32.tmp{os.getpid()}"
    table.astype("<f4").tofile(tmp)
    os.replace(tmp, model_dir / "static.f32")
    tmp = model_dir / f"static.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, model_dir / "static.json")
    print(f"distil: static.f32 [{info['rows']} x {info['dims']}] "
          f"({table.nbytes / 2**20:.1f} MiB), PCA keeps {info['reduction']['explained_variance']:.1%} "
          f"of the variance, {info['seconds_total']}s ({info['seconds_model']}s in the model)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
