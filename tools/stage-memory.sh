#!/usr/bin/env bash
# Peak memory of each pipeline stage run alone (`strata <stage> --force`), for finding which
# stage holds what. Stages after `chunk` read the run directory the earlier ones wrote.
#   tools/stage-memory.sh RECIPE CORPUS OUT [LABEL]
# e.g. tools/stage-memory.sh /tmp/strata-bench/recipe-static.toml ../shared/corpora/medquad/docs.jsonl /tmp/sm/100 100%
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,5p "$0"; exit 2; }
RECIPE=$1 CORPUS=$2 OUT=$3 LABEL=${4:-$(basename "$CORPUS")}
STRATA=${STRATA:-${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}/release/strata}
for stage in chunk embed fit taxonomy subtrees select emit index report; do
  /usr/bin/time -f "${LABEL//%/%%} $stage %e s %M KB" "$STRATA" "$stage" --recipe "$RECIPE" --corpus "$CORPUS" --out "$OUT" \
    --force -q 2>&1 >/dev/null | tail -1
done
