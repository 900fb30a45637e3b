#!/usr/bin/env bash
# Stage 0 for Libri2Mix (sep_clean): LibriSpeech train-clean-100/dev-clean/test-clean from
# OpenSLR, LibriMix's metadata, then the mixtures, giving
# ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1,s2} and the metadata CSVs.
# Re-running resumes downloads and generation and skips finished parts. See --help.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=local/download_lib.sh
. "$here/download_lib.sh"

root=""
task=sep_clean
sample_rate=8000
mode=min
nj=4
accept_license=false
keep_archives=false
TDANET_OPTIONS="root task sample_rate mode nj accept_license keep_archives"

openslr_url=${TDANET_OPENSLR_URL:-https://www.openslr.org/resources/12}
# LibriMix's repository at a fixed commit (master on 2024-02-09; the metadata last changed in
# May 2020), so the files below are the ones whose SHA-256 is pinned.
librimix_commit=b898ca375c03e4039cdb3dbe3dd485aad58ec7d1
librimix_url=${TDANET_LIBRIMIX_URL:-https://raw.githubusercontent.com/JorisCos/LibriMix/$librimix_commit}
wham_noise_url=${TDANET_WHAM_NOISE_URL:-https://my-bucket-a8b4b49c25c811ee9a7e8bba05fa24c7.s3.amazonaws.com/wham_noise.zip}

subsets=(train-clean-100 dev-clean test-clean)
# SHA-256 of the OpenSLR archives (as torchaudio's LIBRISPEECH dataset checks them) and their
# sizes in GB, rounded up (extracted FLAC takes about as much). No associative arrays: bash 3.
subset_sha256() {
  case $1 in
    train-clean-100) echo d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2 ;;
    dev-clean) echo 76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3 ;;
    test-clean) echo 39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23 ;;
  esac
}
subset_gb() { case $1 in train-clean-100) echo 6.4 ;; *) echo 0.4 ;; esac }
# SHA-256 of LibriMix's metadata/Libri2Mix/libri2mix_<subset>.csv at $librimix_commit (the
# mixtures' pairs and gains: a different file gives a different data set).
metadata_sha256() {
  case $1 in
    train-clean-100) echo 4de1fdee085ed3f0149c42159d7774be427c8a48eeb2e4d6a92fc632022647d5 ;;
    dev-clean) echo 43ad88e65ee8678be73a79920fba1dcf44fa87271ba95a57205707edc0b85f77 ;;
    test-clean) echo e3d4dc64a03fbbb00ba807a821df2994dbc0c3a9c6fe6a176cfa14949bd8624e ;;
  esac
}

usage() {
  cat <<EOF
Usage: $0 --root ROOT [--sample_rate 8000] [--mode min] [--nj 4] [--keep_archives]

Builds Libri2Mix for clean 2-speaker separation (the TDANet benchmark): downloads LibriSpeech
train-clean-100, dev-clean and test-clean (about 7 GB) from OpenSLR and LibriMix's metadata
(github.com/JorisCos/LibriMix), then mixes them as LibriMix does into
ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1,s2} (disk: about 16 GB free
at 8 kHz 'min', the archives deleted; the script checks the space its options need).
Then: python local/prepare.py --dataset librimix --root ROOT --out DATA_DIR

WHAM! noise is NOT needed and not downloaded: clean mixtures use speech only
(asteroid_tdanet/data/librimix_generate.py explains why LibriMix's own script would still
read the 17 GB of noise). --task sep_noisy is not built here, see below.

Options:
  --root DIR          where to download and generate
  --sample_rate HZ    8000 (default) or 16000
  --mode MODE         min (default: mixtures cut to the shorter utterance) or max
  --nj N              parallel processes for mixing (default 4)
  --keep_archives     keep the .tar.gz archives after extraction
  --task sep_clean    the only task built here

Environment:
  TDANET_OPENSLR_URL      LibriSpeech base URL (default: $openslr_url;
                          mirrors: https://us.openslr.org/resources/12, ...)
  TDANET_LIBRIMIX_URL     LibriMix repository files (default: $librimix_url;
                          their SHA-256 is checked, TDANET_NO_CHECKSUM=1 skips it)
  PYTHON                  python with numpy, scipy, soundfile, tqdm (default: python3)
  More (retries, disk check, checksums): see local/download_lib.sh.
EOF
}

tdanet_parse_options "$@"
[ -n "$root" ] || tdanet_die "--root is required (see --help)"
if [ "$task" != sep_clean ]; then
  tdanet_die "--task $task is not built by this script. Noisy Libri2Mix needs the WHAM! noise" \
    "($wham_noise_url, about 17 GB, CC BY-NC 4.0) and LibriMix's own generate_librimix.sh" \
    "(git clone https://github.com/JorisCos/LibriMix; it also needs sox and pysndfx): run it" \
    "with ROOT as storage_dir, then python local/prepare.py --dataset librimix --task sep_noisy."
fi
case $sample_rate in 8000 | 16000) ;; *) tdanet_die "--sample_rate must be 8000 or 16000" ;; esac
case $mode in min | max) ;; *) tdanet_die "--mode must be min or max" ;; esac
root=$(tdanet_abs_dir "$root")

tdanet_license_notice "LibriSpeech / LibriMix" "LibriSpeech (www.openslr.org/12) is licensed
under CC BY 4.0; LibriMix's metadata and scripts are MIT licensed. Attribute both
(Panayotov et al. 2015; Cosentino et al. 2020) in work built on them."

k=$((sample_rate / 1000))
mix_dir=$root/Libri2Mix/wav${k}k/$mode
done_name=libri2mix_sep_clean
if tdanet_is_done "$mix_dir" "$done_name"; then
  tdanet_log "Libri2Mix is ready in $mix_dir (delete $mix_dir/.tdanet_done_$done_name to redo)"
  exit 0
fi
# The mixing script is run by path: it needs only these packages, not torch.
generator=$here/../asteroid_tdanet/data/librimix_generate.py
tdanet_has_modules numpy scipy soundfile tqdm ||
  tdanet_die "${PYTHON:-python3} lacks numpy, scipy, soundfile or tqdm: run inside the" \
    "project's environment (make venv; source .venv/bin/activate) or set PYTHON"

# Space still needed, in GB. The mixtures (mix_clean, s1, s2 of train-100, dev and test): 8.7
# at 8 kHz 'min', from LibriMix's own measurement (metadata/Libri2Mix/Storage_info.txt: 2.4 x 3
# + 0.255 x 3 + 0.237 x 3); twice at 16 kHz; 'max' is 1.35 times 'min' there. Plus the
# extracted FLAC of every subset not yet extracted (about its archive's size). Archives are
# deleted after extraction, one at a time, so they never add to the peak at the end (the
# biggest is 6.4 GB, while the mixtures come later), unless kept with --keep_archives.
# Default (8 kHz 'min', nothing there yet): 8.7 + 7.2 = 15.9, "about 16 GB" in the READMEs
# (tests/local/test_download.py checks that every place states this figure).
need=$(awk -v k="$k" -v m="$mode" 'BEGIN {printf "%.1f", 8.7 * k / 8 * (m == "max" ? 1.35 : 1)}')
for subset in "${subsets[@]}"; do
  if ! tdanet_is_done "$root" "extract_librispeech_$subset"; then
    copies=1
    [ "$keep_archives" != true ] || copies=2
    need=$(awk -v a="$need" -v s="$(subset_gb "$subset")" -v c=$copies \
      'BEGIN {printf "%.1f", a + c * s}')
  fi
done
tdanet_check_disk "$root" "$need" "Libri2Mix (wav${k}k/$mode, sep_clean)"

# The metadata first (4 MB): a wrong file stops here, before 7 GB of LibriSpeech.
metadata_dir=$root/LibriMix_metadata/Libri2Mix
for subset in "${subsets[@]}"; do
  tdanet_fetch "$librimix_url/metadata/Libri2Mix/libri2mix_$subset.csv" \
    "$metadata_dir/libri2mix_$subset.csv" "$(metadata_sha256 "$subset")"
done

for subset in "${subsets[@]}"; do
  tdanet_fetch_and_extract "$openslr_url/$subset.tar.gz" "$root/downloads/$subset.tar.gz" \
    "$root" "librispeech_$subset" "$(subset_sha256 "$subset")"
  [ -d "$root/LibriSpeech/$subset" ] ||
    tdanet_die "$subset.tar.gz did not contain LibriSpeech/$subset"
done

tdanet_log "Mixing Libri2Mix (wav${k}k/$mode) with $nj processes; re-running resumes"
tdanet_python "$generator" --librispeech_dir "$root/LibriSpeech" \
  --metadata_dir "$metadata_dir" --out_dir "$root/Libri2Mix" --subsets "${subsets[@]}" \
  --sample_rate "$sample_rate" --mode "$mode" --nj "$nj" ||
  tdanet_die "mixing failed (see above); re-run to resume"
tdanet_mark_done "$mix_dir" "$done_name"
tdanet_log "Libri2Mix ready in $mix_dir"
tdanet_log "Next: python local/prepare.py --dataset librimix --root $root --out DATA_DIR"
