#!/usr/bin/env bash
# Prints pipeline/medquad.toml for a benchmark: the [embed] model swapped for MODEL, an
# optional extra [embed] line, and the questions file by its absolute path (a recipe copied
# out of pipeline/ resolves relative paths from its own folder). Pass the corpus with --corpus.
#   usage: tools/medquad-recipe.sh MODEL QUESTIONS [EMBED_LINE] > recipe.toml
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 MODEL QUESTIONS [EMBED_LINE]" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extra=${3:+\\n$3}
recipe=$(sed -e "s/^model = .*/model = \"$1\"$extra/" -e "s|^questions = .*|questions = \"$2\"|" "$ROOT/pipeline/medquad.toml")
grep -q "^model = \"$1\"" <<<"$recipe" || { echo "$0: pipeline/medquad.toml has no [embed] model line" >&2; exit 1; }
echo "$recipe"
