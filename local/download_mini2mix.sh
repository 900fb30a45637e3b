#!/usr/bin/env bash
# Stage 0 of the mini2mix recipe: build the offline two-speaker set in the Libri2Mix layout.
#
# Nothing is downloaded: the speech sources are committed in egs/mini2mix/sources/ and mixed
# here (LibriMix's loudness and clipping rules, 8 kHz, "min" mode) into
#     ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1,s2}/*.wav
#     ROOT/Libri2Mix/wav8k/min/metadata/mixture_{train-100,dev,test}_mix_clean.csv
# A complete build is kept as is, so running this again costs nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root=""
sources="${here}/../egs/mini2mix/sources"
extra=()

usage() {
  cat <<EOF
Usage: $0 --root ROOT [--sources DIR] [--n-train N] [--n-dev N] [--n-test N] [--seed S]
          [--sample-rate HZ] [--force]

Build Mini2Mix (Libri2Mix layout) under ROOT/Libri2Mix from the embedded speech sources.
  --root ROOT       output root (required)
  --sources DIR     sources folder (default: egs/mini2mix/sources of this repository)
  --n-train/--n-dev/--n-test N, --seed S, --sample-rate HZ (or --sample_rate HZ)
                    set sizes, pairing seed, output rate (defaults: the builder's)
  --force           rebuild an existing build
Runs: python -m asteroid_tdanet.data.mini2mix (python from PATH, or \$PYTHON).
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --root) root="${2:?--root needs a value}"; shift 2 ;;
    --sources) sources="${2:?--sources needs a value}"; shift 2 ;;
    --n-train|--n-dev|--n-test|--seed|--sample-rate)
      extra+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --sample_rate)  # the stage driver's spelling
      extra+=(--sample-rate "${2:?$1 needs a value}"); shift 2 ;;
    --force) extra+=(--force); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -z "$root" ]]; then
  echo "error: --root is required" >&2
  usage >&2
  exit 2
fi
if [[ ! -d "$sources" ]]; then
  echo "error: sources folder $sources not found (it ships with the repository)" >&2
  exit 1
fi

python="${PYTHON:-$(command -v python || command -v python3 || echo python)}"
# ${extra[@]+...}: an empty array under set -u on older bash.
exec "$python" -m asteroid_tdanet.data.mini2mix \
  --sources "$sources" --out "$root" ${extra[@]+"${extra[@]}"}
