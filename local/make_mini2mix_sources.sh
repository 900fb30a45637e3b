#!/usr/bin/env bash
# Regenerate the committed speech sources of the mini2mix demo (egs/mini2mix/sources/).
#
# Maintainers only: the demo itself never runs this, it uses the committed FLAC files.
# Needs the Debian packages flite, espeak-ng and sox (generation time only):
#     apt-get update && apt-get install -y flite espeak-ng sox
# and a Python with numpy, soundfile and tqdm (the project's .venv has them).
# With the same tool versions (see sources/tools.txt) the output is bit-identical.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
sources="$(cd "${here}/.." && pwd)/egs/mini2mix/sources"
out=""
python="${PYTHON:-}"

usage() {
  cat <<EOF
Usage: $0 [--out DIR] [--python PY]

Synthesise the mini2mix sources from ${sources}/speakers.tsv and sentences.txt.
  --out DIR     where to write (default: the sources folder itself, replacing its audio)
  --python PY   Python interpreter (default: \$PYTHON, else .venv/bin/python, else python3)
Needs: flite espeak-ng sox (apt-get install -y flite espeak-ng sox).
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

missing=()
for tool in flite espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "error: missing ${missing[*]}; install with: apt-get install -y flite espeak-ng sox" >&2
  exit 1
fi

if [[ -z "$python" ]]; then
  if [[ -x "${here}/../.venv/bin/python" ]]; then
    python="${here}/../.venv/bin/python"
  else
    python=python3
  fi
fi
if ! "$python" -c "import numpy, soundfile, tqdm" 2>/dev/null; then
  echo "error: $python lacks numpy, soundfile or tqdm (run 'make venv' first)" >&2
  exit 1
fi

args=(--speakers "${sources}/speakers.tsv" --sentences "${sources}/sentences.txt")
args+=(--out "${out:-$sources}")
exec "$python" "${here}/make_mini2mix_sources.py" "${args[@]}"
