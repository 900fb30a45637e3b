"""Helpers for the toolkit tests: a local hub cache, and running Asteroid's real CLI.

Hub: ``huggingface_hub.hf_hub_download`` (which Asteroid's ``cached_download`` calls) serves files
from ``<cache>/models--<owner>--<name>/snapshots/<commit>/`` when ``refs/main`` names that commit
and offline mode is on (``HF_HUB_OFFLINE=1``); Asteroid's cache is ``$ASTEROID_CACHE``. So hub ids
resolve offline with the real libraries: nothing is mocked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch


def add_hub_repo(cache: Path, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """Put ``files`` (name -> file to copy, or bytes) in the cache as repo ``repo_id``'s main."""
    owner, name = repo_id.split("/")
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / f"models--{owner}--{name}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for filename, content in files.items():
        if isinstance(content, bytes):
            (snapshot / filename).write_bytes(content)
        else:
            shutil.copyfile(content, snapshot / filename)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def offline_env(cache: Path) -> dict[str, str]:
    """Environment for subprocesses: Asteroid's cache at ``cache``, hub offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"ASTEROID_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    return env


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """Asteroid's hub cache in ``tmp_path/hub``, offline, for this test's process."""
    import huggingface_hub.constants
    from asteroid.utils import hub_utils

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_utils, "CACHE_DIR", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def write_mixture(path: Path, seconds: float = 1.0, sample_rate: int = 8000) -> torch.Tensor:
    """A noise mixture as 16-bit wav; returns what reading it back gives (float32)."""
    rng = np.random.default_rng(0)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * sample_rate)), sample_rate)
    audio, _ = sf.read(path, dtype="float32")
    return torch.from_numpy(audio)


def asteroid_infer_estimates(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """What ``asteroid-infer`` writes for ``mixture``: the model's output rescaled to the
    mixture's L1 norm (``asteroid.separate``), ``(n_src, time)``."""
    with torch.inference_mode():
        est = model.eval()(mixture[None])[0]
    return est * mixture.abs().sum() / est.abs().sum()


def run_asteroid_infer(
    command: list[str], model: str, mixture: Path, out_dir: Path, env: dict | None = None
) -> tuple[list[np.ndarray], str]:
    """Run the real ``asteroid-infer`` console script; return the estimates it wrote and its
    standard error.

    Args:
        command: How to start it, e.g. ``[".venv/bin/asteroid-infer"]`` or
            ``[python, script]``.
        model: Model file or hub id.
        mixture: Input wav.
        out_dir: Output folder (asteroid-infer does not create it: created here).
        env: Environment (default: this one, without PYTHONPATH).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [*command, model, "--files", str(mixture), "--output-dir", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out_dir,  # never the checkout: the working directory is on sys.path of `-c` code
        timeout=600,
    )
    assert run.returncode == 0, f"asteroid-infer failed:\n{run.stdout}\n{run.stderr}"
    written = sorted(out_dir.glob(f"{mixture.stem}_est*.wav"))
    assert written, f"asteroid-infer wrote nothing into {out_dir}: {run.stderr}"
    return [sf.read(path, dtype="float32")[0] for path in written], run.stderr
