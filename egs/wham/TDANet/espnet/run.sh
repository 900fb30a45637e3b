#!/usr/bin/env bash
# TDANet (ICLR 2023) on WHAM!: min mode, 8 kHz, noisy mixtures -> clean sources, with ESPnet's enh.sh.
# Run it in an ESPnet recipe folder made by ESPnet's setup script, with this folder's files copied
# in (docs/integrations.md, "ESPnet"), from stage 1 (data) to the end:
#   WHAM=/path/to/WHAM ./run.sh
# Stage 1 (local/data.sh) checks the WHAM! tree and writes data/ with the folder names of
# ESPnet's own WHAM! recipe; the audio is read in place. Any enh.sh option can follow, e.g.
# --stage 5 or --ngpu 1.
set -euo pipefail

sample_rate=8k
min_or_max=min
task=sep_noisy
mix=both      # task sep_noisy: ESPnet's WHAM! folders of noisy mixtures

train_set=tr_mix_${mix}_${min_or_max}_${sample_rate}
valid_set=cv_mix_${mix}_${min_or_max}_${sample_rate}
test_sets=tt_mix_${mix}_${min_or_max}_${sample_rate}

./enh.sh \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --fs "${sample_rate}" \
    --audio_format wav \
    --spk_num 2 \
    --use_noise_ref false \
    --ngpu 4 \
    --local_data_opts "--sample_rate ${sample_rate} --min_or_max ${min_or_max} --task ${task}" \
    --enh_config conf/train_enh_tdanet.yaml \
    "$@"
