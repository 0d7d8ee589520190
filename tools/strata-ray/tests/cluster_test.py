"""Loopback cluster test of strata-ray (`make test-ray`): a two-node Ray cluster on
127.0.0.1, the sharded run against a single-node `strata run`, byte for byte.

Run with the Python of a venv where `pip install ./tools/strata-ray` put `strata-ray`,
`strata` and `ray` beside it. Checks:
  a. the demo corpus (pipeline/medicine.toml), 4 shards, the index built by the shards and
     merged (the same BM25 hits as the single-node index);
  b. the first 400 MedQuAD documents, a copy of pipeline/medquad.toml with model "static",
     the tree fitted on a sample of 500 passages and the subset chosen per subtree (of at
     most 200 passages) above 200 passages: the shards place their passages in the tree and count their terms,
     then choose in their shares of the subtrees, and the reduce takes their placements,
     counts and picks;
  c. a crash (STRATA_FAULT=embed:2, --max-retries 1) fails naming embed shard 2; the rerun
     skips every other map task, leaves their records in the part manifests untouched, and
     matches (a); likewise a crash of index shard 1 (STRATA_FAULT=index:1), whose rerun
     indexes that shard only.
Every process it starts is ended by its id (the ray nodes by their process group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import BIN, Cluster, run

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
SHARDS = 4
# The contract files compared byte for byte (train/*.parquet: every training set emitted).
COMPARED = ["chunks.parquet", "passages.parquet", "embeddings.parquet", "taxonomy.parquet", "taxonomy.json", "train/*.parquet", "train/dataset_info.json"]

failures: list[str] = []


def check(ok: bool, what: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}: {what}", flush=True)
    if not ok:
        failures.append(what)
    return ok


def compare(ours: Path, theirs: Path, label: str) -> None:
    files = []
    for pattern in COMPARED:
        matched = sorted(p.relative_to(theirs) for p in theirs.glob(pattern))
        check(bool(matched), f"{label}: single-node run has {pattern}")
        files += matched
    differ = [str(f) for f in files if not (ours / f).is_file() or (ours / f).read_bytes() != (theirs / f).read_bytes()]
    check(not differ, f"{label}: {len(files) - len(differ)}/{len(files)} contract files byte-identical ({', '.join(map(str, files))}){' DIFFER: ' + ', '.join(differ) if differ else ''}")


QUERIES = ("heart failure symptoms", "insulin resistance", "treatment of asthma in children")


def compare_index(ours: Path, theirs: Path, label: str) -> None:
    """The sharded run's index is the shards' indexes merged: the same hits as the index the
    single-node run built whole (BM25, the top 10 of a few queries, scores included)."""
    manifest = json.loads((ours / "manifest.json").read_text())
    merged = manifest["stages"]["index"].get("merged_parts")
    check(merged == SHARDS, f"{label}: the index merged the {SHARDS} shards' indexes (merged_parts = {merged})")
    search = lambda run_dir, q: run([BIN / "strata", "search", "--run", run_dir, "--mode", "bm25", "--json", "-k", 10, q], timeout=60, show=False).output
    differ = [q for q in QUERIES if search(ours, q) != search(theirs, q)]
    check(not differ, f"{label}: BM25 hits equal the single-node index's for {len(QUERIES)} queries{' DIFFER: ' + '; '.join(differ) if differ else ''}")


def check_parts(ours: Path, label: str, expected: int | None) -> None:
    """The taxonomy took the passages' leaves, term and phrase counts from the shards
    (`placed_parts`, `phrase_parts`) and the selection the picks of every shard that had a
    subtree (`picked_parts`: a group is a shard's when its middle row falls in the shard's
    share of the rows, as strata's `Subtrees::of_shard`); or, with no tree fitted on a sample
    and the passages too few to group by subtree, the reduce did both itself."""
    stages = json.loads((ours / "manifest.json").read_text())["stages"]
    placed, sample = stages["taxonomy"].get("placed_parts"), stages["fit"].get("fitted_on_sample")
    check(placed == expected, f"{label}: taxonomy placed_parts = {placed} (expected {expected}; fitted on a sample of {sample})")
    phrases = stages["taxonomy"].get("phrase_parts")
    check(phrases == expected, f"{label}: taxonomy phrase_parts = {phrases} (expected {expected}: the shards counted the label phrases)")
    picked, subtrees = stages["select"].get("picked_parts"), stages["select"].get("subtrees")
    check(bool(subtrees) == bool(expected), f"{label}: the subset chosen per subtree ({subtrees} subtrees) exactly when the shards placed passages")
    with_groups = expected and subtrees and shards_with_groups(ours, expected)
    check(picked == with_groups, f"{label}: select picked_parts = {picked} (expected {with_groups}; {subtrees} subtrees)")


def shards_with_groups(run_dir: Path, shards: int) -> int:
    """The shards whose share of `work/subtrees.json`'s rows holds a group's middle row."""
    groups = json.loads((run_dir / "work" / "subtrees.json").read_text())["groups"]
    total = sum(g["passages"] for g in groups)
    shard_of = lambda row: next(i for i in range(shards) if row < total * (i + 1) // shards)
    return len({shard_of(g["first_row"] + g["passages"] // 2) for g in groups})


def strata_ray(recipe: Path, out: Path | None, address: str, extra: list[str] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    """`strata-ray run` into `out`, or without --out into the recipe's own run directory."""
    into = ["--out", out] if out is not None else []
    return run([BIN / "strata-ray", "run", "--recipe", recipe, "--shards", SHARDS, *into, "--address", address, *extra], timeout=900, env=env)


def single(recipe: Path, out: Path) -> subprocess.CompletedProcess:
    return run([BIN / "strata", "run", "--recipe", recipe, "--out", out, "--quiet"], timeout=900)


def scenario(name: str, recipe: Path, tmp: Path, address: str, parts: int | None, recipe_out: Path | None = None) -> None:
    """Sharded against single-node; with `recipe_out`, the driver is given no --out and must
    find the recipe's run directory (through `strata recipe`) there."""
    ray_out = recipe_out or tmp / f"{name}-ray"
    done = strata_ray(recipe, None if recipe_out else ray_out, address)
    check(done.returncode == 0, f"{name}: strata-ray run --shards {SHARDS} exits 0")
    done = single(recipe, tmp / f"{name}-single")
    check(done.returncode == 0, f"{name}: single-node strata run exits 0")
    compare(ray_out, tmp / f"{name}-single", name)
    compare_index(ray_out, tmp / f"{name}-single", name)
    check_parts(ray_out, name, parts)


def medquad_recipe(tmp: Path) -> Path:
    """pipeline/medquad.toml on the first 400 documents, model "static", the tree fitted on a
    sample of 500 passages, the subset chosen per subtree above 200 passages, paths absolute."""
    corpus = tmp / "medquad-400.jsonl"
    with open(SHARED / "corpora/medquad/docs.jsonl") as src, open(corpus, "w") as dst:
        for _, line in zip(range(400), src):
            dst.write(line)
    text = (REPO / "pipeline/medquad.toml").read_text()
    subs = {
        r'(?m)^corpus = ".*"$': f'corpus = "{corpus}"',
        r'(?m)^out = ".*"$': f'out = "{tmp / "medquad-default-out"}"',
        r'(?m)^model = "minilm"$': 'model = "static"',
        r'(?m)^\[taxonomy\]$': '[taxonomy]\nsample_size = 500',
        r'(?m)^\[select\]$': '[select]\nsubtree_above = 200',
        r'(?m)^questions = ".*"$': f'questions = "{(SHARED / "corpora/medquad/questions.jsonl").resolve()}"',
        r'(?m)^tokenizer = "~/': f'tokenizer = "{Path.home()}/',
    }
    for pattern, repl in subs.items():
        text, n = re.subn(pattern, repl, text)
        assert n == 1, f"pipeline/medquad.toml changed shape: {pattern} matched {n} times"
    recipe = tmp / "medquad-400.toml"
    recipe.write_text(text)
    return recipe


def fault(tmp: Path, address: str) -> None:
    recipe, out = REPO / "pipeline/medicine.toml", tmp / "fault-ray"
    # Both runs get a cache of their own (the model linked in, no vectors), so the shard
    # really embeds when it crashes, and the driver must forward it to the tasks as STRATA_CACHE.
    cache, real = tmp / "cache", Path(os.environ.get("STRATA_CACHE", Path.home() / ".cache/strata"))
    (cache / "vectors").mkdir(parents=True)
    for name in ("models", "onnxruntime"):
        (cache / name).symlink_to(real / name)
    env = {k: v for k, v in os.environ.items() if k != "STRATA_FAULT"} | {"STRATA_CACHE": str(cache)}
    done = strata_ray(recipe, out, address, ["--max-retries", "1"], env=env | {"STRATA_FAULT": "embed:2"})
    check(done.returncode != 0, "fault: strata-ray fails with STRATA_FAULT=embed:2")
    check(re.search(r"embed shard 2/4: FAILED", done.output) is not None and "failed: embed shard 2/4" in done.output, "fault: the failure names embed shard 2/4")
    check(not re.search(r"(chunk shard \d|embed shard [013])/4: (FAILED|not run)", done.output), "fault: no other task failed")
    parts = {i: out / "shards" / f"part-{i:05d}-of-{SHARDS:05d}" / "manifest.json" for i in (0, 1, 3)}

    def map_records(manifest: Path):
        """The part's chunk and embed records (timings included): what a skipped task leaves as it was."""
        return {s: json.loads(manifest.read_text())["stages"].get(s) for s in ("chunk", "embed")} if manifest.is_file() else None

    before = {i: map_records(p) for i, p in parts.items()}
    check(all(before.values()), "fault: parts 0, 1, 3 have manifests after the failed run")

    done = strata_ray(recipe, out, address, ["--max-retries", "1"], env=env)
    check(done.returncode == 0, "fault: the rerun without the fault exits 0")
    expected = [f"chunk shard {i}/4: skipped" for i in range(4)] + [f"embed shard {i}/4: skipped" for i in (0, 1, 3)]
    missing = [e for e in expected if e not in done.output]
    check(not missing, f"fault: rerun reports chunk 0-3 and embed 0, 1, 3 skipped{' MISSING: ' + '; '.join(missing) if missing else ''}")
    check(re.search(r"embed shard 2/4: ran in", done.output) is not None, "fault: rerun reports embed shard 2/4 ran")
    check(all(map_records(parts[i]) == before[i] for i in parts), "fault: the chunk and embed records of shards 0, 1, 3 unchanged by the rerun (then their index tasks ran)")
    compare(out, tmp / "demo-single", "fault")

    # The same in the index round: shard 1's index gone, its task crashing, then redone alone.
    shutil.rmtree(out / "shards" / f"part-00001-of-{SHARDS:05d}" / "index")
    done = strata_ray(recipe, out, address, ["--max-retries", "1"], env=env | {"STRATA_FAULT": "index:1"})
    check(done.returncode != 0 and "failed: index shard 1/4" in done.output, "fault: strata-ray fails naming index shard 1/4 with STRATA_FAULT=index:1")
    done = strata_ray(recipe, out, address, ["--max-retries", "1"], env=env)
    skipped = [f"index shard {i}/4: skipped" for i in (0, 2, 3)]
    check(done.returncode == 0 and all(s in done.output for s in skipped) and "index shard 1/4: ran in" in done.output, "fault: the rerun indexes shard 1 only")
    compare_index(out, tmp / "demo-single", "fault")


def main() -> int:
    for tool in ("strata-ray", "strata", "ray"):
        if not (BIN / tool).exists():
            print(f"FAIL: {BIN / tool} missing: run me with the Python of the venv strata-ray is installed in")
            return 1
    helptext = run([BIN / "strata", "chunk", "--help"], timeout=30, show=False).output
    if not check("--shard" in helptext, "the installed strata has `chunk --shard`"):
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="srt-", dir="/tmp"))
    print(f"work directory {tmp}", flush=True)
    cluster = Cluster(tmp)
    started = time.monotonic()
    try:
        if check(cluster.start(), "a two-node loopback Ray cluster starts"):
            scenario("demo", REPO / "pipeline/medicine.toml", tmp, cluster.address, parts=None)
            scenario("medquad", medquad_recipe(tmp), tmp, cluster.address, parts=SHARDS, recipe_out=tmp / "medquad-default-out")
            fault(tmp, cluster.address)
    finally:
        left = cluster.stop()
        check(not left, f"cluster stopped, no process left in its groups or under {cluster.temp} {left or ''}")
    print(f"{'PASS' if not failures else 'FAIL'}: cluster test, {len(failures)} failed check(s), {time.monotonic() - started:.0f} s")
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp} for inspection")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
