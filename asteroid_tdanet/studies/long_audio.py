"""One hour of audio through ``tdanet-separate``: peak memory, wall time, and quality.

``make results-long-audio`` runs this and writes ``results/long-audio.json``:

1. builds a one-hour two-speaker recording at 8 kHz from the demo's test voices
   (:mod:`.long_recording`, seed 0) in ``--work`` (mix.wav, s1.wav, s2.wav, recording.json);
2. runs ``tdanet-separate`` on it with the **full-size TDANet** (random weights, seed 0: time and
   memory do not depend on the weights) and records its peak resident memory and wall time,
   measured like ``/usr/bin/time -v``, with how loaded the machine was meanwhile (load average,
   CPU cores used by other processes);
3. runs ``tdanet-separate`` on it with a **trained model** (the demo's by default), records the
   same, and scores the result: SI-SNRi of the chunked separation on the first 60 s against the
   SI-SNRi of separating those 60 s whole, and SI-SNRi of every minute of the hour, each both
   with one permutation per minute and averaged over 2 s windows with a permutation per window
   (:func:`.chunking.windowed_si_snr_improvement`).

Example:
    python -m asteroid_tdanet.studies.long_audio \\
        --quality-model egs/mini2mix/TDANet/exp/tdanet/best_model.pth
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ..inference import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS
from .chunking import WINDOW_SECONDS, si_snr_improvement, windowed_si_snr_improvement
from .long_recording import DESCRIPTION_NAME, build_long_recording
from .measure import Measured, run_measured

COMMAND = "make results-long-audio"
SEGMENT_SECONDS = 60.0
# The bars of the long-audio goal (issue 11): peak memory, wall time, quality cost of chunking.
MAX_PEAK_RSS_BYTES = 10**9
MAX_WALL_MINUTES = 30.0
MAX_FIRST_MINUTE_COST_DB = 0.5


def run_figures(measured: Measured, audio_seconds: float) -> dict[str, Any]:
    """Wall time, peak memory, CPU time and machine load of one ``tdanet-separate`` run."""
    return {
        "wall_minutes": measured.wall_s / 60,
        "peak_rss_mb": measured.peak_rss_mb,
        "peak_rss_gb": measured.peak_rss_mb * 2**20 / 1e9,
        "cpu_user_minutes": measured.user_s / 60,
        "cpu_system_minutes": measured.system_s / 60,
        "real_time_factor": measured.wall_s / audio_seconds,
        **measured.load,
    }


def separate_measured(model_file: Path, mix: Path, out_dir: Path, threads: int | None) -> Measured:
    """``tdanet-separate model_file mix --out-dir out_dir --force``, measured."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    beside = Path(sys.executable).with_name("tdanet-separate")
    program = str(beside) if beside.is_file() else shutil.which("tdanet-separate")
    if program is None:
        raise FileNotFoundError("tdanet-separate is not installed (pip install -e .)")
    command = [
        program,
        str(model_file),
        str(mix),
        "--out-dir",
        str(out_dir),
        "--force",
    ]
    return run_measured(command, env=env)


def _scores(mix: np.ndarray, refs: np.ndarray, ests: np.ndarray, rate: int) -> dict[str, float]:
    """One segment's SI-SNRi: one permutation for all of it, and per 2 s window."""
    windowed, windows = windowed_si_snr_improvement(mix, refs, ests, round(WINDOW_SECONDS * rate))
    return {
        "si_snr_imp": si_snr_improvement(mix, refs, ests),
        "windowed_si_snr_imp": windowed,
        "windows": windows,
    }


def minute_scores(folder: Path, out_dir: Path, segment_seconds: float) -> list[dict[str, float]]:
    """Scores (:func:`_scores`) of each whole segment of ``out_dir/mix_est{1,2}.wav``.

    Read block by block.
    """
    files = {
        name: sf.SoundFile(path)
        for name, path in {
            "mix": folder / "mix.wav",
            "s1": folder / "s1.wav",
            "s2": folder / "s2.wav",
            "e1": out_dir / "mix_est1.wav",
            "e2": out_dir / "mix_est2.wav",
        }.items()
    }
    try:
        segment = round(segment_seconds * files["mix"].samplerate)
        scores = []
        while True:
            block = {k: f.read(segment, dtype="float64") for k, f in files.items()}
            if len(block["mix"]) < segment:
                return scores
            refs = np.stack([block["s1"], block["s2"]])
            ests = np.stack([block["e1"], block["e2"]])
            scores.append(_scores(block["mix"], refs, ests, files["mix"].samplerate))
    finally:
        for f in files.values():
            f.close()


def whole_first_segment(model_file: Path, folder: Path, segment_seconds: float) -> dict[str, float]:
    """Scores (:func:`_scores`) of separating the first segment whole (one forward pass)."""
    from ..cli import load_any_model

    model = load_any_model(str(model_file)).eval()
    rate = int(model.sample_rate)
    n = round(segment_seconds * rate)
    mix = sf.read(folder / "mix.wav", frames=n, dtype="float32")[0]
    refs = np.stack([sf.read(folder / f"s{k}.wav", frames=n, dtype="float64")[0] for k in (1, 2)])
    with torch.inference_mode():
        est = model(torch.from_numpy(mix)[None])[0].double().numpy()
    return _scores(mix.astype(np.float64), refs, est, rate)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def _model_config(model_file: Path) -> dict | None:
    from ..cli import load_any_model

    model = load_any_model(str(model_file))
    return model.get_model_args() if hasattr(model, "get_model_args") else None


def prepare_recording(folder: Path, seconds: float, seed: int, rate: int = 8000) -> dict:
    """Build the recording in ``folder`` unless the same one is already there."""
    rec = build_long_recording(None, seconds, sample_rate=rate, seed=seed)
    wanted = rec.description()
    described = folder / DESCRIPTION_NAME
    present = all((folder / f"{n}.wav").is_file() for n in ("mix", "s1", "s2"))
    if present and described.is_file() and json.loads(described.read_text()) == wanted:
        return wanted
    rec.write(folder)
    return wanted


def write_prefix(src: Path, dst: Path, seconds: float, block_seconds: float = 60.0) -> float:
    """Copy the first ``seconds`` of ``src`` to ``dst`` (same format), block by block.

    Returns:
        The copied duration in seconds.
    """
    with sf.SoundFile(src) as reader:
        rate = reader.samplerate
        left = min(round(seconds * rate), reader.frames)
        with sf.SoundFile(
            dst, "w", samplerate=rate, channels=reader.channels, subtype=reader.subtype
        ) as writer:
            while left > 0:
                block = reader.read(min(left, round(block_seconds * rate)), dtype="int16")
                writer.write(block)
                left -= len(block)
        return min(round(seconds * rate), reader.frames) / rate


@contextmanager
def held(lock: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` in the block (None: no lock).

    A shared machine's heavy-job lock: only the timed run needs the machine to itself.
    """
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        print(f"waiting for the lock {lock} ...", file=sys.stderr)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(
    args: argparse.Namespace, save: Callable[[dict[str, Any]], Any] | None = None
) -> dict[str, Any]:
    """The study; returns the values of the result file.

    ``save`` receives the values so far after each part (the quality run, the full-size run), so
    that a full-size run stopped while waiting for the machine leaves the quality part written.
    """
    from ..io import save_model_file
    from ..models import TDANet

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    recording = prepare_recording(work / "recording", args.minutes * 60, args.seed)
    mix = work / "recording" / "mix.wav"
    runs: dict[str, Any] = {}

    quality: dict[str, Any] | None = None
    if args.quality_model is not None:
        print(f"separating with {args.quality_model} ...", file=sys.stderr)
        threads = args.quality_threads or args.threads
        measured = separate_measured(args.quality_model, mix, work / "quality", threads)
        runs["quality_model"] = {
            "model": str(args.quality_model),
            "threads": threads or torch.get_num_threads(),
            **run_figures(measured, recording["seconds"]),
        }
        scores = minute_scores(work / "recording", work / "quality", SEGMENT_SECONDS)
        whole = whole_first_segment(args.quality_model, work / "recording", SEGMENT_SECONDS)
        quality = {
            "model": str(args.quality_model),
            "model_config": _model_config(args.quality_model),
            "window_seconds": WINDOW_SECONDS,
            "first_minute": {
                "chunked_si_snr_imp": scores[0]["si_snr_imp"],
                "whole_si_snr_imp": whole["si_snr_imp"],
                "chunked_minus_whole": scores[0]["si_snr_imp"] - whole["si_snr_imp"],
                "chunked_windowed_si_snr_imp": scores[0]["windowed_si_snr_imp"],
                "whole_windowed_si_snr_imp": whole["windowed_si_snr_imp"],
                "windowed_chunked_minus_whole": scores[0]["windowed_si_snr_imp"]
                - whole["windowed_si_snr_imp"],
                "windows": whole["windows"],
            },
            "per_minute": _summary([score["si_snr_imp"] for score in scores]),
            "per_minute_windowed": _summary([score["windowed_si_snr_imp"] for score in scores]),
        }

    def values() -> dict[str, Any]:
        bars: dict[str, bool] = {}
        if "full_size_tdanet" in runs:
            full = runs["full_size_tdanet"]
            bars["peak_rss_at_most_1_gb"] = full["peak_rss_gb"] * 1e9 <= MAX_PEAK_RSS_BYTES
            if full["whole_recording"]:  # a shorter run says nothing about an hour's wall time
                bars["wall_at_most_30_minutes"] = full["wall_minutes"] <= MAX_WALL_MINUTES
        if quality is not None:
            # The bar is on the cost of chunking: a chunked result better than the whole-file
            # one (a model trained on short crops can do worse on a whole minute) passes.
            first = quality["first_minute"]
            for key, bar in (
                ("chunked_minus_whole", "first_minute_chunking_costs_at_most_0_5_db"),
                ("windowed_chunked_minus_whole", "first_minute_windowed_costs_at_most_0_5_db"),
            ):
                bars[bar] = first[key] >= -MAX_FIRST_MINUTE_COST_DB
        return {
            "recording": recording,
            "chunking": {
                "chunk_seconds": DEFAULT_CHUNK_SECONDS,
                "overlap_seconds": DEFAULT_OVERLAP_SECONDS,
            },
            "threads": args.threads or torch.get_num_threads(),
            "runs": runs,
            "quality": quality,
            "bars": bars,
        }

    if save is not None:
        save(values())
    if not args.skip_full:
        torch.manual_seed(0)
        full = work / "tdanet_full_random.pth"
        save_model_file(TDANet(n_src=2, sample_rate=8000), full)
        full_mix, seconds = mix, recording["seconds"]
        if args.full_minutes is not None and args.full_minutes * 60 < seconds:
            full_mix = work / "recording" / f"mix_first_{args.full_minutes:g}min.wav"
            seconds = write_prefix(mix, full_mix, args.full_minutes * 60)
        print("separating with the full-size TDANet (random weights) ...", file=sys.stderr)
        with held(args.lock):
            measured = separate_measured(full, full_mix, work / "full", args.threads)
        runs["full_size_tdanet"] = {
            "model": "TDANet full size (C=128, N=512, B=16, D=5, 4 ms kernel, 8 heads), 8 kHz, "
            "random weights (seed 0)",
            "input": full_mix.name,
            "audio_seconds": seconds,
            "whole_recording": seconds == recording["seconds"],
            "threads": args.threads or torch.get_num_threads(),
            **run_figures(measured, seconds),
        }

    return values()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asteroid_tdanet.studies.long_audio", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quality-model", type=Path, help="trained model file (quality)")
    parser.add_argument("--out", type=Path, default=Path("results/long-audio.json"))
    parser.add_argument("--work", type=Path, default=Path("exp/studies/long_audio"))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the runs")
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size run")
    parser.add_argument(
        "--full-minutes",
        type=float,
        default=None,
        help="run the full-size model on this many first minutes only (default: all)",
    )
    parser.add_argument(
        "--quality-threads", type=int, default=None, help="threads of the quality run"
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="flock this file during the timed full-size run (a shared machine's heavy-job lock)",
    )
    args = parser.parse_args(argv)
    if args.quality_model is not None and not args.quality_model.is_file():
        parser.error(f"--quality-model {args.quality_model}: no such file (run `make demo`)")

    from ..provenance import provenance, write_result

    header = provenance(COMMAND)  # taken before measuring: the code that ran
    arguments = list(sys.argv[1:] if argv is None else argv)

    def save(values: dict[str, Any]) -> None:
        path = write_result(args.out, {"arguments": arguments, **values}, header)
        print(f"wrote {path}", file=sys.stderr)

    save(run(args, save))
    return 0


if __name__ == "__main__":
    sys.exit(main())
