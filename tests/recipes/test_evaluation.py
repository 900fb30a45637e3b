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
from recipe_helpers import LookupSeparator, ScaledMixture, register_test_models, tiny_conf

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.recipes.config import ConfigError, dump_conf, validate
from asteroid_tdanet.recipes.evaluation import evaluate, format_metrics, summarize


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    return make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=3, seconds=1.0)


@pytest.fixture(scope="module")
def data_dir(raw_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", raw_root, out, sample_rate=8000, progress=False)
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


# --- Scores on known cases, computed independently -------------------------------------------
# The model returns estimates chosen by the test (LookupSeparator); the expected scores follow
# from how the estimates were built and from the SI-SNR definition written out below, never
# from the code under test.


def si_snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """SI-SNR (= SI-SDR) by its definition: zero-mean, project, energy ratio in dB."""
    estimate = estimate - estimate.mean()
    reference = reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    return float(10 * np.log10((target @ target) / ((estimate - target) @ (estimate - target))))


def raw_test_items(raw_root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(utt_id, mixture, sources (2, time))`` of the test split, read from the raw files."""
    split = raw_root / "Libri2Mix" / "wav8k" / "min" / "test"
    items = []
    for path in sorted((split / "mix_clean").glob("*.wav")):
        mix, _ = sf.read(path, dtype="float32")
        refs = np.stack([sf.read(split / s / path.name, dtype="float32")[0] for s in ("s1", "s2")])
        items.append((path.stem, mix.astype(np.float64), refs.astype(np.float64)))
    return items


def with_si_snr(refs: np.ndarray, target_db: list[float], rng: np.random.Generator) -> np.ndarray:
    """``refs[i] + e_i`` with ``e_i`` zero-mean and orthogonal to every (zero-mean) reference,
    scaled so that SI-SNR(estimate_i, ref_i) is exactly ``target_db[i]``."""
    centred = refs - refs.mean(axis=1, keepdims=True)
    basis, _ = np.linalg.qr(np.vstack([np.ones(refs.shape[1]), centred]).T)
    estimates = []
    for ref, zero_mean, db in zip(refs, centred, target_db, strict=True):
        noise = rng.standard_normal(refs.shape[1])
        noise -= basis @ (basis.T @ noise)
        noise *= np.sqrt((zero_mean @ zero_mean) * 10 ** (-db / 10) / (noise @ noise))
        estimates.append(ref + noise)
    return np.stack(estimates)


def lookup_exp(exp: Path, items, estimates: dict[str, np.ndarray], metrics: list[str]) -> Path:
    """An experiment whose model returns ``estimates[utt_id]`` for that utterance's mixture."""
    register_test_models()
    lengths = [len(mix) for _, mix, _ in items]
    model = LookupSeparator(lengths)
    for utt_id, mix, _ in items:
        model.set_estimates(len(mix), estimates[utt_id])
    conf = tiny_conf("LookupSeparator", {"lengths": lengths})
    conf["evaluation"] = {"metrics": metrics, "n_examples": 1, "sdr_backend": "torchmetrics"}
    dump_conf(validate(conf), exp / "conf.yml")
    save_model_file(model, exp / "best_model.pth")
    return exp


def read_rows(exp: Path) -> dict[str, dict[str, float]]:
    with open(exp / "results" / "all_metrics.csv") as handle:
        return {
            r["utt_id"]: {k: float(v) for k, v in r.items() if k != "utt_id"}
            for r in csv.DictReader(handle)
        }


@pytest.mark.parametrize(
    "target_db, swap",
    [((10.0, 20.0), False), ((10.0, 20.0), True), ((-25.0, -15.0), False)],
    ids=["ordered", "swapped", "worse-than-mixture"],
)
def test_known_si_snr_and_its_improvement(raw_root, data_dir, tmp_path, target_db, swap):
    items = raw_test_items(raw_root)
    rng = np.random.default_rng(7)
    estimates = {}
    for utt_id, _, refs in items:
        est = with_si_snr(refs, list(target_db), rng)
        estimates[utt_id] = est[::-1] if swap else est
    exp = lookup_exp(tmp_path / "exp", items, estimates, ["si_sdr", "sdr"])
    final = evaluate(exp, data_dir, device="cpu", progress_bar=False)

    rows = read_rows(exp)
    assert sorted(rows) == sorted(utt for utt, _, _ in items)
    expected_imp = []
    for utt_id, mix, refs in items:
        row = rows[utt_id]
        # Each estimate is scored against its own reference (PIT undoes the swap): the mean
        # of the two SI-SNRs it was built with.
        assert row["si_sdr"] == pytest.approx(np.mean(target_db), abs=1e-3), utt_id
        mixture_db = np.mean([si_snr_db(mix, ref) for ref in refs])
        assert row["input_si_sdr"] == pytest.approx(mixture_db, abs=1e-3), utt_id
        assert row["si_sdr_imp"] == pytest.approx(np.mean(target_db) - mixture_db, abs=1e-3)
        expected_imp.append(np.mean(target_db) - mixture_db)
    # Improvement = output - input: positive for a separator, negative for a worse one.
    assert np.sign(final["si_sdr_imp"]["mean"]) == np.sign(target_db[0])
    # Aggregation: mean and population std over utterances, every utterance counted.
    assert final["si_sdr_imp"]["mean"] == pytest.approx(np.mean(expected_imp), abs=1e-3)
    assert final["si_sdr_imp"]["std"] == pytest.approx(np.std(expected_imp), abs=1e-3)
    assert final["si_sdr_imp"]["count"] == len(items)
    assert final["si_sdr"]["mean"] == pytest.approx(np.mean(target_db), abs=1e-3)
    if target_db[0] > 0:
        # BSS-eval SDR of the same estimates: its 512-tap filter may count up to 512 / length
        # (< 7% here) of the orthogonal noise as target, so it lies 0 to 0.3 dB above SI-SNR.
        assert 0 <= final["sdr"]["mean"] - np.mean(target_db) < 0.35

    # The example files hold each estimate beside its own reference, whatever the model order.
    example = next((exp / "results" / "examples").iterdir())
    for i in (1, 2):
        est, _ = sf.read(example / f"s{i}_estimate.wav")
        ref, _ = sf.read(example / f"s{i}.wav")
        other, _ = sf.read(example / f"s{3 - i}.wav")
        if target_db[0] > 0:
            assert si_snr_db(est, ref) > si_snr_db(est, other) + 10, i


def test_a_perfect_separator_in_the_wrong_order_and_scale(raw_root, data_dir, tmp_path):
    # Estimates = the references themselves, swapped and rescaled: after PIT each one is its
    # reference, so SI-SNR has no noise at all (far above any real separator) and STOI is 1.
    items = raw_test_items(raw_root)
    estimates = {utt: refs[::-1] * np.array([[0.5], [2.0]]) for utt, _, refs in items}
    exp = lookup_exp(tmp_path / "exp", items, estimates, ["si_sdr", "stoi"])
    final = evaluate(exp, data_dir, device="cpu", progress_bar=False)
    assert final["stoi"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert final["si_sdr"]["mean"] > 80
    for metric in ("si_sdr", "stoi"):
        imp, out, inp = (final[k]["mean"] for k in (f"{metric}_imp", metric, f"input_{metric}"))
        assert imp == pytest.approx(out - inp, abs=1e-6) and inp < out
    assert final["input_stoi"]["mean"] < 0.95 and final["input_si_sdr"]["mean"] < 10


def test_sdr_and_si_snr_are_not_confused():
    from asteroid_tdanet.recipes.evaluation import _score

    # Closed form: over whole periods, sin and cos are orthogonal and zero-mean, so
    # est = sin + k cos has SI-SNR = -20 log10(k) exactly; cos is sin delayed by a quarter
    # period, which BSS-eval's 512-tap distortion filter absorbs: its SDR is far higher.
    n = np.arange(8000)
    refs = np.stack([np.sin(2 * np.pi * 100 * n / 8000), np.sin(2 * np.pi * 250 * n / 8000)])
    quarter = np.stack([np.cos(2 * np.pi * 100 * n / 8000), np.cos(2 * np.pi * 250 * n / 8000)])
    ests = refs + np.array([[0.1], [0.316]]) * quarter
    row = _score(refs.sum(0), refs, ests, 8000, ["si_sdr", "sdr"], "u", "torchmetrics")
    expected_si_snr = np.mean([-20 * np.log10(0.1), -20 * np.log10(0.316)])
    assert row["si_sdr"] == pytest.approx(expected_si_snr, abs=1e-6)
    assert row["sdr"] > row["si_sdr"] + 20
    assert row["sdr_imp"] == pytest.approx(row["sdr"] - row["input_sdr"])
    assert row["si_sdr_imp"] == pytest.approx(row["si_sdr"] - row["input_si_sdr"])


def test_stoi_is_computed_at_the_data_rate():
    from pystoi import stoi

    from asteroid_tdanet.recipes.evaluation import _score

    # STOI resamples to 10 kHz from the rate it is given: the data's rate must reach it.
    rng = np.random.default_rng(3)
    refs = rng.standard_normal((2, 16000))
    ests = refs + 0.7 * rng.standard_normal((2, 16000))
    row = _score(refs.sum(0), refs, ests, 16000, ["si_sdr", "stoi"], "u")
    expected = np.mean([stoi(r, e, 16000) for r, e in zip(refs, ests, strict=True)])
    assert row["stoi"] == pytest.approx(expected, abs=1e-6)
    assert (
        abs(np.mean([stoi(r, e, 8000) for r, e in zip(refs, ests, strict=True)]) - expected) > 1e-3
    )


LSB = 1 / 2**15  # one step of the 16-bit wavs


def test_written_estimates_are_rescaled_never_clipped(raw_root, data_dir, tmp_path):
    # Estimates 4 and 6 times louder than the references (peaks far above 1.0), in the wrong
    # order: each example wav holds its estimate scaled to the mixture's peak, every sample
    # (the loud peaks included) in proportion, none cut at full scale.
    items = raw_test_items(raw_root)
    estimates = {utt: refs[::-1] * np.array([[4.0], [6.0]]) for utt, _, refs in items}
    exp = lookup_exp(tmp_path / "exp", items, estimates, ["si_sdr"])
    evaluate(exp, data_dir, device="cpu", progress_bar=False)
    utt, mix, refs = items[0]
    example = exp / "results" / "examples" / utt
    peak = np.abs(mix).max()
    assert peak < 1.0  # the fake data's mixtures: written as they are
    written, _ = sf.read(example / "mixture.wav")
    np.testing.assert_allclose(written, mix, rtol=0, atol=LSB)
    for i, gain in ((1, 6.0), (2, 4.0)):  # PIT put them back in the references' order
        estimate = gain * refs[i - 1]
        assert np.abs(estimate).max() > 1.0
        written, _ = sf.read(example / f"s{i}_estimate.wav")
        expected = estimate * peak / np.abs(estimate).max()
        np.testing.assert_allclose(written, expected, rtol=0, atol=LSB)


def test_a_mixture_above_full_scale_is_written_scaled_with_its_sources(tmp_path):
    from asteroid_tdanet.recipes.evaluation import _write_example

    # Peak 2.5: the mixture and its references are divided by the same 2.5 (their relation
    # kept, nothing clipped); the estimates get the written mixture's peak, 1.0.
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 4000))
    refs *= 2.0 / np.abs(refs).max()
    mix = refs.sum(0)
    scale = np.abs(mix).max()
    assert scale > 1.0
    ests = np.stack([3.0 * refs[0], 0.2 * refs[1]])
    _write_example(tmp_path, mix, refs, ests, 8000, title="loud")
    written, _ = sf.read(tmp_path / "mixture.wav")
    np.testing.assert_allclose(written, mix / scale, rtol=0, atol=LSB)
    for i in (1, 2):
        written, _ = sf.read(tmp_path / f"s{i}.wav")
        np.testing.assert_allclose(written, refs[i - 1] / scale, rtol=0, atol=LSB)
        written, _ = sf.read(tmp_path / f"s{i}_estimate.wav")
        est = ests[i - 1]
        np.testing.assert_allclose(written, est / np.abs(est).max(), rtol=0, atol=LSB)
