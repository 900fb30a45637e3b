#!/usr/bin/env bash
# TDANet on Libri2Mix (train-100, 8 kHz, min mode, clean): paper Table 2. See README.md.
# Every stage is the shared driver ../../../local/recipe.sh; ./run.sh --help lists the options.
set -euo pipefail
cd "$(dirname "$0")"

# Dataset paths: LibriSpeech + Libri2Mix are downloaded and generated here (stage 0):
# about 16 GB free.
storage_dir=${LIBRIMIX_ROOT:-$PWD/data/raw}

exec ../../../local/recipe.sh \
  --dataset librimix \
  --storage_dir "$storage_dir" \
  --sample_rate 8000 \
  --conf conf/tdanet.yml \
  "$@"
