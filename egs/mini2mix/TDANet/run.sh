#!/usr/bin/env bash
# The offline demo (make demo): build Mini2Mix from the committed synthetic voices, train a
# small TDANet on 2 CPU cores, evaluate, compare. No network, no GPU. See README.md.
# Every stage is the shared driver ../../../local/recipe.sh; ./run.sh --help lists the options.
set -euo pipefail
cd "$(dirname "$0")"

# Mini2Mix is built here (Libri2Mix layout), then indexed by the LibriMix prepare step.
# Each demo run retrains from scratch (--overwrite yes); the built data are kept.
storage_dir=$PWD/data/raw
# Two training processes (DDP over gloo, one per core) when there are two cores or more: this
# small model gains little from a second thread but much from a second process.
cpu_procs=$(( $(nproc) >= 2 ? 2 : 1 ))

exec ../../../local/recipe.sh \
  --dataset mini2mix \
  --storage_dir "$storage_dir" \
  --sample_rate 8000 \
  --conf conf/tdanet.yml \
  --eval_opts "--jobs 2" \
  --cpu_procs "$cpu_procs" \
  --overwrite yes \
  "$@"
