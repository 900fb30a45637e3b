#!/usr/bin/env bash
# Stage 0 for LRS2-2Mix: download lrs2.tar.gz (16.5 GB) from the authors' Hugging Face data set
# and extract it to ROOT/lrs2_rebuild/audio/wav16k/min/{tr,cv,tt}/{mix,s1,s2}.
# Re-running resumes an interrupted download and skips finished parts. See --help.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=local/download_lib.sh
. "$here/download_lib.sh"

root=""
sample_rate=16000
accept_license=false
keep_archives=false
TDANET_OPTIONS="root sample_rate accept_license keep_archives"
# Printed when the hub answers 401/403 (download_lib.sh).
auth_hint="Hugging Face refuses anonymous downloads of gated or private data sets: log in on
huggingface.co, accept the data set's terms on its page, create a read token
(https://huggingface.co/settings/tokens) and re-run with HF_TOKEN=<token> in the environment
(it is sent to huggingface.co only)."

# The Google Drive link of the authors' README is dead; the same archive is on the HF hub.
lrs2_url=${TDANET_LRS2_URL:-https://huggingface.co/datasets/JusperLee/LRS2-2Mix/resolve/main/lrs2.tar.gz}
archive_gb=16.5
# Estimate: the archive plus its extracted content, with some margin.
need_gb=40

usage() {
  cat <<EOF
Usage: $0 --root ROOT [--accept_license] [--keep_archives]

Downloads LRS2-2Mix (TDANet's audio-only 2-speaker mixtures of LRS2, 16 kHz, 'min' mode)
into ROOT, giving ROOT/lrs2_rebuild/audio/wav16k/min/{tr,cv,tt}/{mix,s1,s2}/*.wav.
Then: python local/prepare.py --dataset lrs2_2mix --root ROOT --out DATA_DIR

Options:
  --root DIR          where to download and extract (needs about $need_gb GB free)
  --sample_rate HZ    16000, the only rate LRS2-2Mix exists at (checked)
  --accept_license    accept the LRS2 terms (BBC, non-commercial research only) without asking
  --keep_archives     keep lrs2.tar.gz ($archive_gb GB) after extraction

Environment:
  TDANET_LRS2_URL     archive URL (default: $lrs2_url)
  HF_TOKEN            Hugging Face read token, if the hub answers 401/403 (gated data set)
  More (retries, disk check, checksums): see local/download_lib.sh.
EOF
}

tdanet_parse_options "$@"
[ -n "$root" ] || tdanet_die "--root is required (see --help)"
[ "$sample_rate" = 16000 ] || tdanet_die "--sample_rate $sample_rate: LRS2-2Mix exists at 16000" \
  "Hz only (its archive holds wav16k); use --sample_rate 16000 and confs with" \
  "data.sample_rate: 16000"
root=$(tdanet_abs_dir "$root")

tdanet_accept_license "LRS2" "LRS2-2Mix is made from the Oxford-BBC Lip Reading Sentences 2 (LRS2)
data set. The BBC licenses LRS2 for NON-COMMERCIAL, ACADEMIC RESEARCH USE ONLY, under the BBC's
data-sharing agreement (https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs2.html): you may
not redistribute it or use it (or models trained on it) commercially. By going on you confirm
that you are entitled to use LRS2 under these terms."

data_dir=$root/lrs2_rebuild/audio/wav16k/min
if tdanet_is_done "$root" lrs2_2mix; then
  tdanet_log "LRS2-2Mix is ready in $data_dir (delete $root/.tdanet_done_lrs2_2mix to redo)"
  exit 0
fi

if tdanet_is_done "$root" extract_lrs2; then
  need=0
else
  need=$need_gb
fi
tdanet_check_disk "$root" "$need" "LRS2-2Mix"
tdanet_fetch_and_extract "$lrs2_url" "$root/downloads/lrs2.tar.gz" "$root" lrs2

# The archive's top folder is not documented: find lrs2_rebuild wherever it landed.
if [ ! -d "$root/lrs2_rebuild" ]; then
  found=$(find "$root" -maxdepth 4 -type d -name lrs2_rebuild -print -quit)
  [ -n "$found" ] || tdanet_die "no lrs2_rebuild folder in the extracted archive under $root"
  ln -s "$found" "$root/lrs2_rebuild"
  tdanet_log "Linked $root/lrs2_rebuild -> $found"
fi
for split in tr cv tt; do
  for sub in mix s1 s2; do
    [ -d "$data_dir/$split/$sub" ] ||
      tdanet_die "the archive has no $data_dir/$split/$sub: unexpected layout"
  done
done
tdanet_mark_done "$root" lrs2_2mix
tdanet_log "LRS2-2Mix ready in $data_dir"
tdanet_log "Next: python local/prepare.py --dataset lrs2_2mix --root $root --out DATA_DIR"
