#!/usr/bin/env bash
# `make bench`: time and memory of `strata run` on MedQuAD, per stage, for the static
# embedder at 10/25/50/100% of the documents and on the corpus concatenated 4x, and for the
# neural fp32 and int8 models on the 10% subset; the raw onnxruntime ceiling on the same
# batches; and `strata eval` of each run at the neural scale (retrieval, labels, coverage,
# agreement with the fp32 run) on MedQuAD's questions. Every
# configuration runs BENCH_RUNS times with `--force --no-vector-cache`, so every stage and
# every embedding really runs; the table shows medians. A benchmark, not a test: nothing
# here fails because the machine is slow. Copy the printed table into BENCHMARKS.md.
#
# Inputs and outputs stay out of the repo, under $STRATA_BENCH_DIR (default /tmp/strata-bench).
#
#   BENCH_QUICK=1          only the 10% subset and only the static embedder
#   BENCH_RUNS=3           runs per configuration (medians)
#   BENCH_SCALES="10 25 50 100 x4"   scaling points of the static embedder
#   BENCH_NEURAL="minilm minilm-int8"  neural variants ("" skips them and the ceiling)
#   BENCH_NEURAL_SCALE=10  the subset the neural variants run on
#   BENCH_QUALITY=1        `strata eval` of every run at BENCH_NEURAL_SCALE
#   BENCH_QUESTIONS=2000   questions sampled for retrieval and question coverage
#   BENCH_CEILING_STRIDE=1 time every k-th batch of the ceiling only, scaled up (busy machines)
#   BENCH_REFERENCE=1      run the Python reference pipeline (tools/reference, ~15 min) once on
#                          the whole corpus, for the ratio of the static path against it
#
# The chunk stage's ceiling (the tokenizers alone on the same documents, the same threads) is
# timed BENCH_RUNS times on the whole corpus (crates/strata-chunk/examples/tokenizer_ceiling.rs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}
STRATA=${STRATA:-$CARGO_TARGET_DIR/release/strata}
CORPUS=${BENCH_CORPUS:-$ROOT/../shared/corpora/medquad/docs.jsonl}
QUESTIONS=${BENCH_QUESTIONS_FILE:-$(dirname "$CORPUS")/questions.jsonl}
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}
RUNS=${BENCH_RUNS:-3}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  SCALES=${BENCH_SCALES:-10} NEURAL=${BENCH_NEURAL-}
else
  SCALES=${BENCH_SCALES:-10 25 50 100 x4} NEURAL=${BENCH_NEURAL-minilm minilm-int8}
fi
NEURAL_SCALE=${BENCH_NEURAL_SCALE:-10}
THREADS=${BENCH_THREADS:-$(nproc)}
PY=${PYTHON:-python3}
VPY=$CACHE/venv/bin/python
MODEL=$CACHE/models/all-minilm-l6-v2
log() { echo "bench: $*" >&2; }

[[ -x $STRATA ]] || { log "no strata binary at $STRATA: run \`make build\`"; exit 1; }
[[ -x $VPY && -f $MODEL/READY ]] || { log "the model is not prepared: run \`make model\`"; exit 1; }
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time (for peak RSS)"
  apt-get install -y -qq time >/dev/null 2>&1 || { log "needs /usr/bin/time: apt-get install time"; exit 1; }
fi
"$PY" -c "import pyarrow" 2>/dev/null || "$PY" -m pip install -q -r tools/validate-requirements.txt

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$DIR/runs"
RESULTS=$DIR/results-$stamp.jsonl
CEIL=$DIR/ceiling-$stamp.jsonl
TOKCEIL=$DIR/tokenizer-ceiling-$stamp.jsonl
REFERENCE=$DIR/reference-$stamp.json
REPORT=$DIR/bench-$stamp.txt

# Subsets (nested random samples of documents, seed 42) and the 4x corpus, made once.
[[ -f $DIR/medquad-x4.jsonl && $DIR/medquad-x4.jsonl -nt $CORPUS ]] || { log "making subsets in $DIR"; "$PY" tools/bench.py subsets "$CORPUS" "$DIR"; }
corpus_of() { if [[ $1 == 100 ]]; then echo "$CORPUS"; else echo "$DIR/medquad-$1.jsonl"; fi; }

recipe_of() {  # pipeline/medquad.toml with the embed model swapped
  tools/medquad-recipe.sh "$1" "$QUESTIONS" >"$DIR/recipe-$1.toml"
  echo "$DIR/recipe-$1.toml"
}

bench_run() {  # LABEL MODEL SCALE: RUNS timed runs, recorded in $RESULTS
  local label=$1 model=$2 scale=$3 recipe i out
  recipe=$(recipe_of "$model")
  for i in $(seq 1 "$RUNS"); do
    out=$DIR/runs/$label
    log "$label run $i/$RUNS"
    /usr/bin/time -v -o "$DIR/time.txt" "$STRATA" run --recipe "$recipe" --corpus "$(corpus_of "$scale")" \
      --out "$out" --force --no-vector-cache -q
    "$PY" tools/bench.py record "$label" "$out" "$DIR/time.txt" "$RESULTS"
  done
}

# The chunk stage's ceiling: both tokenizers of pipeline/medquad.toml alone on the documents.
cargo build --release --locked -q -p strata-chunk --example tokenizer_ceiling
target_tokenizer=$(sed -n 's/^tokenizer = "\(.*\)"/\1/p' pipeline/medquad.toml | sed "s|^~|$HOME|")
for i in $(seq 1 "$RUNS"); do
  log "tokenizer ceiling run $i/$RUNS"
  "$CARGO_TARGET_DIR/release/examples/tokenizer_ceiling" "$CORPUS" "$MODEL/tokenizer.json" $target_tokenizer >>"$TOKCEIL"
done

for s in $SCALES; do bench_run "static-$s" static "$s"; done

# The Python reference pipeline a data engineer would write (semchunk, onnxruntime fp32,
# scikit-learn, facility location, tantivy), once, on the whole corpus.
if [[ ${BENCH_REFERENCE:-$([[ ${BENCH_QUICK:-0} == 1 ]] && echo 0 || echo 1)} == 1 ]]; then
  RPY=$(tools/reference/setup.sh | tail -1)
  log "Python reference pipeline on the whole corpus (~15 min)"
  /usr/bin/time -v -o "$DIR/time-reference.txt" "$RPY" tools/reference/pipeline.py --corpus "$CORPUS" --model-dir "$MODEL" \
    --out "$DIR/reference" --threads "$THREADS" >&2
  "$PY" tools/bench.py reference "$DIR/reference/timings.json" "$DIR/time-reference.txt" "$REFERENCE"
fi
for m in $NEURAL; do bench_run "$m-$NEURAL_SCALE" "$m" "$NEURAL_SCALE"; done

# The ceiling: onnxruntime alone on the texts the fp32 run embedded, in the same batches.
if [[ -n $NEURAL && -d $DIR/runs/minilm-$NEURAL_SCALE ]]; then
  "$PY" tools/bench.py texts "$DIR/runs/minilm-$NEURAL_SCALE" "$DIR/texts-$NEURAL_SCALE.json"
  for onnx in model.onnx model_int8.onnx; do
    for i in $(seq 1 "$RUNS"); do
      log "raw onnxruntime $onnx run $i/$RUNS"
      "$VPY" -B tools/bench.py ceiling "$DIR/texts-$NEURAL_SCALE.json" "$MODEL" "$onnx" "$THREADS" 32 "${BENCH_CEILING_STRIDE:-1}" >>"$CEIL"
    done
  done
fi

{
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); strata $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  "$PY" tools/bench.py table "$RESULTS" "$CEIL" "$TOKCEIL" "$REFERENCE"
} | tee "$REPORT"

# Quality next to speed (`strata eval`): retrieval (BM25, dense and hybrid recall@1/5/10, MRR, latency),
# taxonomy against the `source` label, the subset against baselines, and each run against
# the fp32 run on the same subset (taxonomy NMI per level, vector cosine per chunk).
if [[ ${BENCH_QUALITY:-1} == 1 ]]; then
  ref=$DIR/runs/minilm-$NEURAL_SCALE
  for m in static $NEURAL; do
    run=$DIR/runs/$m-$NEURAL_SCALE
    [[ -d $run ]] || continue
    cmp=()
    [[ $m != minilm && -d $ref ]] && cmp=(--compare "$ref")
    { echo; echo "== strata eval --run $run"; } | tee -a "$REPORT"
    "$STRATA" eval --run "$run" --questions "$QUESTIONS" --max-questions "${BENCH_QUESTIONS:-2000}" --labels source "${cmp[@]}" 2>/dev/null | tee -a "$REPORT"
  done
fi
log "results: $REPORT ($RESULTS, $CEIL)"
