#!/usr/bin/env bash
# TDANet on Libri2Mix (train-100, min, 8 kHz, clean) in the shape of Asteroid's LibriMix recipes:
#   stage 0  index an existing LibriMix tree (asteroid-tdanet's prepare step) -> data/
#   stage 1  train.py (Asteroid's System, PIT negative SNR)                  -> exp/train_tdanet_<tag>/
#   stage 2  eval.py (metrics, examples, Asteroid's publish_dir)
# Run it from this folder, as Asteroid's recipes:
#   ./run.sh --storage_dir /data/LibriMix --tag paper --id 0,1,2,3
# Every variable below is an option (--name value). Then share the model on Asteroid's Zenodo
# community: asteroid-upload exp/train_tdanet_<tag>/publish_dir --uploader "Your Name".

# Exit on error
set -e
set -o pipefail

# LibriMix download root (holding Libri2Mix/wav8k/min/...): see ../../../../local/download_librimix.sh
storage_dir=
# The python with Asteroid and asteroid-tdanet installed.
python_path=python

# General
stage=0  # Controls from which stage to start
tag=""   # Controls the directory name associated to the experiment
# You can ask for several GPUs using id (passed to CUDA_VISIBLE_DEVICES)
id=${CUDA_VISIBLE_DEVICES:-}
out_dir=librimix  # Evaluation results folder inside the experiment folder

# Network config (defaults: local/conf.yml, the paper's)
enc_kernel_ms=4.0
bn_chan=128
hid_chan=512
n_blocks=16
upsampling_depth=5
n_heads=8
# Training config
epochs=500
batch_size=1
num_workers=4
half_lr=yes
early_stop=yes
# Optim config
optimizer=adam
lr=0.001
weight_decay=0.
# Data config
sample_rate=8000
mode=min
n_src=2
segment=3
task=sep_clean

eval_use_gpu=1
n_save_ex=10

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
. "$repo/local/parse_options.sh"

train_dir=data/train
valid_dir=data/valid
test_dir=data/test

if [[ $stage -le 0 ]]; then
  echo "Stage 0: Indexing the LibriMix tree under ${storage_dir}"
  if [[ -z $storage_dir ]]; then
    echo "Set --storage_dir to the LibriMix download root" >&2
    exit 1
  fi
  $python_path "$repo/local/prepare.py" --dataset librimix --root "$storage_dir" --out data \
    --sample_rate "$sample_rate" --mode "$mode" --task "$task" --n_src "$n_src"
fi

# A random id for the run if no tag is given
uuid=$($python_path -c 'import uuid; print(str(uuid.uuid4())[:8])')
if [[ -z ${tag} ]]; then
  tag=${uuid}
fi
expdir=exp/train_tdanet_${tag}
mkdir -p "$expdir" && echo "$uuid" >> "$expdir/run_uuid.txt"
echo "Results from the following experiment will be stored in $expdir"

if [[ $stage -le 1 ]]; then
  echo "Stage 1: Training"
  mkdir -p logs
  CUDA_VISIBLE_DEVICES=$id $python_path train.py --exp_dir "$expdir" \
    --enc_kernel_ms "$enc_kernel_ms" \
    --bn_chan "$bn_chan" \
    --hid_chan "$hid_chan" \
    --n_blocks "$n_blocks" \
    --upsampling_depth "$upsampling_depth" \
    --n_heads "$n_heads" \
    --epochs "$epochs" \
    --batch_size "$batch_size" \
    --num_workers "$num_workers" \
    --half_lr "$half_lr" \
    --early_stop "$early_stop" \
    --optimizer "$optimizer" \
    --lr "$lr" \
    --weight_decay "$weight_decay" \
    --train_dir "$train_dir" \
    --valid_dir "$valid_dir" \
    --sample_rate "$sample_rate" \
    --n_src "$n_src" \
    --task "$task" \
    --segment "$segment" | tee "logs/train_${tag}.log"
  cp "logs/train_${tag}.log" "$expdir/train.log"

  # Get ready to publish
  mkdir -p "$expdir/publish_dir"
  echo "librimix/TDANet" > "$expdir/publish_dir/recipe_name.txt"
fi

if [[ $stage -le 2 ]]; then
  echo "Stage 2 : Evaluation"
  use_gpu=$eval_use_gpu
  if ! $python_path -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    use_gpu=0
  fi
  $python_path eval.py \
    --exp_dir "$expdir" \
    --test_dir "$test_dir" \
    --out_dir "$out_dir" \
    --use_gpu "$use_gpu" \
    --n_save_ex "$n_save_ex" \
    --task "$task" | tee "logs/eval_${tag}.log"
  cp "logs/eval_${tag}.log" "$expdir/eval.log"
fi
