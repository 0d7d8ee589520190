"""Helpers of tools/bench.sh (`make bench`). Standard library only, except where noted.

    python3 tools/bench.py subsets CORPUS DIR          JSONL subsets 10/25/50% + the corpus 4x
    python3 tools/bench.py copies CORPUS N OUT [distinct]  the corpus N times over (distinct: each copy's headings its own)
    python3 tools/bench.py texts RUN_DIR OUT.json       the embed stage's distinct model inputs (pyarrow)
    VENV_PY tools/bench.py ceiling TEXTS.json MODEL_DIR ONNX_FILE [THREADS] [BATCH] [STRIDE]
                                                        raw onnxruntime on the same length-sorted batches
    python3 tools/bench.py record LABEL RUN_DIR TIME_FILE RESULTS.jsonl
    python3 tools/bench.py reference TIMINGS.json TIME_FILE OUT.json   the Python reference's run
    python3 tools/bench.py table RESULTS.jsonl [CEILINGS.jsonl] [TOKENIZER_CEILINGS.jsonl] [REFERENCE.json]
                                                        the table, medians over runs
"""
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

SUBSETS = (10, 25, 50)
COPIES = 4


def subsets(corpus, out_dir):
    """Nested random subsets (seed 42, document order kept) and the corpus concatenated
    COPIES times with ids rewritten `<id>#copyK` so they stay unique."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = Path(corpus).read_text(encoding="utf-8").splitlines()
    order = list(range(len(lines)))
    random.Random(42).shuffle(order)
    for pct in SUBSETS:
        keep = sorted(order[: len(lines) * pct // 100])
        (out_dir / f"medquad-{pct}.jsonl").write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
    copies(corpus, COPIES, out_dir / f"medquad-x{COPIES}.jsonl")


def copies(corpus, n, out, headings="same"):
    """The corpus `n` times over, ids rewritten `<id>#copyK` so they stay unique. With
    `headings` = "distinct", copy K's Markdown headings end in ` (copy K)`: copies otherwise
    repeat the corpus's headings, so the distinct headings would not grow with the corpus."""
    lines = Path(corpus).read_text(encoding="utf-8").splitlines()
    with open(out, "w", encoding="utf-8") as f:
        for k in range(int(n)):
            for line in lines:
                doc = json.loads(line)
                if k:
                    doc["id"] = f"{doc['id']}#copy{k}"
                    if headings == "distinct":
                        doc["text"] = re.sub(r"(?m)^(#{1,6} .*?)[ \t]*$", rf"\1 (copy {k})", doc["text"])
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")


def texts(run_dir, out):
    """The distinct model inputs of a run, as the embed stage builds them (model_input)."""
    import pyarrow.parquet as pq
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    with_headings = manifest["config"].get("embed", {}).get("with_headings", True)
    table = pq.read_table(run_dir / "chunks.parquet", columns=["text", "heading_path"]).to_pylist()
    seen, inputs = set(), []
    for row in table:
        t = row["text"]
        if with_headings and row["heading_path"]:
            t = " > ".join(row["heading_path"]) + "\n" + t
        if t not in seen:
            seen.add(t)
            inputs.append(t)
    Path(out).write_text(json.dumps(inputs, ensure_ascii=False), encoding="utf-8")


def ceiling(texts_file, model_dir, onnx_file, threads=2, batch=32, stride=1):
    """onnxruntime alone (the venv's, the same library the Rust side loads) on the texts in
    the embed stage's batches: sorted by token length (with [CLS]/[SEP], at most 256), padded
    to each batch's longest. Tokenising and pooling are not timed: only session.run is.
    STRIDE > 1 times every STRIDE-th batch only (the same length mix) and scales the time
    up to all batches: a shorter estimate for a busy machine."""
    import numpy as np
    import onnxruntime as ort
    sys.path.insert(0, str(Path(__file__).resolve().parent / "model"))
    import minilm
    model_dir, threads, batch, stride = Path(model_dir), int(threads), int(batch), int(stride)
    tok = minilm.WordPiece(model_dir / "tokenizer.json")
    inputs = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    ids = []
    for t in inputs:
        x = tok.encode(t)
        ids.append(x[:255] + [x[-1]] if len(x) > 256 else x)
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(model_dir / onnx_file), opts, providers=["CPUExecutionProvider"])
    feeds, real, computed = [], 0, 0
    for s in range(0, len(order), batch):
        rows = [ids[i] for i in order[s:s + batch]]
        n = max(map(len, rows))
        a = np.array([r + [0] * (n - len(r)) for r in rows], np.int64)
        m = np.array([[1] * len(r) + [0] * (n - len(r)) for r in rows], np.int64)
        feeds.append({"input_ids": a, "attention_mask": m, "token_type_ids": np.zeros_like(a)})
        real += sum(map(len, rows))
        computed += n * len(rows)
    sess.run(None, feeds[0])  # warm-up, not timed
    timed = feeds[::stride]
    t = time.perf_counter()
    for f in timed:
        sess.run(["last_hidden_state"], f)
    share = sum(f["input_ids"].size for f in timed) / computed
    dt = (time.perf_counter() - t) / share
    print(json.dumps({"onnx": onnx_file, "threads": threads, "batch": batch, "stride": stride, "texts": len(ids),
                      "tokens_real": real, "tokens_computed": computed, "seconds": round(dt, 3),
                      "texts_per_s": round(len(ids) / dt, 1), "tokens_per_s": round(computed / dt, 1)}))


def record(label, run_dir, time_file, results):
    """One run: the manifest's stage timings and `/usr/bin/time -v`'s wall time and peak RSS."""
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    secs, rss_mb = _time_v(time_file)
    stages = {}
    for name, s in manifest["stages"].items():
        stages[name] = {k: v for k, v in s.items() if k not in ("outputs", "fingerprint")}
    row = {"label": label, "run_dir": str(run_dir), "wall_s": secs, "peak_rss_mb": rss_mb,
           "stages": stages, "embed_model": manifest["config"].get("embed", {}).get("model")}
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def reference(timings, time_file, out):
    """The Python reference pipeline's stage timings with its wall time and peak RSS."""
    row = json.loads(Path(timings).read_text())
    wall, rss = _time_v(time_file)
    row.update({"wall_s": wall, "peak_rss_mb": rss})
    Path(out).write_text(json.dumps(row) + "\n")


def _time_v(time_file):
    """Wall seconds and peak RSS (MB) from `/usr/bin/time -v`."""
    tv = Path(time_file).read_text(errors="replace")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", tv).group(1)
    return round(sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":")))), 2), round(rss_kb / 1024, 1)


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def table(results, ceilings=None, tokenizer_ceilings=None, reference_file=None):
    rows = [json.loads(line) for line in Path(results).read_text().splitlines() if line.strip()]
    by_label = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    print(f"{'configuration':<22} {'stage':<9} {'rows':>9} {'seconds':>9} {'rows/s':>10} {'peak RSS':>10}  runs")
    embed_lines = []
    for label, runs in by_label.items():
        order = ["chunk", "embed", "fit", "taxonomy", "subtrees", "select", "emit", "index", "cost", "report"]
        stages = sorted(runs[0]["stages"], key=lambda st: (order.index(st) if st in order else len(order), st))
        for st in stages:
            secs = _median([r["stages"][st]["seconds"] for r in runs if st in r["stages"]])
            n = runs[0]["stages"][st].get("rows_in", 0)
            print(f"{label:<22} {st:<9} {n:>9} {secs:>9.2f} {n / secs if secs else 0:>10.0f} {'':>10}  {len(runs)}")
        wall = _median([r["wall_s"] for r in runs])
        rss = _median([r["peak_rss_mb"] for r in runs])
        chunks = runs[0]["stages"].get("embed", {}).get("rows_in", 0)
        print(f"{label:<22} {'TOTAL':<9} {chunks:>9} {wall:>9.2f} {chunks / wall if wall else 0:>10.0f} {rss:>8.0f}MB  {len(runs)}")
        e = [r["stages"]["embed"] for r in runs if "embed" in r["stages"]]
        if e:
            embed_lines.append((label, runs[0]["embed_model"], e, _median([x["seconds"] for x in e]), wall))
    print()
    print(f"{'configuration':<22} {'model':<12} {'chunks':>7} {'distinct':>8} {'embedded':>8} {'tok real':>9} "
          f"{'tok comp':>9} {'padding':>7} {'embed s':>8} {'chunks/s':>9} {'tok/s':>8} {'embed/total':>11}")
    for label, model, e, secs, wall in embed_lines:
        x = e[0]
        print(f"{label:<22} {model:<12} {x['rows_in']:>7} {x.get('distinct_texts', 0):>8} {x.get('embedded_texts', 0):>8} "
              f"{x.get('tokens_real', 0):>9} {x.get('tokens_computed', 0):>9} {x.get('padding_ratio', 0):>7.3f} {secs:>8.2f} "
              f"{x['rows_in'] / secs:>9.0f} {x.get('tokens_computed', 0) / secs:>8.0f} {secs / wall:>11.2f}")
    if ceilings and Path(ceilings).exists():
        print()
        cs = [json.loads(line) for line in Path(ceilings).read_text().splitlines() if line.strip()]
        print(f"{'raw onnxruntime ceiling':<28} {'texts':>6} {'tok comp':>9} {'seconds':>8} {'tok/s':>8}   embed stage / ceiling")
        for onnx in dict.fromkeys(c["onnx"] for c in cs):
            runs = [c for c in cs if c["onnx"] == onnx]
            secs = _median([c["seconds"] for c in runs])
            model = "minilm-int8" if "int8" in onnx else "minilm"
            stage = [s for _, m, _, s, _ in embed_lines if m == model]
            ratio = f"{stage[0] / secs:.2f}x" if stage else "-"
            print(f"{onnx + ' (' + str(runs[0]['threads']) + ' threads)':<28} {runs[0]['texts']:>6} {runs[0]['tokens_computed']:>9} "
                  f"{secs:>8.2f} {runs[0]['tokens_computed'] / secs:>8.0f}   {ratio}")
        static = [(lbl, s, e[0]["rows_in"]) for lbl, m, e, s, _ in embed_lines if m == "static"]
        neural = [(lbl, s, e[0]["rows_in"]) for lbl, m, e, s, _ in embed_lines if m == "minilm"]
        if static and neural:
            (ls, ss, ns), (ln, sn, nn) = static[0], neural[0]
            print(f"\nembed chunks/s: {ls} {ns / ss:.0f} vs {ln} {nn / sn:.0f}: {(ns / ss) / (nn / sn):.0f}x")
    whole = by_label.get("static-100", [])
    if tokenizer_ceilings and Path(tokenizer_ceilings).exists() and whole:
        cs = [json.loads(line) for line in Path(tokenizer_ceilings).read_text().splitlines() if line.strip()]
        emb, tgt, ing = (_median([c[k] for c in cs]) for k in ("embedding_tokenizer_s", "target_tokenizer_s", "ingest_s"))
        chunk = _median([r["stages"]["chunk"]["seconds"] for r in whole])
        floor = ing + emb + tgt
        print(f"\nchunk stage ceiling (whole corpus, {len(cs)} runs): ingest {ing:.2f} s, embedding tokenizer {emb:.2f} s "
              f"({cs[0]['embedding_tokens'] / emb:.0f} tok/s), target tokenizer {tgt:.2f} s; "
              f"chunk stage {chunk:.2f} s = {chunk / floor:.2f}x of ingest + both tokenizers once")
    if reference_file and Path(reference_file).exists() and whole:
        ref = json.loads(Path(reference_file).read_text())
        wall, rss = _median([r["wall_s"] for r in whole]), _median([r["peak_rss_mb"] for r in whole])
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in ref.items() if k in ("chunk", "embed", "taxonomy", "select", "emit", "index"))
        print(f"\nPython reference (tools/reference, fp32, whole corpus, 1 run): {ref['wall_s']:.1f} s, peak {ref['peak_rss_mb']:.0f} MB "
              f"({stages}); static-100: {wall:.1f} s, peak {rss:.0f} MB: {ref['wall_s'] / wall:.1f}x faster, "
              f"{ref['peak_rss_mb'] / rss:.1f}x less memory")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"subsets": subsets, "copies": copies, "texts": texts, "ceiling": ceiling, "record": record, "reference": reference, "table": table}[cmd](*args)
