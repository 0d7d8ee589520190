"""strata-ray: run strata's per-shard stages on a Ray cluster, one task per shard, and the reduce.

    strata-ray run --recipe pipeline/medicine.toml --shards 4 --address auto [-- --no-vector-cache ...]

strata decides what each shard holds and skips a shard whose inputs are unchanged; this
driver only schedules, in ten steps:

  1. the map stages: for each shard I of N a `chunk` task and an `embed` task that takes the
     chunk task's result as an argument, so Ray starts embed I once chunk I is done while
     other shards are still chunking;
  2. `strata run --recipe R --shards N --until fit` on the driver's node: the merges and the
     tree fitted on a sample of the passages (none below `taxonomy.sample_size`);
  3. a `taxonomy` task per shard: the shard's passages placed in the fitted tree and its
     chunks' label terms counted (skipped when the fit saved no tree: the passages are few
     enough for the taxonomy to cluster them all in memory);
  4. `strata run --recipe R --shards N --until keywords`: the tree the shards' placements
     make and its keywords, from their term counts;
  5. a `keywords` task per shard: the shard's label phrases (those holding a node's
     keywords) counted in that tree (skipped, with step 4, when the fit saved no tree, and
     when a shard had not placed its passages);
  6. `strata run --recipe R --shards N --until subtrees`: taxonomy (from the shards'
     placements and counts), then the budget fixed and the passages grouped by
     subtree (one group below `select.subtree_above`);
  7. a `select` task per shard: the subset chosen in the shard's share of the subtrees
     (skipped below `select.subtree_above`, where the reduce chooses over all passages);
  8. `strata run --recipe R --shards N --until emit`: select (from the shards' picks) and
     emit, which publishes chunks.parquet;
  9. an `index` task per shard: the shard's chunks indexed from the published file;
 10. `strata run --recipe R --shards N`: the shards' indexes merged, then cost and report
     (started before the driver leaves the cluster, which it needs no longer).

A task runs

    strata <stage> --recipe R --shard I/N --out OUT [--corpus C] --quiet --threads C

as a subprocess (the `strata` installed with this package on the node, or `--strata`), with
STRATA_CACHE, STRATA_LOG, STRATA_FAULT and HOME taken from the driver's environment (Ray
workers inherit the environment of the node's raylet, not the driver's). Whether strata ran
the stage or skipped it is read from the shard's `manifest.json`: an unchanged
`stages.<stage>` record means skipped. A failing task is retried `--max-retries` times; a
step with a failed task ends the run, and the driver exits with the first failing status.

Every path handed to strata is absolute: tasks run in other working directories, and the
run directory must be on a filesystem that every node sees.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ray

MAP_STAGES = ("chunk", "embed")
# The rounds of shard tasks between the reduce's steps: each reduce step stops after the stage
# whose files the round's tasks read (the fitted tree; the keywords; the passages grouped by
# subtree; the published chunks). A round's tasks are skipped when that stage's record lacks
# the figure named third: no tree fitted on a sample, no placements to find the keywords of,
# or the passages too few to group by subtree. The keywords round, its reduce step included,
# is skipped when no tree was fitted on a sample (the record and figure named fourth): the
# keywords stage then has nothing to save, and the next step runs it anyway.
ROUNDS = (
    ("fit", ("taxonomy",), "fitted_on_sample", None),
    ("keywords", ("keywords",), "nodes", ("fit", "fitted_on_sample")),
    ("subtrees", ("select",), "subtrees", None),
    ("emit", ("index",), None, None),
)
FORWARDED_ENV = ("STRATA_CACHE", "STRATA_LOG", "STRATA_FAULT", "HOME")
STDERR_TAIL = 2000  # characters of strata's stderr kept in a task's error


class StrataFailed(RuntimeError):
    """A strata subprocess exited with an error (the message names stage, shard, status)."""


def installed_strata() -> str:
    """The `strata` binary installed with this package (the wheel's script), else on PATH."""
    try:
        for file in importlib.metadata.files("strata-ray") or []:
            if file.name == "strata" and os.access(file.locate(), os.X_OK):
                return str(Path(file.locate()).resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    beside = Path(sys.executable).parent / "strata"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("strata")
    if found is None:
        raise SystemExit("strata-ray: no `strata` binary installed beside the package; pass --strata PATH")
    return found


def run_dir(strata: str, recipe: Path, out: Path | None) -> Path:
    """The run directory strata will use, as `strata recipe` resolves it (`--out`, else the
    recipe's `out`): the driver reads the shards' manifests there."""
    if out is not None:
        return out.resolve()
    resolved = subprocess.run([strata, "recipe", "--recipe", str(recipe)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if resolved.returncode != 0:
        raise SystemExit(f"strata-ray: {resolved.stderr.strip()}")
    return Path(json.loads(resolved.stdout)["out"]).resolve()


def stage_record(manifest: Path, stage: str):
    """The shard manifest's `stages.<stage>` record, or None when there is none yet."""
    try:
        return json.loads(manifest.read_text()).get("stages", {}).get(stage)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def map_stage(stage: str, index: int, shards: int, strata: str | None, args: list[str], env: dict, manifest: str, *after) -> dict:
    """One Ray task: strata `stage` on shard `index`/`shards`. `after` holds the result of
    the task this one waits for (chunk, for embed); Ray resolves it before starting us."""
    binary = strata or installed_strata()
    before = stage_record(Path(manifest), stage)
    child_env = {k: v for k, v in os.environ.items() if k not in FORWARDED_ENV} | env
    started = time.monotonic()
    done = subprocess.run(
        [binary, stage, *args, "--shard", f"{index}/{shards}"],
        env=child_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        tail = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr or done.stdout)[-STDERR_TAIL:].rstrip()  # colours off
        raise StrataFailed(f"{stage} shard {index}/{shards}: strata {exit_text(done.returncode)} on {os.uname().nodename}\n{tail}")
    ran = stage_record(Path(manifest), stage) != before
    return {"stage": stage, "shard": index, "ran": ran, "seconds": seconds}


def run_round(stages: tuple[str, ...], opts: argparse.Namespace, out: Path, strata: str | None, args: list[str], env: dict) -> bool:
    """One task per shard per stage of `stages` (a shard's stages chained, shards in
    parallel), each finished task printed; whether every task succeeded."""
    task = ray.remote(map_stage)
    pending = {}  # ObjectRef -> (stage, shard)
    for i in range(opts.shards):
        manifest = str(out / "shards" / f"part-{i:05d}-of-{opts.shards:05d}" / "manifest.json")
        after = ()
        for stage in stages:
            options = dict(name=f"strata {stage} {i}/{opts.shards}", num_cpus=opts.cpus_per_task, max_retries=opts.max_retries, retry_exceptions=True)
            ref = task.options(**options).remote(stage, i, opts.shards, strata, args, env, manifest, *after)
            pending[ref] = (stage, i)
            after = (ref,)
    print(f"strata-ray: {len(pending)} tasks ({', '.join(stages)} x {opts.shards} shards) on {sum(n['Alive'] for n in ray.nodes())} nodes; run directory {out}", flush=True)

    started = time.monotonic()
    counts = {stage: {"ran": 0, "skipped": 0} for stage in stages}
    failed = []  # (stage, shard)
    total, finished = len(pending), 0
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        stage, i = pending.pop(ref)
        finished += 1
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as err:
            failed.append((stage, i))
            earlier = [s for s in stages[: stages.index(stage)] if (s, i) in failed]
            if earlier:
                print(f"{stage} shard {i}/{opts.shards}: not run, {earlier[0]} failed  [{finished}/{total}]", flush=True)
            else:
                cause = str(getattr(err, "cause", None) or err).strip().replace("\n", "\n  ")
                print(f"{stage} shard {i}/{opts.shards}: FAILED after {opts.max_retries + 1} attempts  [{finished}/{total}]\n  {cause}", flush=True)
            continue
        state = "ran" if result["ran"] else "skipped"
        counts[stage][state] += 1
        timing = f" in {result['seconds']:.1f} s" if result["ran"] else ""
        print(f"{stage} shard {i}/{opts.shards}: {state}{timing}  [{finished}/{total}]", flush=True)

    summary = "; ".join(f"{s} {c['ran']} ran, {c['skipped']} skipped" for s, c in counts.items())
    print(f"{' and '.join(stages)} tasks: {summary}; {len(failed)} failed; {time.monotonic() - started:.1f} s", flush=True)
    if failed:
        names = ", ".join(f"{s} shard {i}/{opts.shards}" for s, i in sorted(failed, key=lambda f: (stages.index(f[0]), f[1])))
        print(f"strata-ray: failed: {names}; not going on", file=sys.stderr, flush=True)
    return not failed


def start_reduce(command: list[str]) -> subprocess.Popen:
    """A reduce step, started on the driver's node."""
    print(f"reduce: {' '.join(command)}", flush=True)
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def exit_status(step: subprocess.Popen) -> int:
    """A reduce step's exit status, once it has ended (128+N when killed by signal N)."""
    status = step.wait()
    return status if status >= 0 else 128 - status


def run(opts: argparse.Namespace) -> int:
    recipe = opts.recipe.resolve()
    strata = str(Path(opts.strata).resolve()) if opts.strata else None
    out = run_dir(strata or installed_strata(), recipe, opts.out)
    common = ["--recipe", str(recipe), "--out", str(out)]
    if opts.corpus is not None:
        common += ["--corpus", str(opts.corpus.resolve())]
    common += opts.strata_args
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    task_args = common + ["--quiet", "--threads", str(opts.cpus_per_task)]
    reduce = [strata or installed_strata(), "run", *common, "--shards", str(opts.shards)]

    ray.init(address=opts.address, logging_level="WARNING")
    try:
        if not run_round(MAP_STAGES, opts, out, strata, task_args, env):
            return 1
        for until, stages, needs, after in ROUNDS:
            if after and not (stage_record(out / "manifest.json", after[0]) or {}).get(after[1]):
                print(f"{' and '.join(stages)} tasks and the reduce up to {until}: none (`stages.{after[0]}.{after[1]}` is absent)", flush=True)
                continue
            status = exit_status(start_reduce(reduce + ["--until", until]))
            if status != 0:
                return status
            if needs and not (stage_record(out / "manifest.json", until) or {}).get(needs):
                print(f"{' and '.join(stages)} tasks: none (`stages.{until}.{needs}` is absent: the reduce does this part itself)", flush=True)
                continue
            if not run_round(stages, opts, out, strata, task_args, env):
                return 1
        # The last step needs no Ray: it runs while the driver leaves the cluster.
        last = start_reduce(reduce)
    finally:
        ray.shutdown()
    return exit_status(last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata-ray", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="per-shard stages as Ray tasks, and the reduce steps (`strata run --shards N`)")
    p.add_argument("--recipe", type=Path, required=True, help="the recipe (e.g. pipeline/medicine.toml)")
    p.add_argument("--shards", type=int, required=True, help="number of shards N (one task per shard per per-shard stage)")
    p.add_argument("--out", type=Path, help="run directory instead of the recipe's (on a filesystem every node sees)")
    p.add_argument("--corpus", type=Path, help="corpus to read instead of the recipe's")
    p.add_argument("--address", default=None, help="Ray cluster: auto, HOST:PORT, or none given: RAY_ADDRESS, else a local `ray start`, else a new local instance")
    p.add_argument("--cpus-per-task", type=int, default=1, help="CPUs Ray reserves per task, and strata's --threads (default 1)")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a failed task (default 2)")
    p.add_argument("--strata", help="the strata binary to run (default: the one installed with this package)")
    p.add_argument("strata_args", nargs=argparse.REMAINDER, help="after --: flags for every strata command, e.g. -- --no-vector-cache")
    opts = parser.parse_args(argv)
    opts.strata_args = opts.strata_args[1:] if opts.strata_args[:1] == ["--"] else opts.strata_args
    if opts.shards < 1 or opts.cpus_per_task < 1 or opts.max_retries < 0:
        parser.error("--shards and --cpus-per-task must be at least 1, --max-retries at least 0")
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
