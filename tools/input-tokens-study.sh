#!/usr/bin/env bash
# The "fewer tokens" study of BENCHMARKS.md: all-MiniLM-L6-v2 (fp32) reading only the first
# 128 or 192 tokens of each chunk (`[embed] input_tokens`) against all 256, on whole MedQuAD.
#   quality: `strata eval` of each run (retrieval, taxonomy against `source`, coverage), and
#            `--compare` against the 256-token run (cosine per chunk, taxonomy NMI per level);
#   cost:    the embed stage on the 10% subset (tools/bench.py subsets), vector cache off,
#            STUDY_RUNS runs each (medians in the printed table).
# Outputs stay under $STUDY_DIR (default /tmp/strata-study). A study, not a test.
#   STUDY_LENGTHS="256 128 192"  input lengths (256 first: the others are compared with it)
#   STUDY_RUNS=3                 cost runs per length;  STUDY_COST=0 skips the cost part
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}
STRATA=${STRATA:-$CARGO_TARGET_DIR/release/strata}
CORPUS=${STUDY_CORPUS:-$ROOT/../shared/corpora/medquad/docs.jsonl}
QUESTIONS=$(dirname "$CORPUS")/questions.jsonl
DIR=${STUDY_DIR:-/tmp/strata-study}
RUNS=${STUDY_RUNS:-3}
LENGTHS=${STUDY_LENGTHS:-256 128 192}
mkdir -p "$DIR"
[[ -f $DIR/medquad-10.jsonl ]] || python3 tools/bench.py subsets "$CORPUS" "$DIR"

recipe() {  # pipeline/medquad.toml reading N tokens
  tools/medquad-recipe.sh minilm "$QUESTIONS" "input_tokens = $1" >"$DIR/recipe-$1.toml"
  echo "$DIR/recipe-$1.toml"
}

for n in $LENGTHS; do
  echo "study: whole corpus, $n tokens" >&2
  "$STRATA" run --recipe "$(recipe "$n")" --corpus "$CORPUS" --out "$DIR/whole-$n" --force -q
done
for n in $LENGTHS; do
  cmp=()
  [[ $n != 256 ]] && cmp=(--compare "$DIR/whole-256")
  "$STRATA" eval --run "$DIR/whole-$n" --budgets 0.01 --random-seeds 3 --max-questions 20000 --questions "$QUESTIONS" \
    --labels source "${cmp[@]}" >"$DIR/eval-$n.txt" 2>/dev/null
done
for n in $LENGTHS; do
  [[ ${STUDY_COST:-1} == 1 ]] || break
  for i in $(seq 1 "$RUNS"); do
    echo "study: 10% subset, $n tokens, run $i/$RUNS" >&2
    "$STRATA" embed --recipe "$(recipe "$n")" --corpus "$DIR/medquad-10.jsonl" --out "$DIR/ten-$n" --no-vector-cache -q 2>/dev/null ||
      { "$STRATA" chunk --recipe "$(recipe "$n")" --corpus "$DIR/medquad-10.jsonl" --out "$DIR/ten-$n" -q &&
        "$STRATA" embed --recipe "$(recipe "$n")" --corpus "$DIR/medquad-10.jsonl" --out "$DIR/ten-$n" --no-vector-cache -q; }
    python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['stages']['embed']; print(sys.argv[2], e['seconds'], e['tokens_computed'])" \
      "$DIR/ten-$n/manifest.json" "$n" >>"$DIR/cost.txt"
  done
done
python3 - "$DIR" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(f"{sys.argv[1]}/cost.txt"):
    n, secs, tokens = line.split()
    rows[n].append((float(secs), int(tokens)))
base = statistics.median(s for s, _ in rows["256"]) if "256" in rows else None
print(f"{'input tokens':>12} {'embed s (median)':>16} {'tokens computed':>15} {'vs 256':>7}")
for n, runs in rows.items():
    secs = statistics.median(s for s, _ in runs)
    print(f"{n:>12} {secs:>16.2f} {runs[0][1]:>15} {secs / base if base else float('nan'):>7.2f}")
PY
for n in $LENGTHS; do echo; echo "== strata eval, $n tokens"; cat "$DIR/eval-$n.txt"; done
