#!/usr/bin/env bash
# Submits a sharded strata run to Slurm as ten jobs, each starting once the one before has
# succeeded: an array job of SHARDS map tasks (chunk, embed), a reduce job up to the fit (the
# tree fitted on a sample), an array job of SHARDS taxonomy tasks (each shard's passages placed
# in it), a reduce job up to the keywords (the tree the placements make and its keywords), an
# array job of SHARDS keywords tasks (each shard's label phrases counted), a reduce job up to
# the subtrees (the taxonomy, the passages grouped by subtree), an array
# job of SHARDS select tasks (each shard choosing in its share of the groups), a reduce job up
# to emit (which publishes the chunks), an array job of SHARDS index tasks, and the last reduce
# job (the indexes merged, cost, report). A failed array task can be
# resubmitted alone (sbatch --array=I ...): shards already done are skipped by strata itself.
#   usage: tools/slurm/submit.sh RECIPE SHARDS [sbatch options for every job...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 RECIPE SHARDS [sbatch options]" >&2; exit 2; }
recipe=$(realpath "$1")
shards=$2
shift 2
here=$(dirname "$(realpath "$0")")
export RECIPE=$recipe SHARDS=$shards
array="0-$((shards - 1))"
map=$(sbatch --parsable --export=ALL --array="$array" "$@" "$here/map.sbatch")
fit=$(UNTIL=fit sbatch --parsable --export=ALL --dependency="afterok:${map%%;*}" "$@" "$here/reduce.sbatch")
place=$(STAGE=taxonomy sbatch --parsable --export=ALL --array="$array" --dependency="afterok:${fit%%;*}" "$@" "$here/round.sbatch")
words=$(UNTIL=keywords sbatch --parsable --export=ALL --dependency="afterok:${place%%;*}" "$@" "$here/reduce.sbatch")
count=$(STAGE=keywords sbatch --parsable --export=ALL --array="$array" --dependency="afterok:${words%%;*}" "$@" "$here/round.sbatch")
group=$(UNTIL=subtrees sbatch --parsable --export=ALL --dependency="afterok:${count%%;*}" "$@" "$here/reduce.sbatch")
choose=$(STAGE=select sbatch --parsable --export=ALL --array="$array" --dependency="afterok:${group%%;*}" "$@" "$here/round.sbatch")
publish=$(UNTIL=emit sbatch --parsable --export=ALL --dependency="afterok:${choose%%;*}" "$@" "$here/reduce.sbatch")
index=$(STAGE=index sbatch --parsable --export=ALL --array="$array" --dependency="afterok:${publish%%;*}" "$@" "$here/round.sbatch")
reduce=$(sbatch --parsable --export=ALL --dependency="afterok:${index%%;*}" "$@" "$here/reduce.sbatch")
echo "map array job $map, reduce up to fit $fit, taxonomy array job $place, reduce up to keywords $words, keywords array job $count, reduce up to subtrees $group, select array job $choose, reduce up to emit $publish, index array job $index, reduce $reduce ($shards shards)"
