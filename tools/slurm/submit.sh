#!/usr/bin/env bash
# Submits a sharded strata run to Slurm: an array job of SHARDS map tasks and a reduce job
# that starts once all of them have succeeded. A failed map task can be resubmitted alone
# (sbatch --array=I ...): shards already done are skipped by strata itself.
#   usage: tools/slurm/submit.sh RECIPE SHARDS [sbatch options for both jobs...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 RECIPE SHARDS [sbatch options]" >&2; exit 2; }
recipe=$(realpath "$1")
shards=$2
shift 2
here=$(dirname "$(realpath "$0")")
export RECIPE=$recipe SHARDS=$shards
map=$(sbatch --parsable --export=ALL --array="0-$((shards - 1))" "$@" "$here/map.sbatch")
reduce=$(sbatch --parsable --export=ALL --dependency="afterok:${map%%;*}" "$@" "$here/reduce.sbatch")
echo "map array job $map ($shards tasks), reduce job $reduce after it"
