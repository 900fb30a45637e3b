#!/usr/bin/env bash
# ESPnet's stage 1 for TDANet on LRS2-2Mix, called by enh.sh with run.sh's --local_data_opts.
# The LRS2-2Mix download root comes from --root, else $LRS2_2MIX (environment or db.sh).
# asteroid-tdanet checks the tree and writes ESPnet's Kaldi-style folders into data/.
set -euo pipefail

root=${LRS2_2MIX:-}
if [ -f ./db.sh ]; then
    . ./db.sh
fi
root=${root:-${LRS2_2MIX:-}}
sample_rate=16k
min_or_max=min
task=sep_clean
python=python3

. utils/parse_options.sh

if [ -z "${root}" ]; then
    echo "$0: set LRS2_2MIX=/path/to/LRS2-2Mix (or pass --root)" >&2
    exit 1
fi
"${python}" -m asteroid_tdanet.data.kaldi --dataset lrs2_2mix --root "${root}" --data data \
    --sample_rate "${sample_rate}" --min_or_max "${min_or_max}" --task "${task}"
