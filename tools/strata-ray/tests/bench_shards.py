"""`make bench-shards`: whole MedQuAD as shards through strata-ray on a one-node Ray cluster
(this machine, loopback) against `strata run`, per embedder. A benchmark, not a test:
nothing here fails because the machine is slow.

For each run it prints the wall time of `strata run` and of `strata-ray run --shards N`
(cluster already up; the driver's start, the tasks and the reduce included), their ratio, the
same `strata-ray run` again with everything done (the driver's fixed cost),
whether the contract files are byte-identical, the per-shard seconds of each map stage and
the reduce's stage seconds (from the manifests: the inputs of the scaling model in
BENCHMARKS.md), and the peak memory of `strata run` and of one shard's map stages alone.
Vectors are computed afresh (`--no-vector-cache`) in every run. Environment:

    SHARD_BENCH_MODELS="static minilm-int8"   embedders
    SHARD_BENCH_RUNS=3                        runs of each (medians); SHARD_BENCH_NEURAL_RUNS=1
    SHARD_BENCH_SHARDS=4                      shards
    BENCH_CORPUS=...                          another corpus (default: MedQuAD's docs.jsonl)
    SHARD_BENCH_GROWTH=1                      also the reduce alone on MedQuAD x4 and x16 (static): how
                                              its stages and peak grow with the corpus, and the
                                              scaling model built from all of it
    SHARD_BENCH_GROWTH_COPIES="4 16"          the sizes of that growth (copies of MedQuAD); the
                                              model's line goes through the two largest
    SHARD_BENCH_GROWTH_HEADINGS=distinct      each copy's headings its own (`x16h`, ...): MedQuAD
                                              has about one distinct heading per document, which
                                              plain copies repeat

`bench_shards.py RESULTS.jsonl` prints the scaling model again from an earlier run's results.
    STRATA_BENCH_DIR=/tmp/strata-bench        where runs and the results (JSON lines) go
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import BIN, Cluster, run

REPO = Path(__file__).resolve().parents[3]
CORPUS = Path(os.environ.get("BENCH_CORPUS", REPO.parent / "shared/corpora/medquad/docs.jsonl")).resolve()
QUESTIONS = (REPO.parent / "shared/corpora/medquad/questions.jsonl").resolve()
DIR = Path(os.environ.get("STRATA_BENCH_DIR", "/tmp/strata-bench")) / "shards"
MODELS = os.environ.get("SHARD_BENCH_MODELS", "static minilm-int8").split()
RUNS = int(os.environ.get("SHARD_BENCH_RUNS", "3"))
NEURAL_RUNS = int(os.environ.get("SHARD_BENCH_NEURAL_RUNS", "1"))
SHARDS = int(os.environ.get("SHARD_BENCH_SHARDS", "4"))
CPUS = os.cpu_count() or 2
# The contract files that must be equal (dense/ and work/ too; not the manifest, cost.json,
# report.html or index/, which hold timings or segment ids in any two runs).
COMPARED = ["chunks.parquet", "passages.parquet", "embeddings.parquet", "taxonomy.parquet", "taxonomy.json", "train/*", "dense/*", "work/*"]


def timed(cmd: list) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB, GNU time: the largest process it waited for) of `cmd`."""
    done = run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], timeout=3600)
    if done.returncode != 0:
        sys.exit(f"bench-shards: failed: {' '.join(map(str, cmd))}")
    seconds, kib = done.output.rsplit("TIME ", 1)[1].split()[:2]
    return float(seconds), round(int(kib) / 1024)


def identical(a: Path, b: Path) -> list[str]:
    """The compared files that differ between runs `a` and `b` (empty: identical)."""
    files = sorted({p.relative_to(a) for pattern in COMPARED for p in a.glob(pattern) if p.is_file()})
    return [str(f) for f in files if not (b / f).is_file() or (a / f).read_bytes() != (b / f).read_bytes()]


def seconds_of(manifest: Path) -> dict:
    stages = json.loads(manifest.read_text())["stages"]
    return {name: record["seconds"] for name, record in stages.items()}


def bench(model: str, address: str) -> list[dict]:
    recipe = DIR / f"recipe-{model}.toml"
    text = subprocess.run([REPO / "tools/medquad-recipe.sh", model, QUESTIONS], capture_output=True, text=True, check=True).stdout
    recipe.write_text(text)
    common = ["--recipe", recipe, "--corpus", CORPUS]
    results = []
    for i in range(RUNS if model == "static" else NEURAL_RUNS):
        single, sharded, one = DIR / f"single-{model}", DIR / f"ray-{model}", DIR / f"shard-{model}"
        for d in (sharded, one):
            subprocess.run(["rm", "-rf", d], check=True)
        single_s, single_mib = timed([BIN / "strata", "run", *common, "--out", single, "--force", "--no-vector-cache", "--quiet"])
        sharded_run = [BIN / "strata-ray", "run", *common, "--out", sharded, "--shards", SHARDS, "--address", address, "--cpus-per-task", "1", "--", "--no-vector-cache"]
        ray_s, _ = timed(sharded_run)
        # The same again, every task and stage done: the driver's fixed cost (starting Python and
        # Ray, the tasks' and the reduce steps' processes finding their work done).
        rerun_s, _ = timed(sharded_run)
        # One shard's map stages alone, on one thread as in the cluster: a map task's memory.
        _, shard_mib = timed([BIN / "strata", "run", *common, "--out", one, "--shard", f"0/{SHARDS}", "--threads", "1", "--no-vector-cache", "--quiet"])
        parts = [seconds_of(sharded / "shards" / f"part-{s:05d}-of-{SHARDS:05d}" / "manifest.json") for s in range(SHARDS)]
        result = {
            "model": model, "run": i, "shards": SHARDS, "cpus": CPUS,
            "single_seconds": single_s, "ray_seconds": ray_s, "ratio": round(ray_s / single_s, 3), "ray_rerun_seconds": rerun_s,
            "single_peak_mib": single_mib, "shard_peak_mib": shard_mib,
            "differ": identical(single, sharded),
            "shard_stage_seconds": parts, "reduce_stage_seconds": seconds_of(sharded / "manifest.json"),
            "single_stage_seconds": seconds_of(single / "manifest.json"),
            "chunks": json.loads((single / "manifest.json").read_text())["stages"]["chunk"]["rows_out"],
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


# Passages past which the taxonomy fits a sample and select works per subtree (of at most as many), set
# below MedQuAD's 7,749 for the reduce's growth: both sizes measured are then in the regime of
# a corpus past the defaults (50,000), whose memory no longer holds every passage's vector.
BOUNDED = 4000


def reduce_growth() -> dict:
    """The static recipe's reduce on MedQuAD x4 and x16 (the corpus 4 and 16 times over), its
    map stages run as shards by the CLI first, with the taxonomy's sample and select's subtrees
    at `BOUNDED` passages, then the reduce in five steps (up to the fit, up to the keywords, up
    to the subtrees, up to emit, the rest) with the shards' taxonomy, keywords, select and index
    tasks between them: the
    reduce's seconds per stage and its peak memory at two sizes, both
    past the bounds and past the row groups' size (16,384 rows, which the reduce's buffers fill
    at x4), so the line through them is how the reduce grows beyond."""
    recipe = DIR / "recipe-static-bounded.toml"
    text = subprocess.run([REPO / "tools/medquad-recipe.sh", "static", QUESTIONS], capture_output=True, text=True, check=True).stdout
    bounded = text.replace("[taxonomy]\n", f"[taxonomy]\nsample_size = {BOUNDED}\n").replace("[select]\n", f"[select]\nsubtree_above = {BOUNDED}\n")
    assert bounded.count(str(BOUNDED)) == 2, "the recipe has no [taxonomy] or [select] section"
    recipe.write_text(bounded)
    growth = {}
    for copies in GROWTH_COPIES:
        name, corpus = f"x{copies}{HEADINGS_SUFFIX}", copied_corpus(copies)
        out = DIR / f"reduce-{name}"
        subprocess.run(["rm", "-rf", out], check=True)
        common = ["--recipe", recipe, "--corpus", corpus, "--out", out, "--no-vector-cache", "--quiet"]
        for s in range(SHARDS):
            timed([BIN / "strata", "run", *common, "--shard", f"{s}/{SHARDS}"])
        # The reduce in its five steps, with the shards' taxonomy, keywords, select and index tasks between them.
        steps, tasks = [], {}
        for until, stage in (("fit", "taxonomy"), ("keywords", "keywords"), ("subtrees", "select"), ("emit", "index"), (None, None)):
            steps.append(timed([BIN / "strata", "run", *common, "--shards", SHARDS, *(["--until", until] if until else [])]))
            if stage:
                tasks[stage] = [timed([BIN / "strata", stage, *common, "--shard", f"{s}/{SHARDS}"]) for s in range(SHARDS)]
        seconds, mib = sum(s for s, _ in steps), max(m for _, m in steps)
        manifest = json.loads((out / "manifest.json").read_text())
        groups = json.loads((out / "work" / "subtrees.json").read_text())["groups"]
        growth[name] = {
            "chunks": manifest["stages"]["chunk"]["rows_out"], "reduce_seconds": seconds, "reduce_peak_mib": mib,
            "reduce_step_seconds": [s for s, _ in steps], "reduce_step_peak_mib": [m for _, m in steps],
            "taxonomy_task_seconds": [t for t, _ in tasks["taxonomy"]], "keywords_task_seconds": [t for t, _ in tasks["keywords"]],
            "select_task_seconds": [t for t, _ in tasks["select"]],
            "select_task_peak_mib": [m for _, m in tasks["select"]], "index_task_seconds": [t for t, _ in tasks["index"]],
            "placed_parts": manifest["stages"]["taxonomy"].get("placed_parts"), "phrase_parts": manifest["stages"]["taxonomy"].get("phrase_parts"),
            "picked_parts": manifest["stages"]["select"].get("picked_parts"), "merged_parts": manifest["stages"]["index"].get("merged_parts"),
            "stage_seconds": seconds_of(out / "manifest.json"),
            "fitted_on_sample": manifest["stages"]["taxonomy"].get("fitted_on_sample"), "subtrees": manifest["stages"]["select"].get("subtrees"),
            "passages": manifest["stages"]["chunk"]["passages"], "leaves": manifest["stages"]["taxonomy"]["leaves"],
            "largest_group_passages": max(g["passages"] for g in groups),
        }
        print(json.dumps({"reduce": name} | growth[name]), flush=True)
    return growth


# The sizes the reduce's growth is measured at (copies of MedQuAD); the model draws its line
# through the two largest measured.
GROWTH_COPIES = tuple(int(c) for c in os.environ.get("SHARD_BENCH_GROWTH_COPIES", "4 16").split())


# The scaling model's cluster: nodes of 16 cores, one shard per core (tasks of one CPU).
NODE_CORES = 16
SCALES = (10_000_000, 100_000_000)
NODES = (8, 64)


# Whether each copy's headings are its own ("distinct") or the corpus's ("same").
HEADINGS = os.environ.get("SHARD_BENCH_GROWTH_HEADINGS", "same")
HEADINGS_SUFFIX = "h" if HEADINGS == "distinct" else ""


def copied_corpus(copies: int) -> Path:
    """MedQuAD `copies` times over (`tools/bench.py copies`, as `make bench`'s x4), made when
    missing."""
    path = Path(os.environ.get("STRATA_BENCH_DIR", "/tmp/strata-bench")) / f"medquad-x{copies}{HEADINGS_SUFFIX}.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, REPO / "tools/bench.py", "copies", CORPUS, str(copies), path, HEADINGS], check=True)
    return path


def plan_rate() -> float:
    """Bytes a second strata's shard plan reads (hashing every file, finding the shards' first
    lines), on MedQuAD x4: the time of `strata chunk --shard 0/512` when it makes the plan,
    less its time when the plan is there, median of 3."""
    recipe, corpus, out = DIR / "recipe-static.toml", copied_corpus(4), DIR / "plan"
    recipe.write_text(subprocess.run([REPO / "tools/medquad-recipe.sh", "static", QUESTIONS], capture_output=True, text=True, check=True).stdout)
    shard = [BIN / "strata", "chunk", "--recipe", recipe, "--corpus", corpus, "--out", out, "--shard", "0/512", "--quiet"]

    def seconds() -> float:
        started = time.perf_counter()
        subprocess.run(shard, check=True)
        return time.perf_counter() - started

    plans = []
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        with_plan = seconds()
        shutil.rmtree(out / "shards" / "part-00000-of-00512")
        plans.append(with_plan - seconds())
    return corpus.stat().st_size / statistics.median(plans)


def project(results: list[dict]) -> None:
    """On paper: wall time and peak memory per node for 10M and 100M chunks on 8 and 64 nodes,
    from the measured per-shard map times, the reduce at MedQuAD x4 and x16 (a line
    through the two), and the corpus hashing every shard does."""
    growth = next((r["reduce_growth"] for r in results if "reduce_growth" in r), None)
    if growth is None:
        print("\n(no scaling model: run with SHARD_BENCH_GROWTH=1 for the reduce's growth)")
        return
    if len(growth) < 2:
        print("\n(no scaling model: it needs the reduce's growth at two sizes, SHARD_BENCH_GROWTH_COPIES)")
        return
    # The two largest sizes measured, by name (`x16`, or `x16h` with distinct headings).
    (lo_name, small), (hi_name, large) = sorted(growth.items(), key=lambda g: g[1]["chunks"])[-2:]
    lo, hi = lo_name[1:], hi_name[1:]

    def line(key: str, at: float, scale: float = 1.0) -> float:
        slope = (large[key] - small[key]) / (large["chunks"] - small["chunks"])
        return small[key] + scale * slope * (at - small["chunks"])

    bytes_per_chunk, rate = copied_corpus(int(lo.rstrip("h"))).stat().st_size / small["chunks"], plan_rate()
    print(f"\nscaling model (on paper): nodes of {NODE_CORES} cores, one shard per core; map rates (chunk, embed, index) from the shards above, the taxonomy and keywords tasks' from the reduce's growth at x{hi} "
          f"(one thread each), plus the shard plan's one pass over the corpus ({rate / 1e9:.2f} GB/s, measured; {bytes_per_chunk:.0f} bytes a chunk), "
          f"the reduce (taxonomy sample and select subtrees past {BOUNDED} passages) a line through MedQuAD x{lo} ({small['chunks']} chunks: {small['reduce_seconds']:.1f} s, {small['reduce_peak_mib']} MiB) "
          f"and x{hi} ({large['chunks']}: {large['reduce_seconds']:.1f} s, {large['reduce_peak_mib']} MiB), on one node, "
          f"plus the select round (the slowest select task at x{hi}, {max(large.get('select_task_seconds', [0])):.1f} s, scaled with the corpus)")
    print(f"{'model':<12} {'chunks':>6} {'nodes':>5} {'map wall':>9} {'of which plan':>13} {'reduce wall':>11} {'total':>8} {'map node peak':>13} {'reduce peak':>11}")
    for model in dict.fromkeys(r["model"] for r in results if "model" in r):  # the models measured, in order
        rs = [r for r in results if r.get("model") == model]
        per_shard = rs[0]["chunks"] / rs[0]["shards"]
        # A core's seconds a chunk in the shards' tasks: chunk, embed, (past the sample) the
        # taxonomy's placement and counts and the label phrases' count, measured in the
        # reduce's growth above, and (once published) index.
        rounds = statistics.mean(large["taxonomy_task_seconds"]) + statistics.mean(large.get("keywords_task_seconds", [0]))
        place_s = rounds / (large["chunks"] / SHARDS)
        core_s = statistics.median(statistics.mean(p["chunk"] + p["embed"] + p.get("index", 0) for p in r["shard_stage_seconds"]) for r in rs) / per_shard + place_s
        task_mib = statistics.median(r["shard_peak_mib"] for r in rs)
        for chunks in SCALES:
            for nodes in NODES:
                shard = chunks / (nodes * NODE_CORES)
                hashing = chunks * bytes_per_chunk / rate  # the plan, once, before the shards read
                map_wall = shard * core_s + hashing
                # The select round: a shard's subtrees chosen in by its task, so its wall is the
                # slowest task's at x16, grown with the corpus (as many subtrees as there).
                select_wall = max(large.get("select_task_seconds", [0])) * chunks / large["chunks"]
                reduce_wall = line("reduce_seconds", chunks) + select_wall
                # A task holds its window and its distinct vectors (4 bytes a dimension). The
                # reduce's growth, measured static past the bounds, is per-chunk scalars and the
                # subset's training sets in emit (the select tasks hold the subtrees' vectors);
                # scaled by 384/256 for neural vectors as if it were all vectors (an upper bound).
                dim = 256 if model == "static" else 384
                node_mib = NODE_CORES * (task_mib + (shard - per_shard) * dim * 4 / 2**20)
                reduce_mib = line("reduce_peak_mib", chunks, dim / 256)
                print(f"{model:<12} {chunks / 1e6:>5.0f}M {nodes:>5} {map_wall / 3600:>7.1f} h {hashing / 60:>9.1f} min {reduce_wall / 3600:>9.1f} h "
                      f"{(map_wall + reduce_wall) / 3600:>6.1f} h {node_mib / 1024:>9.1f} GiB {reduce_mib / 1024:>7.0f} GiB")
    if "largest_group_passages" in large:
        # A select task holds one group's passages and their vectors at a time: a subtree of at
        # most the bound's passages, or one larger leaf. The tree is fitted on a sample, so its
        # leaves do not multiply with the corpus: past the bound the largest group is a leaf,
        # whose share of the passages stays. As an upper bound, the largest task's peak at x16
        # plus the vectors (4 bytes a dimension) of the passages that group gains at that share.
        peak, group, share = max(large["select_task_peak_mib"]), large["largest_group_passages"], large["largest_group_passages"] / large["passages"]
        grown = lambda chunks, dim: (peak + max(0.0, share * large["passages"] * chunks / large["chunks"] - group) * dim * 4 / 2**20) / 1024
        print(f"the largest select task: {max(small['select_task_peak_mib'])} MiB at x{lo}, {peak} MiB at x{hi} "
              f"(its largest group {group} of {large['passages']} passages, {large['leaves']} leaves); with that group's share "
              f"{grown(SCALES[1], 256):.1f} GiB static, {grown(SCALES[1], 384):.1f} GiB neural at {SCALES[1] / 1e6:.0f}M chunks (an upper bound)")


def main() -> int:
    if len(sys.argv) == 2:  # the scaling model again, from an earlier run's results
        project([json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()])
        return 0
    DIR.mkdir(parents=True, exist_ok=True)
    out = DIR / f"results-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
    temp = Path(tempfile.mkdtemp(prefix="srb-", dir="/tmp"))  # short: Ray's socket paths live under it
    cluster = Cluster(temp, workers=0, cpus=CPUS)
    results = []
    try:
        if not cluster.start():
            return 1
        for model in MODELS:
            results += bench(model, cluster.address)
        if os.environ.get("SHARD_BENCH_GROWTH") == "1":
            results.append({"reduce_growth": reduce_growth()})
    finally:
        left = cluster.stop()
        if left:
            print(f"bench-shards: processes left after stopping the cluster: {left}", file=sys.stderr)
        shutil.rmtree(temp, ignore_errors=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(f"\nwhole MedQuAD, {SHARDS} shards on a one-node Ray cluster ({CPUS} CPUs), medians; results in {out}")
    print(f"{'model':<12} {'runs':>4} {'strata run':>11} {'strata-ray':>11} {'ratio':>6} {'all done':>9} {'peak run':>9} {'peak shard':>10}  files")
    for model in dict.fromkeys(r["model"] for r in results if "model" in r):  # the models measured, in order
        rs = [r for r in results if r.get("model") == model]
        med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        same = "identical" if not any(r["differ"] for r in rs) else "differ: " + ", ".join(sorted({f for r in rs for f in r["differ"]}))
        print(f"{model:<12} {len(rs):>4} {med('single_seconds'):>9.1f} s {med('ray_seconds'):>9.1f} s {med('ratio'):>5.2f}x {med('ray_rerun_seconds'):>7.1f} s {med('single_peak_mib'):>6.0f} MiB {med('shard_peak_mib'):>6.0f} MiB  {same}")
    project(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
