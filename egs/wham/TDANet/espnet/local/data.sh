#!/usr/bin/env bash
# ESPnet's stage 1 for TDANet on WHAM!, called by enh.sh with run.sh's --local_data_opts.
# The WHAM! download root comes from --root, else $WHAM (environment or db.sh).
# asteroid-tdanet checks the tree and writes ESPnet's Kaldi-style folders into data/.
set -euo pipefail

root=${WHAM:-}
if [ -f ./db.sh ]; then
    . ./db.sh
fi
root=${root:-${WHAM:-}}
sample_rate=8k
min_or_max=min
task=sep_noisy
python=python3

. utils/parse_options.sh

if [ -z "${root}" ]; then
    echo "$0: set WHAM=/path/to/WHAM (or pass --root)" >&2
    exit 1
fi
"${python}" -m asteroid_tdanet.data.kaldi --dataset wham --root "${root}" --data data \
    --sample_rate "${sample_rate}" --min_or_max "${min_or_max}" --task "${task}"
