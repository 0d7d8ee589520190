#!/usr/bin/env bash
# Soak: the stated limits of docs/LIMITS.md at full size (too slow for `make test`).
#   1. the chunker on a single generated document of $SOAK_DOC_MB MB (default 100);
#   2. `strata chunk` on that document as a corpus file (ingest, chunking, Parquet);
#   3. `strata chunk` on a JSONL corpus of $SOAK_DOCS documents (default 100000).
# Prints wall time and peak memory of each; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
DOC_MB=${SOAK_DOC_MB:-100}
DOCS=${SOAK_DOCS:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}
STRATA=$CARGO_TARGET_DIR/release/strata
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

measure() { # label, command...: runs it, prints seconds and peak memory
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %U s CPU, peak %M KB" "$@" >/dev/null
}

cargo build --release --locked -p strata-cli
echo "== chunker, one $DOC_MB MB document (tests/limits.rs)"
STRATA_LARGE_DOC_MB=$DOC_MB cargo test --release --locked -p strata-chunk --test limits -- --nocapture --test-threads 1 2>&1 | grep -E "MB|test result"

python3 - "$WORK" "$DOC_MB" "$DOCS" <<'PY'
import json, random, sys
work, mb, docs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
words = "the patient presented with acute chest pain and dyspnoea after exercise renal function declined over three days blood pressure was treated".split()
def paragraph():
    return " ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) + ".\n\n"
import os
os.makedirs(f"{work}/large"); os.makedirs(f"{work}/many")
with open(f"{work}/large/large.md", "w") as f:
    size, section = 0, 0
    while size < mb << 20:
        if rng.random() < 0.03:
            section += 1
            size += f.write(f"## Section {section}\n\n")
        size += f.write(paragraph())
with open(f"{work}/many/records.jsonl", "w") as f:
    for i in range(docs):
        f.write(json.dumps({"id": f"doc-{i}", "text": paragraph()}) + "\n")
PY
cat > "$WORK/recipe.toml" <<TOML
domain = "soak"
corpus = "large"
TOML

echo "== strata chunk, one $DOC_MB MB document"
measure "large document" "$STRATA" chunk -q --recipe "$WORK/recipe.toml" --corpus "$WORK/large" --out "$WORK/out-large"
echo "== strata chunk, $DOCS JSONL documents"
measure "many documents" "$STRATA" chunk -q --recipe "$WORK/recipe.toml" --corpus "$WORK/many" --out "$WORK/out-many"
python3 - "$WORK" <<'PY'
import json, sys
for run in ("out-large", "out-many"):
    m = json.load(open(f"{sys.argv[1]}/{run}/manifest.json"))["stages"]["chunk"]
    print(f"{run}: {m['documents']} documents, {m['rows_out']} chunks, {m['corpus_tokens']} tokens")
PY
