#!/usr/bin/env bash
# What the reduce's bounds cost in quality: MedQuAD (static model, 7,749 passages) with the
# taxonomy's sample and select's subtrees set below its passage count, against the run with
# both at their defaults (every passage at once). Prints each run's peak memory (taxonomy to
# report) and strata eval's taxonomy and subset figures (BENCHMARKS.md).
#   tools/bounded-quality.sh                 # runs in $STRATA_BENCH_DIR/bounded (/tmp/strata-bench)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STRATA=${STRATA:-${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}/release/strata}
CORPUS=$ROOT/../shared/corpora/medquad/docs.jsonl
QUESTIONS=$ROOT/../shared/corpora/medquad/questions.jsonl
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}/bounded
mkdir -p "$DIR"
"$ROOT/tools/medquad-recipe.sh" static "$QUESTIONS" > "$DIR/base.toml"

# name, taxonomy.sample_size, select.subtree_above
VARIANTS=("unbounded 50000 50000" "sample-2000 2000 50000" "sample-4000 4000 50000" "subtrees-2000 50000 2000" "both-2000 2000 2000")
for v in "${VARIANTS[@]}"; do
  read -r name sample subtree <<<"$v"
  sed -e "/^\[taxonomy\]/a sample_size = $sample" -e "/^\[select\]/a subtree_above = $subtree" "$DIR/base.toml" > "$DIR/$name.toml"
done
# The map stages once; each variant starts from a copy of them and reruns taxonomy onwards.
rm -rf "$DIR/unbounded"
"$STRATA" run --recipe "$DIR/unbounded.toml" --corpus "$CORPUS" --out "$DIR/unbounded" --quiet --no-vector-cache
for v in "${VARIANTS[@]:1}"; do
  read -r name _ <<<"$v"
  rm -rf "$DIR/$name" && cp -r "$DIR/unbounded" "$DIR/$name"
  /usr/bin/time -f "$name: taxonomy to report %e s, peak %M KB" "$STRATA" run --recipe "$DIR/$name.toml" --corpus "$CORPUS" --out "$DIR/$name" --quiet
done
for v in "${VARIANTS[@]}"; do
  read -r name _ <<<"$v"
  echo "== $name: $(grep -o '"fitted_on_sample": [0-9]\+\|"subtrees": [0-9]\+' "$DIR/$name/manifest.json" | tr '\n' ' ')"
  "$STRATA" eval --run "$DIR/$name" --questions "$QUESTIONS" 2>/dev/null | grep -E '^source|^focus +3|^Topic first|strata  '
done
