"""Stage 3 library: whole-utterance scoring, against closed-form values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fake_trees import make_librimix_tree
from recipe_helpers import ScaledMixture, register_test_models, tiny_conf

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.recipes.config import ConfigError, dump_conf, validate
from asteroid_tdanet.recipes.evaluation import evaluate, format_metrics, summarize


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=3, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def make_exp(exp: Path, metrics: list[str], n_examples: int = 1, backend: str = "mir_eval") -> Path:
    """An experiment whose model outputs scaled copies of the mixture."""
    register_test_models()
    conf = tiny_conf("ScaledMixture", {})
    conf["evaluation"] = {"metrics": metrics, "n_examples": n_examples, "sdr_backend": backend}
    dump_conf(validate(conf), exp / "conf.yml")
    save_model_file(ScaledMixture(), exp / "best_model.pth")
    return exp


def test_summarize_counts_only_finite_values():
    rows = [{"a": 1.0}, {"a": 3.0}, {"a": math.nan}]
    assert summarize(rows, ["a"]) == {"a": {"mean": 2.0, "std": 1.0, "count": 2}}
    assert summarize([{"a": math.nan}], ["a"]) == {"a": {"mean": None, "std": None, "count": 0}}


def check_results(exp: Path, final: dict, metrics: list[str], n_examples: int) -> None:
    # est_i = g_i * mixture: SI-SDR, SDR and STOI are scale-invariant, so est scores = mixture's.
    for metric in metrics:
        assert final[f"{metric}_imp"]["count"] == 3
        assert final[f"{metric}_imp"]["mean"] == pytest.approx(0.0, abs=1e-3), metric
        assert final[f"input_{metric}"]["count"] == 3
    results = exp / "results"
    assert json.loads((results / "final_metrics.json").read_text()) == final
    with open(results / "all_metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {"utt_id", "seconds", "si_sdr", "si_sdr_imp"} <= set(rows[0])
    # Whole utterances: item i of the fake tree lasts 1.0 + 0.1 i seconds (no cropping).
    assert sorted(round(float(r["seconds"]), 1) for r in rows) == [1.0, 1.1, 1.2]
    examples = sorted((results / "examples").iterdir())
    assert len(examples) == n_examples
    names = {p.name for p in examples[0].iterdir()}
    assert names == {
        "mixture.wav",
        "s1.wav",
        "s2.wav",
        "s1_estimate.wav",
        "s2_estimate.wav",
        "separation.png",
    }
    audio, rate = sf.read(examples[0] / "s1_estimate.wav")
    assert rate == 8000 and np.abs(audio).max() <= 1.0
    assert "si_sdr_imp" in format_metrics(final)


def test_scaled_mixture_improves_nothing(data_dir: Path, tmp_path: Path):
    metrics = ["si_sdr", "stoi"]
    exp = make_exp(tmp_path / "exp", metrics, n_examples=1)
    final = evaluate(exp, data_dir, device="cpu", progress_bar=False)
    check_results(exp, final, metrics, n_examples=1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mir_eval", "torchmetrics"])
def test_scaled_mixture_improves_nothing_bss_eval_in_worker_processes(
    data_dir: Path, tmp_path: Path, backend: str
):
    metrics = ["si_sdr", "sdr", "stoi"]
    exp = make_exp(tmp_path / "exp", metrics, n_examples=2, backend=backend)
    final = evaluate(exp, data_dir, device="cpu", jobs=2, progress_bar=False)
    check_results(exp, final, metrics, n_examples=2)


def test_missing_files_and_unsupported_pesq_rates_are_named(data_dir: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="conf.yml not found"):
        evaluate(tmp_path / "nothing", data_dir, progress_bar=False)
    exp = make_exp(tmp_path / "exp", ["si_sdr", "pesq"])
    conf_text = (exp / "conf.yml").read_text()
    (exp / "conf.yml").write_text(conf_text.replace("sample_rate: 8000", "sample_rate: 11025"))
    with pytest.raises(ConfigError, match="PESQ needs 8000 or 16000 Hz"):
        evaluate(exp, data_dir, progress_bar=False)
    (exp / "conf.yml").write_text(conf_text)
    final = evaluate(exp, data_dir, device="cpu", max_utterances=1, progress_bar=False)
    assert final["si_sdr_imp"]["count"] == 1
    assert final["pesq"]["count"] == 1 and 1.0 <= final["pesq"]["mean"] <= 4.6


def test_torchmetrics_sdr_equals_get_metrics_sdr():
    from asteroid_tdanet.recipes.evaluation import _score

    # Setting the thread count once used to break torchmetrics' LU solve (MKL): keep it covered.
    torch.set_num_threads(torch.get_num_threads())

    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 6000))
    ests = refs[::-1] * 0.3 + refs + 0.2 * rng.standard_normal((2, 6000))
    mix = refs.sum(0)
    slow = _score(mix, refs, ests, 8000, ["si_sdr", "sdr"], "u", sdr_backend="mir_eval")
    fast = _score(mix, refs, ests, 8000, ["si_sdr", "sdr"], "u", sdr_backend="torchmetrics")
    for key in ("input_sdr", "sdr", "sdr_imp", "si_sdr"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-4), key
