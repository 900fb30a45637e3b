"""Chunked vs whole-file separation: what chunk length and overlap cost in quality, memory, time.

``make results-chunking`` runs this and writes ``results/chunking.json``:

- **quality** (a trained model, by default the demo's): a long recording built from the demo's
  test voices (:mod:`.long_recording`, 10 minutes by default) is separated as
  ``tdanet-separate`` would, in chunks, for a grid of chunk lengths and overlaps; each minute of
  the result is scored (SI-SNRi, best permutation per minute) and compared with separating that
  minute whole (60 s, the longest input separated whole by default);
- **memory and speed** (the full-size TDANet, 8 kHz, random weights): peak resident memory of a
  fresh process separating one chunk, and the time per chunk at the machine's thread count, for
  each chunk length; with an overlap, the work for an hour follows (chunks x time per chunk).

Examples:
    python -m asteroid_tdanet.studies.chunking --model egs/mini2mix/TDANet/exp/tdanet/best_model.pth
    python -m asteroid_tdanet.studies.chunking --probe 10    # one memory/speed probe, as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..inference import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS, separate_in_chunks
from .long_recording import build_long_recording
from .measure import LoadMonitor, peak_rss_mb, python_module, run_measured

CHUNK_SECONDS = (3.0, 4.0, 5.0, 10.0, 20.0, 30.0)
OVERLAP_SECONDS = (0.5, 1.0)
# Asteroid's LambdaOverlapAdd setting that tdanet-separate used before: 30 s at 50% overlap.
HALF_OVERLAP = (30.0, 15.0)
PROBE_CHUNK_SECONDS = CHUNK_SECONDS
SEGMENT_SECONDS = 60.0
# Windows of the per-window score (each window with its own best permutation).
WINDOW_SECONDS = 2.0
COMMAND = "make results-chunking"
MODULE = "asteroid_tdanet.studies.chunking"  # run as a child process for the probes


def si_snr_improvement(mix: np.ndarray, refs: np.ndarray, ests: np.ndarray) -> float:
    """SI-SNRi in dB, averaged over sources, with the best permutation of the estimates.

    Args:
        mix: ``(time,)``.
        refs: ``(n_src, time)``.
        ests: ``(n_src, time)``.
    """
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    refs_t = torch.from_numpy(np.asarray(refs, dtype=np.float64))[None]
    est = -float(pit(torch.from_numpy(np.asarray(ests, dtype=np.float64))[None], refs_t))
    mixes = torch.from_numpy(np.repeat(np.asarray(mix, dtype=np.float64)[None], len(refs), 0))
    base = -float(pit(mixes[None], refs_t))
    return est - base


def windowed_si_snr_improvement(
    mix: np.ndarray, refs: np.ndarray, ests: np.ndarray, window: int, min_share: float = 0.1
) -> tuple[float, int]:
    """SI-SNRi averaged over consecutive windows, each with its own best permutation.

    One permutation for a whole minute scores a model that swaps the two talkers now and then
    (at every change of speaker, for a model trained on single-sentence mixtures) as if it had
    not separated them at all; per window, the score measures how well each stretch is
    separated, which is what chunking could damage. Windows where a reference holds less than
    ``min_share`` of its average window energy (a talker pausing) are skipped: SI-SNR of a
    near-silent reference is not defined.

    Args:
        mix: ``(time,)``.
        refs: ``(n_src, time)``.
        ests: ``(n_src, time)``.
        window: Window length in samples (a shorter last window is dropped).
        min_share: See above.

    Returns:
        The mean SI-SNRi in dB over the scored windows, and their number.
    """
    count = refs.shape[-1] // window
    if count == 0:
        raise ValueError(f"signals of {refs.shape[-1]} samples hold no window of {window}")
    energy = (refs[:, : count * window].reshape(len(refs), count, window) ** 2).sum(-1)
    keep = (energy >= min_share * energy.mean(-1, keepdims=True)).all(0)
    scores = [
        si_snr_improvement(mix[sl], refs[:, sl], ests[:, sl])
        for sl in (slice(k * window, (k + 1) * window) for k in np.flatnonzero(keep))
    ]
    if not scores:
        raise ValueError("no window holds both talkers")
    return float(np.mean(scores)), len(scores)


def chunk_grid() -> list[tuple[float, float]]:
    """The (chunk, overlap) settings of the quality study (the default setting included)."""
    grid = [(c, o) for c in CHUNK_SECONDS for o in OVERLAP_SECONDS if o <= c / 2] + [HALF_OVERLAP]
    default = (DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS)
    return grid if default in grid else [default, *grid]


def per_segment_scores(
    mix: np.ndarray, refs: np.ndarray, ests: np.ndarray, segment: int, window: int | None = None
) -> list[float]:
    """SI-SNRi of each whole ``segment`` (the last, partial one is left out).

    With ``window``, each segment's score is :func:`windowed_si_snr_improvement` over windows of
    that many samples instead of one permutation for the whole segment.
    """
    scores = []
    for s in range(0, mix.shape[-1] - segment + 1, segment):
        part = (mix[s : s + segment], refs[:, s : s + segment], ests[:, s : s + segment])
        if window is None:
            scores.append(si_snr_improvement(*part))
        else:
            scores.append(windowed_si_snr_improvement(*part, window)[0])
    return scores


def quality_study(
    separator: Callable[[torch.Tensor], torch.Tensor],
    mix: np.ndarray,
    refs: np.ndarray,
    sample_rate: int,
    grid: Sequence[tuple[float, float]],
    segment_seconds: float = SEGMENT_SECONDS,
) -> dict[str, Any]:
    """Whole-segment vs chunked SI-SNRi, per segment and on average.

    Args:
        separator: ``(batch, 1, time) -> (batch, n_src, time)`` (a model in eval mode).
        mix: The long mixture, ``(time,)``.
        refs: Its sources, ``(n_src, time)``.
        sample_rate: Rate of both.
        grid: ``(chunk_seconds, overlap_seconds)`` settings.
        segment_seconds: Length of the scored segments (each one also separated whole).

    Returns:
        ``whole`` (per-segment SI-SNRi and mean) and ``chunked`` (one row per setting: mean,
        per-segment values, and the mean / worst difference to whole, in dB), each also as
        ``windowed_*``: per segment, the mean over 2 s windows with a permutation per window.
    """
    segment = round(segment_seconds * sample_rate)
    window = min(round(WINDOW_SECONDS * sample_rate), segment)
    n_src = refs.shape[0]
    wav = torch.from_numpy(mix.astype(np.float32))[None, None]
    whole_scores, whole_windowed = [], []
    with torch.inference_mode():
        for s in tqdm(range(0, len(mix) - segment + 1, segment), desc="whole segments"):
            est = separator(wav[..., s : s + segment])[0].double().numpy()
            part = (mix[s : s + segment], refs[:, s : s + segment], est)
            whole_scores.append(si_snr_improvement(*part))
            whole_windowed.append(windowed_si_snr_improvement(*part, window)[0])
        rows = []
        for chunk, overlap in tqdm(grid, desc="chunk settings"):
            est = separate_in_chunks(
                separator,
                wav,
                n_src=n_src,
                sample_rate=sample_rate,
                chunk_seconds=chunk,
                overlap_seconds=overlap,
            )[0]
            est = est.double().numpy()
            scores = per_segment_scores(mix, refs, est, segment)
            windowed = per_segment_scores(mix, refs, est, segment, window)
            diffs = [c - w for c, w in zip(scores, whole_scores, strict=True)]
            windowed_diffs = [c - w for c, w in zip(windowed, whole_windowed, strict=True)]
            rows.append(
                {
                    "chunk_seconds": chunk,
                    "overlap_seconds": overlap,
                    "si_snr_imp": statistics.fmean(scores),
                    "minus_whole": statistics.fmean(diffs),
                    "worst_minus_whole": min(diffs),
                    "per_segment": scores,
                    "windowed_si_snr_imp": statistics.fmean(windowed),
                    "windowed_minus_whole": statistics.fmean(windowed_diffs),
                    "windowed_worst_minus_whole": min(windowed_diffs),
                    "windowed_per_segment": windowed,
                }
            )
    return {
        "whole": {
            "si_snr_imp": statistics.fmean(whole_scores),
            "per_segment": whole_scores,
            "windowed_si_snr_imp": statistics.fmean(whole_windowed),
            "windowed_per_segment": whole_windowed,
        },
        "window_seconds": WINDOW_SECONDS,
        "chunked": rows,
    }


def probe(chunk_seconds: float, sample_rate: int = 8000, repeats: int = 2) -> dict[str, float]:
    """Peak memory and time of the full-size TDANet on one chunk, in this (fresh) process."""
    from ..models import TDANet
    from ..runtime import configure_cpu_process

    configure_cpu_process()
    torch.manual_seed(0)
    model = TDANet(n_src=2, sample_rate=sample_rate).eval()
    idle = peak_rss_mb()
    wav = torch.randn(1, 1, round(chunk_seconds * sample_rate))
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):  # the first call is a warm-up
            start = time.perf_counter()
            model(wav)
            if i:
                times.append(time.perf_counter() - start)
    return {
        "chunk_seconds": chunk_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "model_loaded_rss_mb": idle,
        "seconds_per_chunk": statistics.median(times),
        "threads": torch.get_num_threads(),
    }


def hour_estimates(probes: list[dict], grid: Sequence[tuple[float, float]]) -> list[dict]:
    """For each setting with a probed chunk length: chunks per hour and the network's time."""
    by_chunk = {p["chunk_seconds"]: p for p in probes}
    rows = []
    for chunk, overlap in grid:
        if chunk not in by_chunk:
            continue
        n_chunks = math.ceil((3600 - overlap) / (chunk - overlap))
        rows.append(
            {
                "chunk_seconds": chunk,
                "overlap_seconds": overlap,
                "chunks_per_hour": n_chunks,
                "work_factor": chunk / (chunk - overlap),
                "network_minutes_per_hour": n_chunks * by_chunk[chunk]["seconds_per_chunk"] / 60,
                "peak_rss_mb": by_chunk[chunk]["peak_rss_mb"],
            }
        )
    return rows


def plot(values: dict[str, Any], path: Path) -> Path:
    """Quality cost per chunk length and overlap, and peak memory per chunk length (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    rows = values["quality"]["chunked"]
    for overlap in sorted({r["overlap_seconds"] for r in rows}):
        for key, style, label in (
            ("minus_whole", "-", "one permutation per minute"),
            ("windowed_minus_whole", "--", "per 2 s window"),
        ):
            pts = sorted(
                (r["chunk_seconds"], r[key]) for r in rows if r["overlap_seconds"] == overlap
            )
            left.plot(
                *zip(*pts, strict=True), style, marker="o", label=f"overlap {overlap:g} s, {label}"
            )
    left.axhline(0.0, color="gray", lw=0.8)
    left.set(xlabel="chunk length (s)", ylabel="SI-SNRi chunked - whole (dB)")
    left.set_title("quality cost (demo model)", fontsize=10)
    left.legend(fontsize=7)
    if values["probes"]:
        probes = sorted((p["chunk_seconds"], p["peak_rss_mb"]) for p in values["probes"])
        right.plot(*zip(*probes, strict=True), marker="o")
        right.axhline(1024, color="red", lw=0.8, ls="--", label="1 GiB")
        right.set(xlabel="chunk length (s)", ylabel="peak RSS (MiB)")
        right.set_title("memory, full-size TDANet, 8 kHz", fontsize=10)
        right.legend(fontsize=8)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "memory per chunk: not probed (--no-probes)", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asteroid_tdanet.studies.chunking", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", type=Path, help="trained model file for the quality study")
    parser.add_argument("--out", type=Path, default=Path("results/chunking.json"))
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording")
    parser.add_argument("--seed", type=int, default=0, help="seed of the recording")
    parser.add_argument(
        "--probe", type=float, default=None, help="internal: measure one chunk length, print JSON"
    )
    parser.add_argument("--no-probes", action="store_true", help="skip memory/speed probes")
    args = parser.parse_args(argv)

    if args.probe is not None:
        print(json.dumps(probe(args.probe)))
        return 0
    if args.model is None or not args.model.is_file():
        parser.error(f"--model {args.model}: no such model file (run `make demo` first)")

    from ..cli import load_any_model
    from ..provenance import provenance, write_result
    from ..runtime import configure_cpu_process

    header = provenance(COMMAND)  # taken before measuring: the code that ran
    configure_cpu_process()
    probes = []  # first: the quick part that needs fresh processes
    if not args.no_probes:
        for chunk in tqdm(PROBE_CHUNK_SECONDS, desc="memory/speed probes"):
            run = run_measured(python_module(MODULE, "--probe", str(chunk)))
            row = json.loads(run.stdout.splitlines()[-1])
            probes.append({**row, "wall_s": run.wall_s, "machine_load": run.load})

    model = load_any_model(str(args.model)).eval()
    rate = int(model.sample_rate)
    rec = build_long_recording(None, args.minutes * 60, sample_rate=rate, seed=args.seed)
    refs = rec.render(0, rec.length)
    grid = chunk_grid()
    cpu_before = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    with LoadMonitor(interval_s=10.0) as load:
        quality = quality_study(model, refs.sum(axis=0), refs, rate, grid)
    own_cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu_before
    quality["machine_load"] = load.summary(own_cpu_s=own_cpu)
    quality["default"] = next(
        row
        for row in quality["chunked"]
        if (row["chunk_seconds"], row["overlap_seconds"])
        == (DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS)
    )

    values = {
        "recording": {**rec.description(), "segment_seconds": SEGMENT_SECONDS},
        "quality_model": {
            "file": str(args.model),
            "config": model.get_model_args() if hasattr(model, "get_model_args") else None,
        },
        "defaults": {
            "chunk_seconds": DEFAULT_CHUNK_SECONDS,
            "overlap_seconds": DEFAULT_OVERLAP_SECONDS,
        },
        "quality": quality,
        "probes": probes,
        "probe_model": "TDANet full size (C=128, N=512, B=16, D=5, 4 ms kernel), 8 kHz, random "
        "weights, batch 1, inference mode, torch's default threads",
        "hour_estimates": hour_estimates(probes, grid),
    }
    path = write_result(args.out, values, header)
    print(f"wrote {path} and {plot(values, path.with_suffix('.png'))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
