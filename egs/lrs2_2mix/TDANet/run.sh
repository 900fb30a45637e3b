#!/usr/bin/env bash
# TDANet on LRS2-2Mix (16 kHz, 2 s mixtures): paper Table 2. See README.md.
# Every stage is the shared driver ../../../local/recipe.sh; ./run.sh --help lists the options.
set -euo pipefail
cd "$(dirname "$0")"

# Dataset paths: LRS2-2Mix (mixtures of the BBC LRS2 corpus; LRS2 needs a signed licence):
# about 40 GB free.
storage_dir=${LRS2_2MIX_ROOT:-$PWD/data/raw}

exec ../../../local/recipe.sh \
  --dataset lrs2_2mix \
  --storage_dir "$storage_dir" \
  --sample_rate 16000 \
  --conf conf/tdanet.yml \
  "$@"
