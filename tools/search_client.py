"""A reference search client over a strata run's own files, the way a data engineer would
write one without strata: the tantivy Python bindings for BM25 and numpy for dense search.
It times each search, sequentially in one thread, to set beside `strata search` / `strata serve`.

    python3 -m venv /tmp/searchvenv && /tmp/searchvenv/bin/pip install -r tools/search-requirements.txt
    /tmp/searchvenv/bin/python tools/search_client.py RUN_DIR QUESTIONS_JSONL [--n 2000] [--seed 42] [--json]

Modes (each returns chunk ids, best first):
  bm25    index.parse_query_lenient(q, ["text", "headings"], {"headings": 0.5}) (strata's
          parse and boost), searcher.search(query, 50), then the stored chunk_id/doc_id of the
          50 hits (strata fetches its hits' stored fields too).
  dense   exact: np.memmap of dense/vectors.f32 (rows x dim, L2-normalised) @ q, argpartition
          for the best 50, sorted by score.
  hybrid  the two top-50 lists above, fused by reciprocal rank (k = 60), top 10.

Query vectors: the client has no embedding model, so a question's query vector is the dense
row of a chunk of the question's own document (the first row whose chunk id starts with
doc_id + "#"). Search latency does not depend on the vector's content; recall for dense and
hybrid would be flattered by it, so recall@10 is reported for bm25 only, as a sanity check
(a hit = one of the top 10 chunks belongs to the question's document).

Latency: time.perf_counter around each search (query parse + search + hit fields), per mode,
over --n questions drawn with random.Random(seed).sample; p50/p99 are nearest-rank quantiles.
--threads (default 1) caps the BLAS threads numpy may use for the dense product.
"""
import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

K_EACH = 50       # candidates per list
K_OUT = 10        # results returned
RRF_K = 60
# Characters the tantivy query parser gives meaning to; stripped only when the binding has no
# parse_query_lenient.
SPECIAL = re.compile(r'[+\-!(){}\[\]^"~*?:\\/<>=&|\']')


def nearest_rank(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("questions")
    ap.add_argument("--n", type=int, default=2000, help="questions to sample (default 2000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup", type=int, default=20, help="untimed searches per mode first (default 20)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for numpy (default 1; 0 = numpy's default)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()

    if args.threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np  # after the thread caps: BLAS reads them at load
    import tantivy

    run = Path(args.run_dir)
    meta = json.loads((run / "dense" / "meta.json").read_text())
    rows, dim = int(meta["rows"]), int(meta["dim"])
    chunk_ids = (run / "dense" / "chunk_ids.txt").read_text(encoding="utf-8").splitlines()
    if len(chunk_ids) != rows:
        sys.exit(f"dense/chunk_ids.txt has {len(chunk_ids)} lines, meta.json says rows = {rows}")
    vectors = np.memmap(run / "dense" / "vectors.f32", dtype="<f4", mode="r", shape=(rows, dim))

    # First row of each document: chunk ids are "<doc_id>#<n>".
    first_row = {}
    for row, cid in enumerate(chunk_ids):
        doc, sep, _ = cid.rpartition("#")
        if sep and doc not in first_row:
            first_row[doc] = row

    index = tantivy.Index.open(str(run / "index"))
    searcher = index.searcher()
    lenient = hasattr(index, "parse_query_lenient")

    def parse(q):
        if lenient:
            query, _errors = index.parse_query_lenient(q, ["text", "headings"], {"headings": 0.5})
            return query
        cleaned = SPECIAL.sub(" ", q).strip() or "*"
        return index.parse_query(cleaned, ["text", "headings"], {"headings": 0.5})

    def bm25(q):
        hits = searcher.search(parse(q), K_EACH).hits
        out = []
        for _score, addr in hits:
            d = searcher.doc(addr)
            out.append((d.get_first("chunk_id"), d.get_first("doc_id")))
        return out

    def dense(v):
        scores = vectors @ v
        top = np.argpartition(-scores, K_EACH - 1)[:K_EACH] if rows > K_EACH else np.arange(rows)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [chunk_ids[i] for i in top]

    def hybrid(q, v):
        fused = {}
        for ranked in ([c for c, _ in bm25(q)], dense(v)):
            for rank, cid in enumerate(ranked, 1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        return sorted(fused, key=lambda c: (-fused[c], c))[:K_OUT]

    questions = []
    with open(args.questions, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                questions.append((o["question"], o["doc_id"]))
    usable = [(q, d) for q, d in questions if d in first_row]
    n = min(args.n, len(usable))
    if n == 0:
        sys.exit(f"none of the {len(questions)} questions has a document among the run's {rows} chunks")
    sample = random.Random(args.seed).sample(usable, n)
    qvecs = [np.array(vectors[first_row[d]], dtype=np.float32) for _, d in sample]

    calls = {
        "bm25": lambda i: bm25(sample[i][0]),
        "dense": lambda i: dense(qvecs[i]),
        "hybrid": lambda i: hybrid(sample[i][0], qvecs[i]),
    }
    results = {}
    for mode, call in calls.items():
        for i in range(min(args.warmup, n)):
            call(i)
        lat, outs = [], []
        t_all = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            r = call(i)
            lat.append((time.perf_counter() - t0) * 1000.0)
            outs.append(r)
        total = time.perf_counter() - t_all
        lat.sort()
        m = {"p50_ms": round(nearest_rank(lat, 50), 3), "p99_ms": round(nearest_rank(lat, 99), 3),
             "mean_ms": round(sum(lat) / n, 3) if n else None, "total_s": round(total, 3)}
        if mode == "bm25":
            hit = sum(1 for (q, d), r in zip(sample, outs) if any(doc == d for _, doc in r[:K_OUT]))
            m["recall_at_10"] = round(hit / n, 4) if n else None
        results[mode] = m

    report = {
        "run_dir": str(run),
        "questions": args.questions,
        "n": n,
        "seed": args.seed,
        "questions_without_vector": len(questions) - len(usable),
        "rows": rows,
        "dim": dim,
        "model": meta.get("model"),
        "blas_threads": args.threads or "default",
        "numpy": np.__version__,
        "tantivy": getattr(tantivy, "__version__", "?"),
        "bm25_parse": "parse_query_lenient" if lenient else "parse_query (special characters stripped)",
        "query_vector": "dense row of the first chunk of the question's own document (no embedding model; latency does not depend on the vector)",
        "candidates_per_list": K_EACH,
        "rrf_k": RRF_K,
        "warmup_per_mode": min(args.warmup, n),
        "modes": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"run {run}: {rows} chunks x {dim} dims ({meta.get('model')}); {n} questions (seed {args.seed}), "
          f"one thread, BLAS threads {report['blas_threads']}, {report['warmup_per_mode']} warm-up searches per mode")
    print(f"query vectors: {report['query_vector']}")
    print(f"{'mode':<8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'total s':>9} {'recall@10':>10}")
    for mode, m in results.items():
        rec = f"{m['recall_at_10']:.4f}" if "recall_at_10" in m else "-"
        print(f"{mode:<8} {m['p50_ms']:>9.3f} {m['p99_ms']:>9.3f} {m['mean_ms']:>9.3f} {m['total_s']:>9.3f} {rec:>10}")


if __name__ == "__main__":
    main()
