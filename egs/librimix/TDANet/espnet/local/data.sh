#!/usr/bin/env bash
# ESPnet's stage 1 for TDANet on LibriMix, called by enh.sh with run.sh's --local_data_opts.
# The LibriMix download root comes from --root, else $LIBRIMIX (environment or db.sh).
# asteroid-tdanet checks the tree and writes ESPnet's Kaldi-style folders into data/.
set -euo pipefail

root=${LIBRIMIX:-}
if [ -f ./db.sh ]; then
    . ./db.sh
fi
root=${root:-${LIBRIMIX:-}}
sample_rate=8k
min_or_max=min
task=sep_clean
python=python3

. utils/parse_options.sh

if [ -z "${root}" ]; then
    echo "$0: set LIBRIMIX=/path/to/LibriMix (or pass --root)" >&2
    exit 1
fi
"${python}" -m asteroid_tdanet.data.kaldi --dataset librimix --root "${root}" --data data \
    --sample_rate "${sample_rate}" --min_or_max "${min_or_max}" --task "${task}"
