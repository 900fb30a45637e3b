#!/usr/bin/env bash
# The stage driver shared by every recipe (ESPnet's egs2 enh.sh idea): a recipe's run.sh sets
# its dataset and defaults, then calls this script with the user's options last.
#
#   stage 0  download   bash local/download_<dataset>.sh --root STORAGE_DIR --sample_rate SR
#                       [--wsj0 DIR]
#   stage 1  prepare    python local/prepare.py --dataset <dataset> --root STORAGE_DIR --out DATA_DIR
#   stage 2  train      python local/train.py     -> exp/<tag>/ (checkpoints, best_model.pth)
#   stage 3  evaluate   python local/evaluate.py  -> exp/<tag>/results/
#   stage 4  publish    python local/publish.py   -> exp/<tag>/publish/
#   stage 5  compare    python local/compare.py   -> exp/compare.{md,csv,png}
set -euo pipefail

local_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$local_dir")

stage=0              # first stage to run
stop_stage=5         # last stage to run
dataset=             # a data set of asteroid_tdanet/data/registry.py: lrs2_2mix | librimix | wham | mini2mix
storage_dir=         # raw dataset root: stage 0 writes it, stage 1 reads it
wsj0=                # WSJ0 root (WHAM! only, stage 0)
download_opts=       # extra options of the download script
prepare_opts=        # extra options of the prepare script, e.g. "--task sep_noisy"
sample_rate=8000     # Hz; must match data.sample_rate of the confs
data_dir=            # metadata written by stage 1 (default: data/<dataset>_<sample_rate>)
conf=conf/tdanet.yml # conf file; several (space-separated) run stages 2-4 for each
tag=                 # experiment name exp/<tag> (default: the conf file name)
exp_root=exp         # where experiments live (stage 5 compares all of them)
gpus=auto            # GPU ids, e.g. 0,1; auto: every visible GPU (CPU if none); "" or cpu: CPU
id=                  # Asteroid's spelling of --gpus: GPU ids, e.g. 0,1
ngpu=                # ESPnet's: use the first N visible GPUs (0: the CPU)
precision=           # 32-true | bf16-mixed | 16-mixed for stages 2 and 3 (default: the conf's
                     # training.precision for training, 32-true for evaluation)
cpu_procs=1          # CPU processes when no GPU (>1: DDP over gloo)
num_nodes=1          # machines; launch run.sh on each with NODE_RANK, MASTER_ADDR, MASTER_PORT
resume=no            # yes: continue exp/<tag> from checkpoints/last.ckpt
overwrite=no         # yes: delete an existing exp/<tag> before training
train_opts=          # conf overrides, e.g. "--training.epochs 1 --optim.lr 5e-4"
eval_opts=           # evaluate.py options, e.g. "--jobs 4 --device cuda"
compare_opts=        # compare.py options, e.g. "--rtf_repeats 0"
hub_user=            # Hugging Face user/organisation named in the model card (stage 4)
uploader=            # who licenses the model in the card's licence notice (default: hub_user)
python=python        # interpreter with asteroid_tdanet installed

usage() {
  cat <<HELP
Usage: ./run.sh [options]     (recipe: $PWD, dataset: ${dataset:-unset})
Stages: 0 download, 1 prepare metadata, 2 train, 3 evaluate, 4 publish, 5 compare.
Options (current value in brackets):
  --stage N           first stage [$stage]
  --stop_stage M      last stage [$stop_stage]
  --storage_dir DIR   raw dataset root [${storage_dir:-none}]
  --wsj0 DIR          WSJ0 root, WHAM! only [${wsj0:-none}]
  --download_opts S   extra options of local/download_<dataset>.sh [$download_opts]
  --prepare_opts S    extra options of local/prepare.py [$prepare_opts]
  --sample_rate SR    sample rate in Hz [$sample_rate]
  --data_dir DIR      prepared metadata [${data_dir:-data/<dataset>_<sample_rate>}]
  --conf FILE(S)      conf file(s) [$conf]
  --tag NAME          experiment name, exp/<tag> [${tag:-conf file name}]
  --exp_root DIR      experiments folder [$exp_root]
  --gpus IDS          GPU ids, e.g. 0,1; auto = all visible GPUs, else CPU; "" or cpu = CPU [${gpus:-CPU}]
  --id IDS            the same as --gpus IDS (Asteroid's recipes' name) [${id:-unset}]
  --ngpu N            the first N visible GPUs; 0 = CPU (ESPnet's recipes' name) [${ngpu:-unset}]
  --precision P       32-true, bf16-mixed or 16-mixed, training and evaluation [${precision:-conf}]
  --cpu_procs N       CPU training processes (DDP over gloo when > 1) [$cpu_procs]
  --num_nodes K       machines for multi-node DDP [$num_nodes]
  --resume yes|no     continue exp/<tag> from its last.ckpt [$resume]
  --overwrite yes|no  delete an existing exp/<tag> first [$overwrite]
  --train_opts S      conf overrides for training, e.g. "--training.epochs 1" [$train_opts]
  --eval_opts S       options of local/evaluate.py [$eval_opts]
  --compare_opts S    options of local/compare.py [$compare_opts]
  --hub_user NAME     Hugging Face user named in the model card [${hub_user:-placeholder}]
  --uploader NAME     licensor named in the card's licence notice [${uploader:-hub user}]
  --python PATH       Python interpreter [$python]
HELP
}

. "$local_dir/parse_options.sh"
if [ $# -gt 0 ]; then
  echo "$0: unexpected argument '$1' (options are --name value; see --help)" >&2
  exit 1
fi
if [ -z "$dataset" ]; then
  echo "$0: --dataset is not set (run.sh sets it)" >&2
  exit 1
fi
export PYTHON="$python"  # the interpreter the download scripts use
data_dir=${data_dir:-data/${dataset}_${sample_rate}}
read -r -a confs <<< "$conf"
if [ -n "$tag" ] && [ ${#confs[@]} -gt 1 ]; then
  echo "$0: --tag names one experiment but ${#confs[@]} confs were given" >&2
  exit 1
fi
recipe=${PWD#"$repo_dir"/}
# --id (Asteroid) and --ngpu (ESPnet) are other spellings of --gpus: one of them at most.
if [ -n "$id" ] && [ -n "$ngpu" ]; then
  echo "$0: --id and --ngpu both choose the GPUs: give one of them" >&2
  exit 1
fi
if { [ -n "$id" ] || [ -n "$ngpu" ]; } && [ "$gpus" != auto ]; then
  echo "$0: --gpus and --${id:+id}${ngpu:+ngpu} both choose the GPUs: give one of them" >&2
  exit 1
fi
if [ -n "$id" ]; then gpus=$id; fi
if [ -n "$ngpu" ]; then
  if ! [[ "$ngpu" =~ ^[0-9]+$ ]]; then
    echo "$0: --ngpu takes a number of GPUs (0: the CPU), got '$ngpu'" >&2
    exit 1
  fi
  gpus=$(seq -s, 0 $((ngpu - 1)))  # the first N visible GPUs; empty (the CPU) for 0
fi
case "$precision" in
  ""|32-true|bf16-mixed|16-mixed) ;;
  *)
    echo "$0: --precision takes 32-true, bf16-mixed or 16-mixed, got '$precision'" >&2
    exit 1
    ;;
esac
precision_opts=()
if [ -n "$precision" ]; then precision_opts=(--precision "$precision"); fi
if [ "$gpus" = cpu ]; then gpus=; fi
# Stage 3 evaluates on the first GPU that stage 2 trains on (auto: the first visible one).
case "$gpus" in
  auto) device=auto ;;
  "") device=cpu ;;
  *) device=cuda:${gpus%%,*} ;;
esac

log() { echo "[$(date +%H:%M:%S)] $*"; }
stage_on() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
tag_of() {
  if [ -n "$tag" ]; then echo "$tag"; return; fi
  local name
  name=$(basename "$1")
  name=${name%.yaml}
  echo "${name%.yml}"
}
# Seconds since the first stage ran, for the time line in the log.
start_time=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start_time )) s"; }

if stage_on 0 || stage_on 1; then
  if [ -z "$storage_dir" ]; then
    echo "$0: --storage_dir is needed by stages 0 and 1" >&2
    exit 1
  fi
fi

if stage_on 0; then
  log "stage 0: download $dataset into $storage_dir"
  extra=()
  if [ -n "$wsj0" ]; then extra=(--wsj0 "$wsj0"); fi
  # --sample_rate: stage 0 builds the wav{8,16}k folder that stage 1 then reads.
  # shellcheck disable=SC2086  # download_opts holds several words on purpose
  bash "$local_dir/download_${dataset}.sh" --root "$storage_dir" --sample_rate "$sample_rate" \
    ${extra[@]+"${extra[@]}"} $download_opts
  log "stage 0 done ($(elapsed))"
fi

if stage_on 1; then
  log "stage 1: prepare metadata of $storage_dir into $data_dir"
  # shellcheck disable=SC2086
  "$python" "$local_dir/prepare.py" --dataset "$dataset" --root "$storage_dir" \
    --out "$data_dir" --sample_rate "$sample_rate" $prepare_opts
  log "stage 1 done ($(elapsed))"
fi

for c in "${confs[@]}"; do
  t=$(tag_of "$c")
  if stage_on 2; then
    conf_rate=$("$python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["sample_rate"])' "$c")
    if [ "$conf_rate" != "$sample_rate" ]; then
      echo "$0: $c has data.sample_rate $conf_rate but the data are at $sample_rate Hz" >&2
      exit 1
    fi
    log "stage 2: train $c -> $exp_root/$t"
    # shellcheck disable=SC2086
    "$python" "$local_dir/train.py" --conf "$c" --data_dir "$data_dir" --exp_dir "$exp_root/$t" \
      --gpus "$gpus" --cpu_procs "$cpu_procs" --num_nodes "$num_nodes" --resume "$resume" \
      --overwrite "$overwrite" ${precision_opts[@]+"${precision_opts[@]}"} $train_opts
    log "stage 2 done ($(elapsed)); curve: $exp_root/$t/training_curve.png"
  fi
  if stage_on 3; then
    log "stage 3: evaluate $exp_root/$t on the test set"
    # shellcheck disable=SC2086
    "$python" "$local_dir/evaluate.py" --exp_dir "$exp_root/$t" --data_dir "$data_dir" \
      --device "$device" ${precision_opts[@]+"${precision_opts[@]}"} $eval_opts
    log "stage 3 done ($(elapsed)); report: $exp_root/$t/report/index.html"
  fi
  if stage_on 4; then
    log "stage 4: publish $exp_root/$t"
    "$python" "$local_dir/publish.py" --exp_dir "$exp_root/$t" --dataset "$dataset" \
      --recipe "$recipe" --hub_user "$hub_user" --uploader "$uploader"
    log "stage 4 done ($(elapsed))"
  fi
done

if stage_on 5; then
  log "stage 5: compare the experiments in $exp_root"
  # shellcheck disable=SC2086
  "$python" "$local_dir/compare.py" --exp_root "$exp_root" --title "$dataset" \
    --benchmark "$dataset" $compare_opts
  log "stage 5 done ($(elapsed))"
fi
