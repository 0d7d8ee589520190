"""The Python reference pipeline of strata's benchmark. It is not part of strata.

It does what `strata run` does, the way a data engineer would write it in Python with the
usual libraries, so that strata's bench (tools/bench.sh) can time both on the same corpus,
model and thread count. Install it with tools/reference/setup.sh, which prints its python:

    PY=$(tools/reference/setup.sh)
    "$PY" tools/reference/pipeline.py --corpus docs.jsonl --model-dir DIR --out OUTDIR \
        [--threads 2] [--budget 0.01] [--seed 42] [--max-docs N]

Stages, each timed with time.perf_counter into OUTDIR/timings.json ({"ingest": s, ...,
"total": s} plus the counts documents, chunks, tokens, selected, selected_tokens,
budget_tokens, leaves):
  ingest    the JSONL (`doc_id`, or `id` as MedQuAD has it, and `text`), NFC-normalised;
            --max-docs keeps the first N documents.
  chunk     semchunk.chunkerify over the model's tokenizer.json (padding and truncation off,
            tokens counted without special tokens), 254 tokens a chunk (256 minus [CLS]/[SEP]).
  embed     onnxruntime (CPUExecutionProvider, intra-op threads = --threads) on DIR/model.onnx
            (all-MiniLM-L6-v2, fp32): [CLS] chunk [SEP] truncated to 256 tokens, batches of 32
            in length order, each padded to its longest, mean-pooled over the attention mask,
            L2-normalised.
  taxonomy  hierarchical k-means (scikit-learn), depth 3: at each node KMeans(k, n_init=3,
            random_state=seed) for k in 2..10, the k with the best silhouette on a sample of at
            most 2,000 vectors wins; nodes under 20 vectors are leaves. Each node is labelled by
            its top 5 TF-IDF terms among the nodes of its level (a node's chunks as one
            document: TfidfVectorizer's arithmetic, with the counts taken once for all levels).
  select    greedy facility location (cosine similarity, clipped at 0), lazy greedy with a
            heap, gain per token, until budget x corpus tokens; run per level-1 subtree, which
            gets a share of the budget by its tokens, so the similarity matrix is one subtree's.
  emit      OUTDIR/chunks.parquet (chunk_id, doc_id, text, n_tokens, leaf_path, leaf_label),
            OUTDIR/train.parquet (the selected chunks, their taxonomy path as the instruction)
            and OUTDIR/taxonomy.json, with pyarrow.
  index     a tantivy index (the Python bindings) of every chunk in OUTDIR/index: chunk_id
            (stored, raw), text (indexed).
"""
import argparse
import heapq
import json
import os
import shutil
import sys
import time
import unicodedata
import warnings
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, required=True, help="JSONL with doc_id (or id) and text")
    p.add_argument("--model-dir", type=Path, required=True, help="holds model.onnx and tokenizer.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=0.01, help="fraction of the corpus tokens to select")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-docs", type=int, default=None)
    return p.parse_args()


# The thread caps go into the environment before numpy, scikit-learn (OpenMP, BLAS) and
# tokenizers (rayon) are imported, so every library keeps to --threads.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import semchunk  # noqa: E402
import tantivy  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

CHUNK_TOKENS = 254      # the model's 256 less [CLS] and [SEP]
MAX_SEQ = 256
BATCH = 32
DEPTH, MIN_NODE, MAX_K, SIL_SAMPLE = 3, 20, 10, 2000
# Repeated boilerplate chunks give a node fewer distinct points than k; KMeans then warns once
# per k. The silhouette still compares the k that do split, so the warning is noise here.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
TOP_TERMS = 5


def ingest(path, max_docs):
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if max_docs is not None and len(docs) >= max_docs:
                break
            if not line.strip():
                continue
            rec = json.loads(line)
            text = unicodedata.normalize("NFC", rec.get("text") or "")
            if text.strip():
                docs.append((str(rec.get("doc_id", rec.get("id"))), text))
    return docs


def chunk(docs, tok, processes):
    chunker = semchunk.chunkerify(tok, chunk_size=CHUNK_TOKENS, tokenizer_kwargs={"add_special_tokens": False})
    per_doc = chunker([text for _, text in docs], processes=processes)
    rows = []  # (chunk_id, doc_id, text)
    for (doc_id, _), pieces in zip(docs, per_doc):
        rows += [(f"{doc_id}#{i}", doc_id, c) for i, c in enumerate(c for c in pieces if c.strip())]
    counts = [len(e.ids) for e in tok.encode_batch([r[2] for r in rows], add_special_tokens=False)]
    return rows, np.array(counts, dtype=np.int64)


def embed(texts, tok, model_path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    sep, pad = tok.token_to_id("[SEP]"), tok.token_to_id("[PAD]")
    ids = [e.ids if len(e.ids) <= MAX_SEQ else e.ids[: MAX_SEQ - 1] + [sep]
           for e in tok.encode_batch(texts, add_special_tokens=True)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.empty((len(ids), 384), dtype=np.float32)
    for b in range(0, len(order), BATCH):
        rows = order[b: b + BATCH]
        width = max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, : len(ids[i])] = ids[i]
            mask[r, : len(ids[i])] = 1
        (hidden,) = sess.run(["last_hidden_state"], {
            "input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)})
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return out


def cluster(X, seed):
    """Leaf path per row ("3.0.7"), by recursive k-means with k chosen by silhouette."""
    paths = [""] * len(X)

    def split(idx, path, depth):
        best = None
        if depth < DEPTH and len(idx) >= MIN_NODE:
            Xn = X[idx]
            for k in range(2, min(MAX_K, len(idx) - 1) + 1):
                labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(Xn)
                if len(np.unique(labels)) < 2:
                    continue
                score = silhouette_score(Xn, labels, sample_size=min(SIL_SAMPLE, len(idx)), random_state=seed)
                if best is None or score > best[0]:
                    best = (score, labels)
        if best is None:  # a leaf
            for i in idx:
                paths[i] = path or "0"
            return
        for c in np.unique(best[1]):
            split(idx[best[1] == c], f"{path}.{c}" if path else str(c), depth + 1)

    split(np.arange(len(X)), "", 0)
    return paths


def label_nodes(texts, paths):
    """Top TF-IDF terms of every node, its chunks taken as one document among its level's nodes."""
    cv = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    counts = cv.fit_transform(texts)
    vocab = cv.get_feature_names_out()
    labels = {}
    for level in range(1, DEPTH + 1):
        members = [(".".join(p.split(".")[:level]), i) for i, p in enumerate(paths) if len(p.split(".")) >= level]
        nodes = sorted({node for node, _ in members})
        if not nodes:
            break
        pos = {node: r for r, node in enumerate(nodes)}
        onehot = sp.csr_matrix((np.ones(len(members)), ([pos[n] for n, _ in members], [i for _, i in members])),
                               shape=(len(nodes), len(texts)))
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(onehot @ counts).toarray()
        for r, node in enumerate(nodes):
            top = [vocab[j] for j in np.argsort(-tfidf[r], kind="stable")[:TOP_TERMS] if tfidf[r, j] > 0]
            labels[node] = " ".join(top)
    return labels


def facility_location(X, cost, budget):
    """Lazy greedy for max sum_i max_{j in A} sim(i, j) per token, within budget tokens."""
    S = X @ X.T
    np.maximum(S, 0, out=S)
    cover = np.zeros(len(X), dtype=np.float32)
    heap = [(-float(g) / cost[j], j) for j, g in enumerate(S.sum(axis=0))]
    heapq.heapify(heap)
    chosen, spent = [], 0
    while heap:
        _, j = heapq.heappop(heap)
        if spent + cost[j] > budget:
            continue  # it will never fit: spent only grows
        gain = float(np.maximum(S[j] - cover, 0).sum()) / cost[j]
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, j))  # stale bound: put it back with its true gain
            continue
        chosen.append(j)
        spent += int(cost[j])
        np.maximum(cover, S[j], out=cover)
    return chosen


def select(X, n_tokens, paths, budget_tokens):
    top = np.array([p.split(".")[0] for p in paths])
    total = n_tokens.sum()
    chosen = []
    for subtree in sorted(set(top)):
        idx = np.flatnonzero(top == subtree)
        share = budget_tokens * n_tokens[idx].sum() / total
        cost = np.maximum(n_tokens[idx], 1)
        chosen += [int(idx[j]) for j in facility_location(X[idx], cost, share)]
    return sorted(chosen)


def path_labels(path, labels):
    parts = path.split(".")
    return [labels.get(".".join(parts[:d]), "") for d in range(1, len(parts) + 1)]


def emit(out, rows, n_tokens, paths, labels, chosen):
    leaf_label = [labels.get(p, "") for p in paths]
    pq.write_table(pa.table({
        "chunk_id": [r[0] for r in rows], "doc_id": [r[1] for r in rows], "text": [r[2] for r in rows],
        "n_tokens": pa.array(n_tokens, pa.int32()), "leaf_path": paths, "leaf_label": leaf_label,
    }), out / "chunks.parquet", compression="zstd")
    instruction = ["Write a passage on this topic: " + " > ".join(path_labels(paths[i], labels)) for i in chosen]
    pq.write_table(pa.table({
        "chunk_id": [rows[i][0] for i in chosen], "doc_id": [rows[i][1] for i in chosen],
        "instruction": instruction, "text": [rows[i][2] for i in chosen],
        "n_tokens": pa.array(n_tokens[chosen], pa.int32()), "leaf_path": [paths[i] for i in chosen],
    }), out / "train.parquet", compression="zstd")
    sizes = {}
    for p in paths:
        parts = p.split(".")
        for d in range(1, len(parts) + 1):
            sizes[".".join(parts[:d])] = sizes.get(".".join(parts[:d]), 0) + 1
    nodes = [{"path": n, "label": labels.get(n, ""), "chunks": sizes[n]} for n in sorted(sizes)]
    (out / "taxonomy.json").write_text(json.dumps({"nodes": nodes}, indent=1) + "\n")


def index(out, rows, threads):
    path = out / "index"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    schema = (tantivy.SchemaBuilder()
              .add_text_field("chunk_id", stored=True, tokenizer_name="raw")
              .add_text_field("text", stored=False)
              .build())
    writer = tantivy.Index(schema, path=str(path)).writer(heap_size=128_000_000, num_threads=threads)
    for chunk_id, _, text in rows:
        writer.add_document(tantivy.Document(chunk_id=chunk_id, text=text))
    writer.commit()
    writer.wait_merging_threads()


def main(args):
    args.out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    times, clock = {}, time.perf_counter()
    start = clock

    def stage(name):
        nonlocal clock
        now = time.perf_counter()
        times[name] = round(now - clock, 4)
        clock = now
        print(f"reference: {name:<9} {times[name]:9.2f} s", file=sys.stderr)

    with threadpool_limits(limits=args.threads):
        docs = ingest(args.corpus, args.max_docs)
        stage("ingest")
        rows, n_tokens = chunk(docs, tok, args.threads)
        stage("chunk")
        X = embed([r[2] for r in rows], tok, args.model_dir / "model.onnx", args.threads)
        stage("embed")
        paths = cluster(X, args.seed)
        labels = label_nodes([r[2] for r in rows], paths)
        stage("taxonomy")
        budget_tokens = args.budget * int(n_tokens.sum())
        chosen = select(X, n_tokens, paths, budget_tokens)
        stage("select")
        emit(args.out, rows, n_tokens, paths, labels, chosen)
        stage("emit")
        index(args.out, rows, args.threads)
        stage("index")
    times["total"] = round(time.perf_counter() - start, 4)
    times.update(documents=len(docs), chunks=len(rows), tokens=int(n_tokens.sum()), selected=len(chosen),
                 selected_tokens=int(n_tokens[chosen].sum()), budget_tokens=int(budget_tokens),
                 leaves=len(set(paths)))
    (args.out / "timings.json").write_text(json.dumps(times, indent=1) + "\n")
    print(f"reference: {len(docs)} documents, {len(rows)} chunks, {times['tokens']} tokens, "
          f"{len(set(paths))} leaves; selected {len(chosen)} chunks, {times['selected_tokens']} of "
          f"{int(budget_tokens)} budget tokens; {times['total']:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main(ARGS)
