"""Evaluate a trained TDANet on the Libri2Mix test set the way Asteroid's LibriMix recipes do.

Writes ``EXP_DIR/OUT_DIR/{all_metrics.csv,final_metrics.json,examples/}`` and Asteroid's
publishable model in ``EXP_DIR/publish_dir/`` (``model.pth``: ``asteroid-upload`` shares it).
"""

import argparse
import json
import os
import random

import pandas as pd
import soundfile as sf
import torch
import yaml
from asteroid.data import LibriMix
from asteroid.dsp.normalization import normalize_estimates
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
from asteroid.metrics import get_metrics
from asteroid.models import save_publishable
from asteroid.utils import tensors_to_device
from tqdm import tqdm

from asteroid_tdanet import TDANet

parser = argparse.ArgumentParser()
parser.add_argument("--test_dir", required=True, help="folder with the test set's LibriMix CSV")
parser.add_argument("--task", required=True, help="sep_clean (the CSVs of stage 0 are clean)")
parser.add_argument("--out_dir", required=True, help="results folder inside EXP_DIR")
parser.add_argument("--use_gpu", type=int, default=0, help="1: run the model on the GPU")
parser.add_argument("--exp_dir", default="exp/tmp", help="experiment folder (train.py's)")
parser.add_argument("--n_save_ex", type=int, default=10, help="examples to save, -1: all")

COMPUTE_METRICS = ["si_sdr", "sdr", "sir", "sar", "stoi"]


def main(conf):
    model_path = os.path.join(conf["exp_dir"], "best_model.pth")
    model = TDANet.from_pretrained(model_path).eval()
    if conf["use_gpu"]:
        model.cuda()
    model_device = next(model.parameters()).device
    test_set = LibriMix(
        csv_dir=conf["test_dir"],
        task=conf["task"],
        sample_rate=conf["sample_rate"],
        n_src=conf["train_conf"]["data"]["n_src"],
        segment=None,  # whole utterances
        return_id=True,
    )
    # Only reorders the estimates like the references (the metrics are permutation-free then).
    loss_func = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")

    eval_save_dir = os.path.join(conf["exp_dir"], conf["out_dir"])
    ex_save_dir = os.path.join(eval_save_dir, "examples")
    n_save = len(test_set) if conf["n_save_ex"] == -1 else min(conf["n_save_ex"], len(test_set))
    save_idx = set(random.sample(range(len(test_set)), n_save))
    series_list = []
    with torch.no_grad():
        for idx in tqdm(range(len(test_set))):
            mix, sources, ids = test_set[idx]
            mix, sources = tensors_to_device([mix, sources], device=model_device)
            est_sources = model(mix.unsqueeze(0))
            _, reordered = loss_func(est_sources, sources[None], return_est=True)
            mix_np = mix.cpu().numpy()
            sources_np = sources.cpu().numpy()
            est_sources_np = reordered.squeeze(0).cpu().numpy()
            utt_metrics = get_metrics(
                mix_np,
                sources_np,
                est_sources_np,
                sample_rate=conf["sample_rate"],
                metrics_list=COMPUTE_METRICS,
            )
            utt_metrics["mix_path"] = test_set.mixture_path
            series_list.append(pd.Series(utt_metrics))
            if idx in save_idx:
                local_save_dir = os.path.join(ex_save_dir, f"ex_{idx}")
                os.makedirs(local_save_dir, exist_ok=True)
                sf.write(os.path.join(local_save_dir, "mixture.wav"), mix_np, conf["sample_rate"])
                for src_idx, src in enumerate(sources_np):
                    path = os.path.join(local_save_dir, f"s{src_idx}.wav")
                    sf.write(path, src, conf["sample_rate"])
                for src_idx, est in enumerate(normalize_estimates(est_sources_np, mix_np)):
                    path = os.path.join(local_save_dir, f"s{src_idx}_estimate.wav")
                    sf.write(path, est, conf["sample_rate"])
                with open(os.path.join(local_save_dir, "metrics.json"), "w") as f:
                    json.dump(utt_metrics, f, indent=0)

    all_metrics_df = pd.DataFrame(series_list)
    all_metrics_df.to_csv(os.path.join(eval_save_dir, "all_metrics.csv"))
    final_results = {}
    for metric_name in COMPUTE_METRICS:
        improvement = all_metrics_df[metric_name] - all_metrics_df["input_" + metric_name]
        final_results[metric_name] = float(all_metrics_df[metric_name].mean())
        final_results[metric_name + "_imp"] = float(improvement.mean())
    print("Overall metrics :")
    print(json.dumps(final_results, indent=1))
    with open(os.path.join(eval_save_dir, "final_metrics.json"), "w") as f:
        json.dump(final_results, f, indent=0)

    # Asteroid's publishable model; run.sh wrote publish_dir/recipe_name.txt after training.
    model_dict = torch.load(model_path, map_location="cpu", weights_only=True)
    os.makedirs(os.path.join(conf["exp_dir"], "publish_dir"), exist_ok=True)
    save_publishable(
        os.path.join(conf["exp_dir"], "publish_dir"),
        model_dict,
        metrics=final_results,
        train_conf=conf["train_conf"],
    )


if __name__ == "__main__":
    args = parser.parse_args()
    arg_dic = dict(vars(args))
    with open(os.path.join(args.exp_dir, "conf.yml")) as f:
        train_conf = yaml.safe_load(f)
    arg_dic["sample_rate"] = train_conf["data"]["sample_rate"]
    arg_dic["train_conf"] = train_conf
    if args.task != train_conf["data"]["task"]:
        print("Warning: the test task differs from the training task; be sure this is wanted.")
    main(arg_dic)
