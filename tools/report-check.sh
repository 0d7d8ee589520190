#!/usr/bin/env bash
# Checks RUN_DIR/report.html the way a reader's browser sees it: headless Chromium loads the
# page offline, and the rendered DOM must hold the taxonomy tree (<details>), the treemap
# (<svg class="treemap"> with leaf rectangles), the cost ledger and chart, and no script error
# (the page's window.onerror hook sets data-script-error on <html>; its script sets
# data-ready="1" when it ran to the end). Also fails on external URLs in the file.
#
#   tools/report-check.sh RUN_DIR                  # check
#   tools/report-check.sh RUN_DIR --screenshot     # check, then save docs/report.png
#   tools/report-check.sh RUN_DIR --screenshot=PATH
set -euo pipefail

die() { echo "report-check: $*" >&2; exit 1; }

usage() { echo "usage: $0 RUN_DIR [--screenshot[=PATH]]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
html="$1/report.html"
shot=""
case "${2:-}" in
  "") ;;
  --screenshot) shot="docs/report.png" ;;
  --screenshot=*) shot="${2#--screenshot=}" ;;
  *) usage ;;
esac
[ -f "$html" ] || die "\`$html\` does not exist; run the pipeline (or the report stage) first"

# Self-contained: no tag attribute and no style sheet may point elsewhere. (Attributes are
# walked one by one, so text such as a chunk mentioning src=http://... is not mistaken for one.)
external=$( { grep -Eion '<[a-z]+([[:space:]]+[a-z:-]+(="[^"]*")?)*[[:space:]]+(src|href|xlink:href|action|poster)="[[:space:]]*(https?:|//)[^"]*"' "$html" || true
              sed -n '/<style>/,/<\/style>/p' "$html" | grep -Ein 'url\(|@import' || true; } | head -5)
[ -z "$external" ] || die "\`$html\` refers to an external resource:
$external"

chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "report-check: installing chromium (apt-get install -y chromium)" >&2
  apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; } \
    || die "could not install chromium with apt-get"
fi

profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile" --enable-logging=stderr --v=0)
url="file://$(realpath "$html")"

dom=$(timeout 120 "$chromium" "${flags[@]}" --dump-dom "$url" 2>"$log") \
  || die "chromium failed to load \`$html\`:
$(tail -20 "$log")"

fail=()
html_tag=$(grep -o '<html[^>]*>' <<<"$dom" | head -1 || true)
if grep -q 'data-script-error=' <<<"$html_tag"; then
  fail+=("script error: $(grep -o 'data-script-error="[^"]*"' <<<"$html_tag" || true)")
fi
grep -q 'data-ready="1"' <<<"$html_tag" || fail+=("the page's script did not run to the end (no data-ready=\"1\")")
if grep -Eiq 'Uncaught|SyntaxError' "$log"; then
  fail+=("console error: $(grep -Ei 'Uncaught|SyntaxError' "$log" | head -1 || true)")
fi
details=$(grep -o '<details' <<<"$dom" | wc -l || true)
[ "$details" -ge 1 ] || fail+=("no taxonomy tree (<details> elements) in the rendered page")
grep -q '<svg class="treemap"' <<<"$dom" || fail+=("no treemap <svg> in the rendered page")
leaves=$(grep -o 'class="tm-leaf"' <<<"$dom" | wc -l || true)
[ "$leaves" -ge 1 ] || fail+=("the treemap has no leaf rectangles")
grep -q '<table class="ledger">' <<<"$dom" || fail+=("no cost ledger table")
grep -q '<svg class="chart"' <<<"$dom" || grep -q 'nothing to chart' <<<"$dom" || fail+=("no cost chart")

if [ ${#fail[@]} -gt 0 ]; then
  for f in "${fail[@]}"; do echo "report-check: \`$html\`: $f" >&2; done
  exit 1
fi

if [ -n "$shot" ]; then
  mkdir -p "$(dirname "$shot")"
  shot_abs="$(realpath -m "$shot")"
  timeout 120 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1280,2000 --screenshot="$shot_abs" "$url" 2>>"$log" \
    || die "chromium could not take the screenshot:
$(tail -20 "$log")"
  [ -s "$shot_abs" ] || die "no screenshot was written to \`$shot\`"
  echo "report-check: screenshot saved to $shot"
fi
echo "report-check: ok: \`$html\` renders offline ($details <details> elements, $leaves treemap leaves, no script errors)"
