#!/usr/bin/env bash
# Stage 0 for WHAM!: WSJ0 is licensed by the LDC, so it comes from the user (--wsj0); this
# fetches the free WHAM! noise and the WHAM! scripts and runs the mixing, giving
# ROOT/wav8k/min/{tr,cv,tt}/{mix_both,mix_clean,mix_single,s1,s2,noise}.
# Re-running resumes downloads and skips finished parts. See --help.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=local/download_lib.sh
. "$here/download_lib.sh"

root=""
wsj0=""
sample_rate=8000
mode=min
accept_license=false
keep_archives=false
TDANET_OPTIONS="root wsj0 sample_rate mode accept_license keep_archives"

bucket=https://my-bucket-a8b4b49c25c811ee9a7e8bba05fa24c7.s3.amazonaws.com
# The files moved to this bucket (LibriMix's generate_librimix.sh uses it since 2024). The
# address of older recipes (Asteroid's egs/wham/ConvTasNet/local/prepare_data.sh) is tried when
# the first fails.
old_bucket=https://storage.googleapis.com/whisper-public
noise_url=${TDANET_WHAM_NOISE_URL:-$bucket/wham_noise.zip}
noise_fallback_url=${TDANET_WHAM_NOISE_FALLBACK_URL:-$old_bucket/wham_noise.zip}
scripts_url=${TDANET_WHAM_SCRIPTS_URL:-$bucket/wham_scripts.tar.gz}
scripts_fallback_url=${TDANET_WHAM_SCRIPTS_FALLBACK_URL:-$old_bucket/wham_scripts.tar.gz}
sph2pipe=${SPH2PIPE:-sph2pipe}

usage() {
  cat <<EOF
Usage: $0 --root ROOT --wsj0 WSJ0_DIR [--sample_rate 8000] [--mode min] [--keep_archives]

Builds WHAM! (noisy WSJ0-2mix) in ROOT/wav8k/min/{tr,cv,tt}/: downloads the WHAM! noise
(about 17 GB) and the WHAM! scripts (wham.whisper.ai), then mixes your WSJ0 with them, for
one sample rate and mode only (the scripts alone would write all four, 243 GB).
Then: python local/prepare.py --dataset wham --root ROOT --out DATA_DIR

WSJ0 (LDC93S6A) is licensed by the Linguistic Data Consortium and cannot be downloaded here.
--wsj0 is the folder that holds wsj0/ (with si_tr_s/, si_dt_05/, si_et_05/), or wsj0/ itself.
The WHAM! scripts read .wav files: if your copy holds the LDC's .wv1 (NIST SPHERE) files,
they are converted into ROOT/wsj0_wav with sph2pipe (on PATH, or SPH2PIPE=/path/to/sph2pipe;
build it from https://www.openslr.org/resources/3/sph2pipe_v2.5.tar.gz:
'tar xzf sph2pipe_v2.5.tar.gz && gcc -o sph2pipe sph2pipe_v2.5/*.c -lm').

Options:
  --root DIR          where to download and generate (needs about 76 GB free)
  --wsj0 DIR          your WSJ0 copy (required)
  --sample_rate HZ    8000 (default) or 16000
  --mode MODE         min (default) or max
  --accept_license    confirm the WSJ0 licence terms without the prompt
  --keep_archives     keep wham_noise.zip and wham_scripts.tar.gz after extraction

Environment:
  TDANET_WHAM_NOISE_URL    (default: $noise_url)
  TDANET_WHAM_NOISE_FALLBACK_URL    tried if that fails (default: $noise_fallback_url)
  TDANET_WHAM_SCRIPTS_URL  (default: $scripts_url)
  TDANET_WHAM_SCRIPTS_FALLBACK_URL  tried if that fails (default: $scripts_fallback_url)
  PYTHON                   python with numpy, scipy, pandas, soundfile (default: python3)
  More (retries, disk check, checksums): see local/download_lib.sh.
EOF
}

tdanet_parse_options "$@"
[ -n "$root" ] || tdanet_die "--root is required (see --help)"
[ -n "$wsj0" ] || tdanet_die "--wsj0 is required: WHAM! is built from WSJ0 (LDC93S6A)," \
  "which the LDC licenses and which cannot be downloaded by this script. Point --wsj0 at" \
  "your copy (see --help)."
[ -d "$wsj0" ] || tdanet_die "--wsj0 $wsj0 is not a folder"
case $sample_rate in 8000 | 16000) ;; *) tdanet_die "--sample_rate must be 8000 or 16000" ;; esac
case $mode in min | max) ;; *) tdanet_die "--mode must be min or max" ;; esac
root=$(tdanet_abs_dir "$root")
wsj0=$(cd "$wsj0" && pwd)
k=$((sample_rate / 1000))

tdanet_accept_license "WSJ0" "WHAM! mixes speech from CSR-I (WSJ0) Complete (LDC93S6A), which the
Linguistic Data Consortium licenses under its User Agreement (for non-members: non-commercial
research only; https://catalog.ldc.upenn.edu/license/ldc-non-members-agreement.pdf).
By going on you confirm that you hold a WSJ0 licence that covers this use."
tdanet_license_notice "WHAM! noise" "The WHAM! noise is licensed under CC BY-NC 4.0
(http://wham.whisper.ai/): non-commercial use, with attribution (Wichern et al. 2019)."

out_dir=$root/wav${k}k/$mode
done_name=wham_wav${k}k_$mode
if tdanet_is_done "$out_dir" "$done_name"; then
  tdanet_log "WHAM! is ready in $out_dir (delete $out_dir/.tdanet_done_$done_name to redo)"
  exit 0
fi

tdanet_has_modules numpy scipy pandas soundfile ||
  tdanet_die "${PYTHON:-python3} lacks numpy, scipy, pandas or soundfile (the WHAM! scripts" \
    "need them): run inside the project's environment (make venv) or set PYTHON"
command -v unzip >/dev/null 2>&1 || tdanet_die "unzip not found: install it (wham_noise.zip)"

# Space still needed, in GB (estimates: not measured here): noise archive 17.6, extracted noise
# 35, WSJ0 as wav 5 (only if converted from SPHERE), mixtures (all six folders in 32-bit float:
# about 36 at 8 kHz 'min', twice at 16 kHz, 'max' x1.3). The archive is deleted once extracted,
# before the mixing, so the peak is the extracted noise + WSJ0 wav + mixtures (76 at 8 kHz
# 'min'; while extracting, archive + noise = 52.6 is less), plus the archive if kept.
# Default from scratch: "about 76 GB" in the READMEs (tests/local/test_download.py checks it).
need=$(awk -v k="$k" -v m="$mode" 'BEGIN {printf "%.0f", 36 * k / 8 * (m == "max" ? 1.3 : 1)}')
if ! tdanet_is_done "$root" extract_wham_noise; then
  need=$((need + 35))
  [ "$keep_archives" != true ] || need=$((need + 18))
fi
[ -d "$root/wsj0_wav" ] || need=$((need + 5))
tdanet_check_disk "$root" "$need" "WHAM! (wav${k}k/$mode)"

# 1. The WHAM! scripts and noise.
tdanet_fetch_and_extract "$scripts_url" "$root/downloads/wham_scripts.tar.gz" \
  "$root/wham_scripts_src" wham_scripts "" "$scripts_fallback_url"
script=$(find "$root/wham_scripts_src" -name create_wham_from_scratch.py -print -quit)
[ -n "$script" ] || tdanet_die "wham_scripts.tar.gz has no create_wham_from_scratch.py"
scripts_dir=$(dirname "$script")
tdanet_fetch_and_extract "$noise_url" "$root/downloads/wham_noise.zip" "$root" wham_noise "" \
  "$noise_fallback_url"
noise_dir=$(find "$root" -maxdepth 3 -type f -path '*/metadata/scaling_tr.npz' \
  -not -path "$root/wham_scripts_src/*" -print -quit)
[ -n "$noise_dir" ] || tdanet_die "no metadata/scaling_tr.npz in the extracted WHAM! noise"
noise_dir=$(dirname "$(dirname "$noise_dir")")

# 2. WSJ0 as wav, with every file the scripts ask for.
needed=$(mktemp)
trap 'rm -f "$needed" "$needed.count" "$needed.plan"' EXIT
for split in tr cv tt; do
  csv=$scripts_dir/data/mix_2_spk_filenames_$split.csv
  [ -f "$csv" ] || tdanet_die "the WHAM! scripts lack $csv"
  tail -n +2 "$csv" | cut -d, -f2,3 | tr ',' '\n'
done | tr -d '\r' | sort -u >"$needed"

count_missing() { # DIR: how many needed files are absent under DIR; sets first_missing
  local dir=$1 path n=0
  first_missing=""
  while IFS= read -r path; do
    if [ ! -f "$dir/$path" ]; then
      n=$((n + 1))
      [ -n "$first_missing" ] || first_missing=$dir/$path
    fi
  done <"$needed"
  echo "$n" >"$needed.count"
}

wsj0_root=""
for candidate in "$wsj0" "$(dirname "$wsj0")" "$root/wsj0_wav"; do
  [ -d "$candidate/wsj0" ] || continue
  count_missing "$candidate"
  if [ "$(cat "$needed.count")" -eq 0 ]; then
    wsj0_root=$candidate
    break
  fi
done

if [ -z "$wsj0_root" ]; then
  if [ -z "$(find "$wsj0" -iname '*.wv1' -print -quit)" ]; then
    count_missing "$wsj0"
    tdanet_die "$(cat "$needed.count") of $(wc -l <"$needed") WSJ0 files the WHAM! scripts" \
      "need are missing under $wsj0 (the first: $first_missing), and no .wv1 files to" \
      "convert were found. --wsj0 must hold wsj0/si_tr_s, wsj0/si_dt_05 and wsj0/si_et_05."
  fi
  command -v "$sph2pipe" >/dev/null 2>&1 || tdanet_die "$wsj0 holds SPHERE (.wv1) files that" \
    "must become .wav, and sph2pipe was not found (see --help to build it; set SPH2PIPE)."
  tdanet_log "Converting the WSJ0 files WHAM! needs from .wv1 to $root/wsj0_wav (sph2pipe)"
  # Pair each needed wav with its .wv1 by subset/speaker/utterance, in lower case: the LDC
  # discs nest them under different parents (11-1.1/wsj0/si_tr_s/...), sometimes upper case.
  plan=$needed.plan
  find "$wsj0" -iname '*.wv1' |
    awk -F/ '{k = tolower($(NF-2) "/" $(NF-1) "/" $NF); sub(/\.wv1$/, "", k); print k "\t" $0}' |
    awk -F'\t' 'NR == FNR {src[$1] = $2; next}
      {k = $0; sub(/^wsj0\//, "", k); sub(/\.wav$/, "", k)
       if (!(k in src)) {print "no WSJ0 file " k ".wv1 (needed as " $0 ")" > "/dev/stderr"; exit 1}
       print src[k] "\t" $0}' - "$needed" >"$plan" ||
    tdanet_die "a WSJ0 file the WHAM! scripts need is missing under $wsj0 (see above)"
  converted=0
  while IFS=$'\t' read -r src path; do
    target=$root/wsj0_wav/$path
    [ -f "$target" ] && continue
    mkdir -p "$(dirname "$target")"
    "$sph2pipe" -f wav "$src" >"$target.partial" && mv "$target.partial" "$target" ||
      tdanet_die "sph2pipe failed on $src"
    converted=$((converted + 1))
  done <"$plan"
  tdanet_log "Converted $converted WSJ0 files"
  wsj0_root=$root/wsj0_wav
fi
tdanet_log "WSJ0 (wav) for WHAM!: $wsj0_root/wsj0"

# 3. Mixing, limited to one sample rate and mode: the scripts loop over ['16k', '8k'] and
# ['max', 'min']; a patched copy loops over ours (checked, so a changed script is noticed).
patched=$scripts_dir/create_wham_${k}k_$mode.py
sed -e "s/for sr_dir in \['16k', '8k'\]:/for sr_dir in ['${k}k']:/" \
  -e "s/for datalen_dir in \['max', 'min'\]:/for datalen_dir in ['$mode']:/" \
  "$script" >"$patched"
if ! grep -q "for sr_dir in \['${k}k'\]:" "$patched" ||
  ! grep -q "for datalen_dir in \['$mode'\]:" "$patched"; then
  tdanet_die "create_wham_from_scratch.py no longer has the loops this script restricts" \
    "(for sr_dir in ['16k', '8k'] / for datalen_dir in ['max', 'min']). Run it yourself:" \
    "cd $scripts_dir && ${PYTHON:-python3} create_wham_from_scratch.py --wsj0-root" \
    "$wsj0_root --wham-noise-root $noise_dir --output-dir $root"
fi
tdanet_log "Mixing WHAM! wav${k}k/$mode (an interrupted run starts this step again)"
(cd "$scripts_dir" && tdanet_python "$(basename "$patched")" --wsj0-root "$wsj0_root" \
  --wham-noise-root "$noise_dir" --output-dir "$root") ||
  tdanet_die "the WHAM! scripts failed (see above); re-run to start the mixing again"
for split in tr cv tt; do
  [ -d "$out_dir/$split/mix_clean" ] || tdanet_die "the WHAM! scripts wrote no $out_dir/$split"
done
tdanet_mark_done "$out_dir" "$done_name"
tdanet_log "WHAM! ready in $out_dir"
tdanet_log "Next: python local/prepare.py --dataset wham --root $root --out DATA_DIR"
