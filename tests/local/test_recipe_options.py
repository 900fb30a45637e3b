"""local/parse_options.sh and the option handling of local/recipe.sh (bash only, fast)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from recipe_helpers import RECIPES, REPO

PARSE = REPO / "local" / "parse_options.sh"


def bash(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script, "script", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def parse(*args: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        stage=0; stop_stage=5; gpus=; num_nodes=1; resume=no; train_opts=
        help_message="the help"
        . {PARSE}
        echo "stage=$stage stop_stage=$stop_stage gpus=$gpus resume=$resume"
        echo "train_opts=$train_opts rest=$*"
    """)
    return bash(script, *args)


def test_kaldi_style_options_set_variables():
    out = parse(
        "--stage",
        "2",
        "--stop-stage=3",
        "--gpus",
        "0,1",
        "--resume",
        "yes",
        "--train_opts",
        "--training.epochs 1",
        "left",
        "over",
    )
    assert out.returncode == 0, out.stderr
    assert "stage=2 stop_stage=3 gpus=0,1 resume=yes" in out.stdout
    assert "train_opts=--training.epochs 1 rest=left over" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stagee", "2"], "unknown option --stagee"),
        (["--resume", "maybe"], "takes yes or no (or true/false)"),
        (["--stage"], "needs a value"),
        (["--1bad", "x"], "unknown option"),
    ],
)
def test_bad_options_are_errors(args, message):
    out = parse(*args)
    assert out.returncode != 0 and message in out.stderr


def test_help_prints_the_message_or_calls_usage():
    out = parse("--help")
    assert out.returncode == 0 and out.stdout.strip() == "the help"
    script = f'x=1; usage() {{ echo "x is $x"; }}; . {PARSE}'
    assert bash(script, "--x", "7", "--help").stdout.strip() == "x is 7"


@pytest.mark.parametrize("recipe", [*RECIPES, "mini2mix"])
def test_run_sh_is_short_and_calls_the_shared_driver(recipe: str):
    run = REPO / "egs" / recipe / "TDANet" / "run.sh"
    lines = [line for line in run.read_text().splitlines() if line.strip()]
    assert len(lines) <= 25
    assert "../../../local/recipe.sh" in run.read_text()
    readme = (REPO / "egs" / recipe / "TDANet" / "README.md").read_text()
    assert "./run.sh" in readme


def test_help_shows_the_recipe_values_and_runs_nothing():
    out = bash(f"{REPO}/egs/lrs2_2mix/TDANet/run.sh --help")
    assert out.returncode == 0, out.stderr
    assert "--sample_rate SR    sample rate in Hz [16000]" in out.stdout
    assert "dataset: lrs2_2mix" in out.stdout
    assert "0 download, 1 prepare metadata, 2 train, 3 evaluate, 4 publish, 5 compare" in out.stdout


def test_driver_refuses_inconsistent_options(tmp_path: Path):
    run = f"{REPO}/egs/librimix/TDANet/run.sh"
    out = bash(f"{run} --stage 2 --conf 'conf/tdanet.yml conf/convtasnet.yml' --tag x")
    assert out.returncode != 0 and "--tag names one experiment but 2 confs" in out.stderr
    out = bash(f"{run} --stage 2 --stop_stage 2 --sample_rate 16000 --exp_root {tmp_path}")
    assert out.returncode != 0 and "data.sample_rate 8000 but the data are at 16000" in out.stderr
    out = bash(f"{REPO}/local/recipe.sh --stage 5")
    assert out.returncode != 0 and "--dataset is not set" in out.stderr
    out = bash(f"{run} extra")
    assert out.returncode != 0 and "unexpected argument 'extra'" in out.stderr


@pytest.mark.parametrize(
    ("gpu_args", "train_gpus", "eval_device"),
    [
        ([], "auto", "auto"),  # default: every visible GPU, as Asteroid's recipes
        (["--gpus", ""], "", "cpu"),
        (["--gpus", "cpu"], "", "cpu"),
        (["--gpus", "1,2"], "1,2", "cuda:1"),
        (["--id", "1,2"], "1,2", "cuda:1"),  # Asteroid's recipes' name
        (["--ngpu", "2"], "0,1", "cuda:0"),  # ESPnet's: the first N visible GPUs
        (["--ngpu", "0"], "", "cpu"),  # ESPnet's CPU
    ],
)
@pytest.mark.parametrize("conf_name", ["train_enh_x.yaml", "train_enh_x.yml"])
def test_devices_and_tags_reach_the_stages(tmp_path, gpu_args, train_gpus, eval_device, conf_name):
    """Stages 2-4 with a stand-in interpreter that records how each step is called."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "fake_python"
    fake.write_text(
        '#!/usr/bin/env bash\nif [ "$1" = -c ]; then echo 8000; exit 0; fi\n'
        f'{{ printf "%s\\t" "$@"; echo; }} >> {log}\n'
    )
    fake.chmod(0o755)
    run = subprocess.run(
        [str(REPO / "local" / "recipe.sh"), "--dataset", "librimix", "--stage", "2"]
        + ["--stop_stage", "4", "--conf", f"conf/{conf_name}", "--python", str(fake), *gpu_args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    calls = [line.split("\t")[:-1] for line in log.read_text().splitlines()]
    options = [dict(zip(c[1::2], c[2::2], strict=True)) for c in calls]
    train, evaluate, publish = options
    assert [Path(c[0]).name for c in calls] == ["train.py", "evaluate.py", "publish.py"]
    for step in options:
        assert step["--exp_dir"] == "exp/train_enh_x"  # .yaml and .yml both stripped
    assert train["--gpus"] == train_gpus
    assert evaluate["--device"] == eval_device


@pytest.mark.parametrize(
    ("value", "stored"), [("yes", "yes"), ("true", "yes"), ("True", "yes"), ("false", "no")]
)
def test_booleans_take_true_and_false_as_kaldi_and_espnet_do(value: str, stored: str):
    out = parse("--resume", value)
    assert out.returncode == 0, out.stderr
    assert f"resume={stored}" in out.stdout


def recorded_calls(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run stages 2-3 with a stand-in interpreter; the options each step was called with."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "fake_python"
    fake.write_text(
        '#!/usr/bin/env bash\nif [ "$1" = -c ]; then echo 8000; exit 0; fi\n'
        f'{{ printf "%s\\t" "$@"; echo; }} >> {log}\n'
    )
    fake.chmod(0o755)
    run = subprocess.run(
        [str(REPO / "local" / "recipe.sh"), "--dataset", "librimix", "--stage", "2"]
        + ["--stop_stage", "3", "--python", str(fake), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    if not log.exists():
        return run, []
    calls = [line.split("\t")[1:-1] for line in log.read_text().splitlines()]
    return run, [dict(zip(c[0::2], c[1::2], strict=True)) for c in calls]


def test_precision_reaches_training_and_evaluation(tmp_path: Path):
    run, (train, evaluate) = recorded_calls(tmp_path, "--precision", "bf16-mixed")
    assert run.returncode == 0, run.stderr
    assert train["--precision"] == evaluate["--precision"] == "bf16-mixed"
    (tmp_path / "default").mkdir()
    run, (train, evaluate) = recorded_calls(tmp_path / "default")
    assert "--precision" not in train and "--precision" not in evaluate  # the conf's / float32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "0", "--ngpu", "1"], "--id and --ngpu both choose the GPUs"),
        (["--gpus", "0", "--ngpu", "1"], "--gpus and --ngpu both choose the GPUs"),
        (["--gpus", "0", "--id", "1"], "--gpus and --id both choose the GPUs"),
        (["--ngpu", "two"], "--ngpu takes a number of GPUs"),
        (["--precision", "bf16"], "--precision takes 32-true, bf16-mixed or 16-mixed"),
    ],
)
def test_conflicting_device_options_are_errors(tmp_path: Path, args, message):
    run, calls = recorded_calls(tmp_path, *args)
    assert run.returncode != 0 and message in run.stderr and calls == []
