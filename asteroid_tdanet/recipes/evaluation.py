"""Stage 3 of every recipe: score ``best_model.pth`` on the whole test utterances.

Writes ``exp/<tag>/results/``::

    all_metrics.csv        one row per test utterance (input_* = the mixture's score)
    final_metrics.json     {metric: {mean, std, count}}; std over utterances (ddof=0)
    examples/<utt_id>/     mixture.wav, s<i>.wav, s<i>_estimate.wav, separation.png

SI-SNRi is ``si_sdr_imp`` (SI-SNR and SI-SDR are the same quantity), SDRi is ``sdr_imp``; all
metrics come from ``asteroid.metrics.get_metrics`` (pb_bss_eval) after the estimates are put in
the order of the references by the permutation that maximizes SI-SDR. With
``evaluation.sdr_backend: torchmetrics`` the BSS-eval SDR is computed by torchmetrics instead of
mir_eval: the same values (checked by the tests), about ten times faster.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError, validate

log = logging.getLogger(__name__)

# Metrics whose improvement over the mixture is reported.
IMPROVEMENTS = ("si_sdr", "sdr", "sir", "sar", "stoi", "pesq")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} asked but CUDA is not available")
    return torch.device(device)


def _init_worker() -> None:
    """Metric workers use one thread each: the processes already share the cores."""
    from asteroid_tdanet.runtime import configure_cpu_process

    torch.set_num_threads(1)
    configure_cpu_process()


def bss_sdr(estimates: np.ndarray, references: np.ndarray) -> float:
    """BSS-eval SDR (512-tap distortion filter), mean over sources, with torchmetrics.

    The value of ``get_metrics(..., ["sdr"])`` (mir_eval's ``bss_eval_sources`` without
    permutation): both project each estimate on the delayed copies of its own reference.

    Args:
        estimates: ``(n_src, time)``.
        references: ``(n_src, time)``.
    """
    from torchmetrics.functional import signal_distortion_ratio

    # One thread: with torch 2.14.1's MKL, the batched LU solve inside fails ("DLASWP parameter 6",
    # "pivots ... must be >= 1") once torch.set_num_threads(n > 1) has been called in the
    # process. The systems are 512 x 512: a single thread costs nothing.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sdr = signal_distortion_ratio(
            torch.from_numpy(np.asarray(estimates, dtype=np.float64)),
            torch.from_numpy(np.asarray(references, dtype=np.float64)),
        )
    finally:
        torch.set_num_threads(previous)
    return float(sdr.mean())


def _score(
    mix: np.ndarray,
    refs: np.ndarray,
    ests: np.ndarray,
    sample_rate: int,
    metrics: list[str],
    utt_id: str,
    sdr_backend: str = "mir_eval",
) -> dict[str, float]:
    """Metrics of one utterance, with improvements (``<metric>_imp``)."""
    import warnings

    from asteroid.metrics import get_metrics

    fast_sdr = sdr_backend == "torchmetrics" and "sdr" in metrics
    listed = [m for m in metrics if not (fast_sdr and m == "sdr")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures become NaN and are counted below
        scores = get_metrics(
            mix[None],
            refs,
            ests,
            sample_rate=sample_rate,
            metrics_list=listed,
            average=True,
            compute_permutation=False,
            ignore_metrics_errors=True,
            filename=utt_id,
        )
    row = {k: (math.nan if v is None else float(v)) for k, v in scores.items()}
    if fast_sdr:
        row["input_sdr"] = bss_sdr(np.repeat(mix[None], len(refs), axis=0), refs)
        row["sdr"] = bss_sdr(ests, refs)
    for metric in metrics:
        if metric in IMPROVEMENTS:
            row[f"{metric}_imp"] = row[metric] - row[f"input_{metric}"]
    return row


def summarize(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float | None]]:
    """Mean, std (ddof=0) and count of finite values per metric; None when there are none."""
    out = {}
    for key in keys:
        values = np.array([r[key] for r in rows], dtype=float)
        values = values[np.isfinite(values)]
        out[key] = {
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std()) if values.size else None,
            "count": int(values.size),
        }
    return out


def _write_example(
    folder: Path, mix: np.ndarray, refs: np.ndarray, ests: np.ndarray, sample_rate: int, title: str
) -> None:
    """Wavs (16-bit PCM) and a spectrogram figure of one separated test mixture."""
    import soundfile as sf

    from .plots import plot_separation_example

    folder.mkdir(parents=True, exist_ok=True)
    peak = max(float(np.abs(mix).max()), 1e-8)
    sf.write(folder / "mixture.wav", mix / max(peak, 1.0), sample_rate, subtype="PCM_16")
    for i, (ref, est) in enumerate(zip(refs, ests, strict=True), start=1):
        sf.write(folder / f"s{i}.wav", ref / max(peak, 1.0), sample_rate, subtype="PCM_16")
        # The model's output scale is arbitrary (scale-invariant loss): give it the mixture's peak.
        est_peak = max(float(np.abs(est).max()), 1e-8)
        sf.write(
            folder / f"s{i}_estimate.wav",
            est * (min(peak, 1.0) / est_peak),
            sample_rate,
            subtype="PCM_16",
        )
    plot_separation_example(mix, refs, ests, sample_rate, folder / "separation.png", title=title)


PRECISIONS = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast_of(precision: str, device: torch.device) -> torch.autocast:
    """The ``torch.autocast`` context of a Lightning precision name (disabled for 32-true)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type == "cpu":
        # As Lightning's Trainer does on the CPU (no fp16 autocast there): bf16 instead.
        log.warning("--precision 16-mixed on the CPU: evaluating in bf16-mixed, as training does")
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def evaluate(
    exp_dir: str | Path,
    data_dir: str | Path,
    *,
    device: str = "auto",
    jobs: int = 1,
    max_utterances: int | None = None,
    progress_bar: bool = True,
    precision: str = "32-true",
) -> dict[str, dict[str, float | None]]:
    """Separate every test utterance (whole length) and score it.

    Args:
        exp_dir: ``exp/<tag>`` holding ``conf.yml`` and ``best_model.pth``.
        data_dir: Metadata directory of the dataset (stage 1 output).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        jobs: Processes computing metrics while the model separates (PESQ, STOI and BSS-eval
            are CPU-bound).
        max_utterances: Score only the first N utterances (quick checks).
        progress_bar: Show a tqdm bar.
        precision: ``32-true``, or ``bf16-mixed`` / ``16-mixed``: the model runs under
            ``torch.autocast`` with that dtype (the scores are computed in float32).

    Returns:
        The contents of ``final_metrics.json``.
    """
    from asteroid_tdanet.runtime import configure_cpu_process

    configure_cpu_process()
    import yaml
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
    from tqdm import tqdm

    from asteroid_tdanet.data import make_dataset
    from asteroid_tdanet.io import load_model

    exp_dir, data_dir = Path(exp_dir), Path(data_dir)
    conf_path, model_path = exp_dir / "conf.yml", exp_dir / "best_model.pth"
    for path in (conf_path, model_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: train first (stage 2)")
    conf = validate(yaml.safe_load(conf_path.read_text()), str(conf_path))
    data, metrics = conf["data"], conf["evaluation"]["metrics"]
    sample_rate = data["sample_rate"]
    if "pesq" in metrics and sample_rate not in (8000, 16000):
        raise ConfigError(f"{conf_path}: PESQ needs 8000 or 16000 Hz, data is {sample_rate} Hz")
    torch_device = resolve_device(device)
    autocast = autocast_of(precision, torch_device)
    model = load_model(model_path).to(torch_device).eval()
    test_set = make_dataset(
        data["format"],
        data_dir,
        "test",
        sample_rate=sample_rate,
        n_src=data["n_src"],
        segment=None,
        task=data["task"],
        return_id=True,
    )
    n_total = len(test_set) if max_utterances is None else min(max_utterances, len(test_set))
    if n_total == 0:
        raise ValueError(f"{data_dir}: the test split is empty")
    pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    results = exp_dir / "results"
    examples = results / "examples"
    n_examples = conf["evaluation"]["n_examples"]
    sdr_backend = conf["evaluation"]["sdr_backend"]

    pool = None
    if jobs > 1:
        # "spawn": a forked child of a process that already ran torch ops can deadlock in
        # torch's thread pool (the torchmetrics SDR runs torch in the workers).
        pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )
    pending: list[tuple[str, float, Future | dict]] = []
    rows: list[dict[str, Any]] = []

    def collect(block: bool) -> None:
        # Keep at most 2 x jobs utterances in flight so memory stays bounded.
        while pending and (block or len(pending) > 2 * jobs):
            utt, seconds, job = pending.pop(0)
            scores = job.result() if isinstance(job, Future) else job
            rows.append({"utt_id": utt, "seconds": seconds, **scores})

    try:
        for index in tqdm(
            range(n_total), desc="evaluate", disable=not progress_bar, dynamic_ncols=True
        ):
            mixture, sources, utt_id = test_set[index]
            mixture = torch.as_tensor(mixture, dtype=torch.float32)
            sources = torch.as_tensor(sources, dtype=torch.float32)
            with torch.inference_mode(), autocast:
                estimates = model(mixture[None].to(torch_device)).float().cpu()
            if estimates.shape[-1] != mixture.shape[-1] or estimates.shape[1] != sources.shape[0]:
                raise RuntimeError(
                    f"{utt_id}: the model returned {tuple(estimates.shape)} for a mixture of "
                    f"{mixture.shape[-1]} samples and {sources.shape[0]} sources"
                )
            _, estimates = pit(estimates, sources[None], return_est=True)
            mix_np, refs_np = mixture.numpy(), sources.numpy()
            ests_np = estimates[0].numpy()
            args = (mix_np, refs_np, ests_np, sample_rate, metrics, str(utt_id), sdr_backend)
            job = pool.submit(_score, *args) if pool else _score(*args)
            pending.append((str(utt_id), mixture.shape[-1] / sample_rate, job))
            if index < n_examples:
                _write_example(
                    examples / _safe_name(str(utt_id)),
                    mix_np,
                    refs_np,
                    ests_np,
                    sample_rate,
                    title=f"{exp_dir.name}: {utt_id}",
                )
            collect(block=False)
        collect(block=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    keys = [k for k in rows[0] if k not in ("utt_id", "seconds")]
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "all_metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["utt_id", "seconds", *keys])
        writer.writeheader()
        writer.writerows(rows)
    final = summarize(rows, keys)
    (results / "final_metrics.json").write_text(json.dumps(final, indent=2) + "\n")
    failed = {k: n_total - v["count"] for k, v in final.items() if v["count"] < n_total}
    if failed:
        log.warning("metrics that failed on some utterances (NaN, left out): %s", failed)
    return final


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "utt"


def format_metrics(final: dict[str, dict[str, float | None]]) -> str:
    """Human-readable table of final metrics."""
    lines = [f"{'metric':<18}{'mean':>10}{'std':>10}{'count':>8}"]
    for key, value in final.items():
        mean = "n/a" if value["mean"] is None else f"{value['mean']:.3f}"
        std = "n/a" if value["std"] is None else f"{value['std']:.3f}"
        lines.append(f"{key:<18}{mean:>10}{std:>10}{value['count']:>8}")
    return "\n".join(lines)
