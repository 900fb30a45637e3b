#!/usr/bin/env bash
# TDANet on WHAM! (8 kHz, min mode, noisy mixtures -> clean sources): paper Table 2. See README.md.
# Every stage is the shared driver ../../../local/recipe.sh; ./run.sh --help lists the options.
set -euo pipefail
cd "$(dirname "$0")"

# Dataset paths: WSJ0 (LDC93S6A, licensed: bring your own copy) and where WHAM! is built (stage 0):
# about 76 GB free.
wsj0=${WSJ0_ROOT:-/path/to/wsj0}
storage_dir=${WHAM_ROOT:-$PWD/data/raw}

exec ../../../local/recipe.sh \
  --dataset wham \
  --storage_dir "$storage_dir" \
  --wsj0 "$wsj0" \
  --prepare_opts "--task sep_noisy" \
  --sample_rate 8000 \
  --conf conf/tdanet.yml \
  "$@"
