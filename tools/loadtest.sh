#!/usr/bin/env bash
# `make loadtest`: starts `strata serve` on a free loopback port over a finished run, runs
# the bounded load test (tools/loadtest.py: fixed clients for a fixed time and request
# budget, then the bad-input checks) once per search mode, and stops the server by its
# process id (SIGTERM) whatever happens. A benchmark, not a CI test.
#
#   RUN=out/medquad QUESTIONS=../shared/corpora/medquad/questions.jsonl CLIENTS=8 SECONDS=20 tools/loadtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}
STRATA=${STRATA:-$CARGO_TARGET_DIR/release/strata}
RUN=${RUN:-out/medicine}
QUESTIONS=${QUESTIONS:-fixtures/questions/medicine.jsonl}
CLIENTS=${CLIENTS:-8} SECONDS_EACH=${SECONDS:-20} MAX_REQUESTS=${MAX_REQUESTS:-20000}
MODES=${MODES:-bm25 dense hybrid}
[[ -d $RUN/dense ]] || { echo "loadtest: $RUN is not a finished run (make corpus first)" >&2; exit 1; }

log=$(mktemp)
"$STRATA" serve --run "$RUN" --addr 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  grep -q '^listening on ' "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$log" | head -1)
[[ -n $url ]] || { echo "loadtest: the server did not start" >&2; cat "$log" >&2; exit 1; }
echo "loadtest: strata serve (pid $pid) on $url over $RUN"
status=0
for mode in $MODES; do
  echo "== $mode"
  python3 tools/loadtest.py --url "$url" --clients "$CLIENTS" --seconds "$SECONDS_EACH" \
    --max-requests "$MAX_REQUESTS" --questions "$QUESTIONS" --mode "$mode" --pid $pid || status=1
done
kill -TERM $pid
wait $pid && echo "loadtest: the server stopped cleanly on SIGTERM" || { echo "loadtest: the server did not exit cleanly" >&2; status=1; }
trap 'rm -f "$log"' EXIT
exit $status
