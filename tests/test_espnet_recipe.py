"""ESPnet's recipe flow for TDANet on each benchmark: run.sh -> local/data.sh -> enh.sh's stages.

The recipe folders (``egs/<benchmark>/TDANet/espnet/``) are copied into a recipe folder laid out
as ESPnet's ``egs2/TEMPLATE/enh1/setup.sh`` lays one out, as the docs tell users to. ESPnet's
shell scripts (``enh.sh``, Kaldi's ``utils/``) are not in any package a registry serves (the
espnet wheel and source distribution hold only the Python packages), so what they would run is
run here through ESPnet's Python side, as ``enh.sh`` calls it:

- run.sh is run with a stand-in ``./enh.sh`` that records its options (the set names, sample
  rate, conf and ``--local_data_opts`` it hands to ESPnet);
- local/data.sh is run as enh.sh's stage 1 runs it, with those ``--local_data_opts``; our
  ``local/parse_options.sh`` stands in for Kaldi's ``utils/parse_options.sh`` (same rules);
- the folders it writes are checked against Kaldi's ``validate_data_dir.sh`` rules and read with
  ESPnet's own readers;
- stage 5 (``espnet2.bin.enh_train --collect_stats true``, then
  ``espnet2.bin.aggregate_stats_dirs``) and stage 6 (``espnet2.bin.enh_train``, one epoch on the
  CPU, model sizes shrunk) run ESPnet's real entry points with the recipe's conf.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree

pytestmark = pytest.mark.espnet

BIN = Path(sys.executable).parent
TREES = {
    "librimix": (make_librimix_tree, "LIBRIMIX", {}),
    "wham": (make_wham_tree, "WHAM", {}),  # always with noise/ and mix_both/
    "lrs2_2mix": (make_lrs2_tree, "LRS2_2MIX", {}),
}
# The folder names of ESPnet's own recipes (egs2/librimix/enh1/run.sh, egs2/wham/enh1/run.sh).
EXPECTED_SETS = {
    "librimix": ("train", "dev", "test"),
    "wham": ("tr_mix_both_min_8k", "cv_mix_both_min_8k", "tt_mix_both_min_8k"),
    "lrs2_2mix": ("train", "dev", "test"),
}
RECORD_ENH = """#!/usr/bin/env bash
# Stand-in for ESPnet's enh.sh: records the options run.sh gives it, one per line.
printf '%s\\n' "$@" > enh_args.txt
"""


def recipe_dir(tmp_path: Path, benchmark: str) -> Path:
    """A recipe folder as ESPnet's setup.sh makes one, with our files copied in (docs)."""
    recipe = tmp_path / "egs2" / benchmark / "enh1_tdanet"
    shutil.copytree(REPO / "egs" / benchmark / "TDANet" / "espnet", recipe)
    (recipe / "utils").mkdir()
    shutil.copy2(REPO / "local" / "parse_options.sh", recipe / "utils" / "parse_options.sh")
    (recipe / "enh.sh").write_text(RECORD_ENH)
    (recipe / "enh.sh").chmod(0o755)
    return recipe


def env_for(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", *extra)}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # ESPnet's path.sh activates its venv
    return {**env, **extra}


def enh_options(recipe: Path, env: dict[str, str]) -> dict[str, str]:
    run = subprocess.run(
        ["bash", "run.sh"], cwd=recipe, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    args = (recipe / "enh_args.txt").read_text().splitlines()
    assert all(a.startswith("--") for a in args[::2]), args
    return dict(zip(args[::2], args[1::2], strict=True))


def read_kaldi_table(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text(encoding="utf-8").splitlines()]


def check_kaldi_dir(folder: Path, n_src: int, noisy: bool) -> list[str]:
    """Kaldi's validate_data_dir.sh rules for a data folder without text or features."""
    from espnet2.fileio.read_text import read_2columns_text

    names = ["wav.scp", "utt2spk", "spk2utt"] + [f"spk{k + 1}.scp" for k in range(n_src)]
    names += ["noise1.scp"] if noisy else []
    assert sorted(p.name for p in folder.iterdir()) == sorted(names), folder
    utt2spk = read_kaldi_table(folder / "utt2spk")
    ids = [u for u, _ in utt2spk]
    # Sorted in the C locale, and sorting on the speaker first gives the same order (speaker ids
    # are prefixes of utterance ids, or the utterance ids themselves).
    assert ids == sorted(ids, key=str.encode)
    assert utt2spk == sorted(utt2spk, key=lambda r: (r[1].encode(), r[0].encode()))
    # spk2utt is utt2spk inverted (utils/utt2spk_to_spk2utt.pl), speakers sorted.
    spk2utt = read_kaldi_table(folder / "spk2utt")
    assert [r[0] for r in spk2utt] == sorted({s for _, s in utt2spk}, key=str.encode)
    assert sorted((u, r[0]) for r in spk2utt for u in r[1:]) == sorted(map(tuple, utt2spk))
    for name in names:
        if name.endswith(".scp"):
            table = read_2columns_text(folder / name)  # ESPnet's reader: unique keys
            assert list(table) == ids, name
            assert all(Path(p).is_file() for p in table.values()), name
    return ids


def data_triplets(folder: Path, n_src: int, noisy: bool) -> list[str]:
    """enh.sh's --*_data_path_and_name_and_type values for one set (stage 5 and 6)."""
    triplets = [f"{folder}/wav.scp,speech_mix,sound"]
    triplets += [f"{folder}/spk{k}.scp,speech_ref{k},sound" for k in range(1, n_src + 1)]
    if noisy:
        triplets.append(f"{folder}/noise1.scp,noise_ref1,sound")
    return triplets


def shape_args(stats: Path, noisy: bool) -> list[str]:
    """enh.sh stage 6's --*_shape_file and --fold_length options."""
    names = ["speech_mix", "speech_ref1", "speech_ref2"] + (["noise_ref1"] if noisy else [])
    args = []
    for name in names:
        args += ["--train_shape_file", str(stats / "train" / f"{name}_shape")]
        args += ["--valid_shape_file", str(stats / "valid" / f"{name}_shape")]
        args += ["--fold_length", "8000"]  # enh.sh: enh_speech_fold_length (80) x 100
    return args


def espnet_main(module: str, argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    run = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"{module} {shlex.join(argv)}\n{run.stderr[-4000:]}"
    return run.stderr  # ESPnet logs there (enh.sh's launcher writes it to train.log)


def run_stage_1(tmp_path: Path, benchmark: str):
    """run.sh, then local/data.sh as enh.sh runs it; checks the folders. Returns what stage 5
    needs: the recipe folder, environment, enh.sh options, conf and data folders."""
    builder, variable, kwargs = TREES[benchmark]
    root = builder(tmp_path / "raw", n_per_split=2, seconds=0.5, **kwargs)
    recipe = recipe_dir(tmp_path, benchmark)
    env = env_for({variable: str(root)})

    # run.sh -> enh.sh: the options ESPnet gets.
    options = enh_options(recipe, env)
    train_set, valid_set, test_set = EXPECTED_SETS[benchmark]
    assert (options["--train_set"], options["--valid_set"]) == (train_set, valid_set)
    assert options["--test_sets"] == test_set
    conf_path = recipe / options["--enh_config"]
    conf = yaml.safe_load(conf_path.read_text())
    sample_rate = conf["separator_conf"]["sample_rate"]
    assert options["--fs"] == f"{sample_rate // 1000}k"

    # Stage 1: enh.sh runs `local/data.sh ${local_data_opts}`.
    stage1 = subprocess.run(
        ["bash", "local/data.sh", *shlex.split(options["--local_data_opts"])],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stage1.returncode == 0, stage1.stderr
    sets = {name: recipe / "data" / name for name in (train_set, valid_set, test_set)}
    noise_written = benchmark == "wham"  # the noisy task writes noise1.scp (--use_noise_ref)
    ids = {name: check_kaldi_dir(folder, 2, noise_written) for name, folder in sets.items()}
    if benchmark == "wham":  # ESPnet's WHAM! ids: <spk1>_<spk2>_<file name>, speaker <spk1>_<spk2>
        first = ids[train_set][0]
        fields = first.split("_")
        assert first == f"{fields[2][:3]}_{fields[4][:3]}_{'_'.join(fields[2:])}"
        assert read_kaldi_table(sets[train_set] / "utt2spk")[0] == [first, "_".join(fields[:2])]
    else:
        assert all(u == s for u, s in read_kaldi_table(sets[train_set] / "utt2spk"))
    return recipe, env, options, conf, sets, ids


@pytest.mark.parametrize("benchmark", sorted(TREES))
def test_run_sh_and_stage_1_write_espnets_data_folders(tmp_path, benchmark):
    run_stage_1(tmp_path, benchmark)


@pytest.mark.slow
def test_espnet_collects_stats_and_trains_tdanet_from_the_recipe(tmp_path):
    """Stages 5 and 6 on WHAM! (noisy mixtures, ESPnet's WHAM! names), on the CPU."""
    recipe, env, options, conf, sets, ids = run_stage_1(tmp_path, "wham")
    train_set, valid_set = options["--train_set"], options["--valid_set"]
    sample_rate = conf["separator_conf"]["sample_rate"]
    noisy = options["--use_noise_ref"] == "true"

    # Stage 5: statistics, as enh.sh collects them (one job), then aggregated.
    tiny = {**conf, "separator_conf": {**conf["separator_conf"], **TINY}}
    tiny_path = tmp_path / "tiny.yaml"  # sizes shrunk only: the rest is the recipe's conf
    tiny_path.write_text(yaml.safe_dump(tiny))
    data_args = []
    for kind, name in (("train", train_set), ("valid", valid_set)):
        for triplet in data_triplets(sets[name], 2, noisy):
            data_args += [f"--{kind}_data_path_and_name_and_type", triplet]
    stats_job = tmp_path / "stats" / "logdir" / "stats.1"
    espnet_main(
        "espnet2.bin.enh_train",
        ["--collect_stats", "true", "--ngpu", "0"]
        + ["--config", str(tiny_path), "--output_dir", str(stats_job)]
        + ["--train_shape_file", str(sets[train_set] / "wav.scp")]
        + ["--valid_shape_file", str(sets[valid_set] / "wav.scp")]
        + data_args,
        recipe,
        env,
    )
    stats = tmp_path / "stats"
    espnet_main(
        "espnet2.bin.aggregate_stats_dirs",
        ["--input_dir", str(stats_job), "--output_dir", str(stats)],
        recipe,
        env,
    )
    shapes = read_kaldi_table(stats / "train" / "speech_mix_shape")
    assert [u for u, _ in shapes] == ids[train_set]

    # Stage 6: training, one epoch on the CPU. The fake mixtures last 0.5 s: the chunk is shrunk
    # below that (ESPnet's chunk iterator drops shorter utterances).
    exp = tmp_path / "exp"
    log = espnet_main(
        "espnet2.bin.enh_train",
        ["--ngpu", "0", "--config", str(tiny_path), "--resume", "true"]
        + ["--output_dir", str(exp), "--max_epoch", "1", "--num_workers", "0"]
        + ["--chunk_length", str(sample_rate // 4), "--batch_size", "2"]
        + shape_args(stats, noisy)
        + data_args,
        recipe,
        env,
    )
    assert (exp / "1epoch.pth").is_file() and (exp / "valid.si_snr_loss.best.pth").exists()
    assert "snr_loss=" in log and "si_snr_loss=" in log
    assert "TDANet" in (exp / "config.yaml").read_text()
