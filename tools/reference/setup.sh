#!/usr/bin/env bash
# Installs the Python reference pipeline of the benchmark (tools/reference/pipeline.py) into
# ${STRATA_CACHE:-~/.cache/strata}/reference-venv, never into the repo. Idempotent: the venv
# is (re)built only when its copy of requirements.txt differs from this one, and the copy is
# written last, so an interrupted install is redone next time. Silent on success but for the
# venv's python on stdout:  PY=$(tools/reference/setup.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
VENV=$CACHE/reference-venv

if ! [[ -x $VENV/bin/python ]] || ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.txt"; then
  mkdir -p "$CACHE"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary :all: -r "$HERE/requirements.txt" >&2
  cp "$HERE/requirements.txt" "$VENV/requirements.txt"
fi
echo "$VENV/bin/python"
