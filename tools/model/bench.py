"""Throughput of model.onnx vs model_int8.onnx under onnxruntime (CPU, N threads).

    "$STRATA_CACHE/venv/bin/python" tools/model/bench.py [MODEL_DIR] [THREADS]

256 sequences of 128 tokens (random vocabulary ids between [CLS] and [SEP]; the
cost does not depend on which ids), batch 32, one warm-up batch not timed.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else
                 Path(os.environ.get("STRATA_CACHE", Path.home() / ".cache/strata")) / "models/all-minilm-l6-v2")
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
n, seq, batch = 256, 128, 32

ids = np.random.default_rng(0).integers(1000, 30000, (n, seq), dtype=np.int64)
ids[:, 0], ids[:, -1] = 101, 102
for name in ("model.onnx", "model_int8.onnx"):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(model_dir / name), opts, providers=["CPUExecutionProvider"])
    feed = lambda b: {"input_ids": b, "attention_mask": np.ones_like(b), "token_type_ids": np.zeros_like(b)}  # noqa: E731
    sess.run(None, feed(ids[:batch]))
    t = time.perf_counter()
    for i in range(0, n, batch):
        sess.run(None, feed(ids[i:i + batch]))
    dt = time.perf_counter() - t
    print(f"{name:16s} {threads} threads: {n / dt:7.1f} sentences/s, {n * seq / dt:8.0f} tokens/s ({dt:.2f}s)")
