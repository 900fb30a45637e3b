"""local/slurm/train.sbatch: which stages run once, which under srun, and what a requeue skips.

There is no SLURM here: ``srun`` is a stand-in that records its options and runs the command
once, and the interpreter is a stand-in that records how each stage calls it. (Stage 2 under
the variables a real srun sets is tested in tests/local/test_train_multinode.py.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from recipe_helpers import REPO

SBATCH = REPO / "local" / "slurm" / "train.sbatch"


@pytest.fixture
def stand_ins(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(
        "#!/usr/bin/env bash\n"
        f'while [[ "$1" == -* ]]; do echo "$1" >> {tmp_path}/srun.log; shift; done\n'
        f'echo "runs $1 $2 $3 with MASTER_ADDR=$MASTER_ADDR" >> {tmp_path}/srun.log\n'
        'exec "$@"\n'
    )
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        "#!/usr/bin/env bash\n"
        '[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] && printf "gpu07\\ngpu08\\n"\n'
    )
    python = bin_dir / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = -c ]; then echo 8000; exit 0; fi\n'
        f'echo "$(basename "$1")" >> {tmp_path}/calls.log\n'
        'if [ "$(basename "$1")" = "${FAIL_STEP:-}" ]; then exit 3; fi\n'
    )
    for tool in (srun, python, scontrol):
        tool.chmod(0o755)
    return bin_dir


def submit(tmp_path: Path, bin_dir: Path, job: str, *args: str, **env: str):
    full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    full_env.pop("MASTER_ADDR", None)
    full_env.update(SLURM_JOB_ID=job, SLURM_JOB_NODELIST="gpu[07-08]", **env)
    return subprocess.run(
        ["bash", str(SBATCH), "egs/librimix/TDANet", "--python", str(bin_dir / "python")]
        + ["--exp_root", str(tmp_path / "exp"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=120,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_stages_once_training_under_srun_and_a_requeue_skips_what_is_done(
    tmp_path: Path, stand_ins: Path
):
    out = submit(tmp_path, stand_ins, "77", "--stage", "1", "--stop_stage", "3")
    assert out.returncode == 0, out.stderr
    assert lines(tmp_path / "calls.log") == ["prepare.py", "train.py", "evaluate.py"]
    srun = lines(tmp_path / "srun.log")
    assert srun == [
        "--kill-on-bad-exit=1",
        "--export=ALL",
        "runs ./run.sh --stage 2 with MASTER_ADDR=gpu07",  # scontrol's first host
    ]
    marks = sorted(p.name for p in (tmp_path / "exp" / "slurm" / "77").iterdir())
    assert marks == ["finish.done", "prepare.done", "train.done"]

    # The requeued job (same id) runs the script again: nothing is repeated.
    out = submit(tmp_path, stand_ins, "77", "--stage", "1", "--stop_stage", "3")
    assert out.returncode == 0, out.stderr
    assert len(lines(tmp_path / "calls.log")) == 3
    assert "stages 2-2 already done" in out.stdout


def test_a_stage_range_and_a_failed_stage(tmp_path: Path, stand_ins: Path):
    out = submit(tmp_path, stand_ins, "78", "--stage=2", "--stop-stage", "5", FAIL_STEP="train.py")
    assert out.returncode == 3
    assert lines(tmp_path / "calls.log") == ["train.py"]  # no stage 3-5 after a failed stage 2
    assert not (tmp_path / "exp" / "slurm" / "78" / "train.done").exists()
    assert "stages 2-2 failed (exit status 3)" in out.stdout


def test_a_folder_without_run_sh_is_a_usage_error(tmp_path: Path):
    out = subprocess.run(
        ["bash", str(SBATCH), "egs/nowhere"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 1 and "usage: sbatch" in out.stderr
