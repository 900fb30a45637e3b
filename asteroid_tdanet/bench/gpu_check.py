"""``make gpu-check``: TDANet's GPU figures in one command, on one CUDA GPU, in at most 8 minutes.

Writes ``results/gpu-<card>.json`` (provenance header, then one entry per case) and prints a
table. The cases (:func:`plan_cases`), in the order they run:

1. inference latency and peak memory, batch 1, 1 s and 60 s at 16 kHz, fp32, for TDANet (4 ms)
   and TDANet Large (2 ms);
2. the training step (forward, PIT SI-SDR loss, backward, Adam) of TDANet at 8 kHz and TDANet
   Large at 16 kHz, batch 4 x 3 s, in fp32 and bf16-mixed, with and without
   ``checkpoint_blocks``, eager first, then with ``masker.compile_block()``.

Every case has a time estimate (a first guess per category, then the longest case of its
category so far); a case that would not fit in what is left of the budget is recorded as skipped
(with the reason) instead of run, and a case still running at the deadline is stopped. Compiled
cases run last: compilation is the least predictable cost. The result file is rewritten after
every case, so an interrupted run keeps what it measured. Without a CUDA GPU it stops at once
with a message and writes nothing.

Examples:
    make gpu-check
    python -m asteroid_tdanet.bench.gpu_check --out-dir results --budget-minutes 8
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

COMMAND = "make gpu-check"
BUDGET_SECONDS = 8 * 60
# Kept back from the budget for start-up (CUDA, models) and writing the results.
RESERVE_SECONDS = 30.0
# Timed runs per case (at most), and how long the timed runs of one case may take.
REPEATS = 10
WARMUP = 3
MAX_TIMED_SECONDS = 10.0
# First guesses of a case's wall time (warm-up, compilation, timed runs), by category; replaced by
# the longest measured case of the category once one has run.
FIRST_ESTIMATES = {"inference": 15.0, "train-eager": 25.0, "train-compiled": 90.0}

MODELS = {"tdanet": 4.0, "tdanet_large": 2.0}  # name -> encoder kernel (ms)
PRECISIONS = {"fp32": "fp32", "bf16-mixed": "bf16"}  # our name -> bench.gpu dtype


class GpuUnavailable(RuntimeError):
    """No CUDA GPU: the check cannot run here."""


@dataclass(frozen=True)
class Case:
    """One measurement of the GPU check.

    Attributes:
        task: ``inference`` or ``train``.
        model: ``tdanet`` or ``tdanet_large``.
        sample_rate: Hz.
        seconds: Input duration (per item).
        batch_size: Items.
        precision: ``fp32`` or ``bf16-mixed``.
        compiled: ``masker.compile_block()`` applied.
        checkpoint: ``checkpoint_blocks=True``.
    """

    task: str
    model: str
    sample_rate: int
    seconds: float
    batch_size: int
    precision: str
    compiled: bool = False
    checkpoint: bool = False

    @property
    def key(self) -> str:
        """A name usable as a JSON key path part, e.g. ``train.tdanet.8k.bf16-mixed.eager.ckpt``."""
        parts = [self.task, self.model, f"{self.sample_rate // 1000}k"]
        if self.task == "inference":
            parts.append(f"{self.seconds:g}s")
        parts.append(self.precision)
        if self.task == "train":
            parts += [
                "compiled" if self.compiled else "eager",
                "ckpt" if self.checkpoint else "plain",
            ]
        return ".".join(parts)

    @property
    def category(self) -> str:
        """Budget category (see ``FIRST_ESTIMATES``)."""
        if self.task == "inference":
            return "inference"
        return "train-compiled" if self.compiled else "train-eager"


def plan_cases() -> list[Case]:
    """Every case of the check, in the order they run (cheap and most wanted first)."""
    cases = [
        Case("inference", model, 16000, seconds, 1, "fp32")
        for model in MODELS
        for seconds in (1.0, 60.0)
    ]
    train = {"tdanet": 8000, "tdanet_large": 16000}
    for compiled in (False, True):
        for model, rate in train.items():
            for precision in PRECISIONS:
                for checkpoint in (False, True):
                    cases.append(
                        Case("train", model, rate, 3.0, 4, precision, compiled, checkpoint)
                    )
    return cases


def card_slug(name: str) -> str:
    """A file-name-safe card name: ``NVIDIA H200`` -> ``nvidia-h200``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "unknown-gpu"


def check_cuda() -> str:
    """The GPU's name.

    Raises:
        GpuUnavailable: no CUDA device is visible (the message says what torch sees).
    """
    if not torch.cuda.is_available():
        build = torch.version.cuda
        raise GpuUnavailable(
            "make gpu-check needs one CUDA GPU, and torch "
            f"{torch.__version__} sees none (torch.cuda.is_available() is False; "
            + (f"torch is built for CUDA {build}" if build else "this torch has no CUDA support")
            + "). Run it on a machine with an NVIDIA GPU; nothing was measured or written."
        )
    return torch.cuda.get_device_name(0)


class Budget:
    """Wall-time budget of the check: what is left, and whether a case fits.

    Args:
        seconds: The whole budget.
        clock: Monotonic clock (injectable for tests).
        reserve: Seconds kept back for writing results.
    """

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        reserve: float = RESERVE_SECONDS,
    ) -> None:
        self.seconds, self.clock, self.reserve = seconds, clock, reserve
        self.start = clock()
        self.spent: dict[str, list[float]] = {}

    def left(self) -> float:
        """Seconds left before the deadline (reserve excluded)."""
        return self.seconds - self.reserve - (self.clock() - self.start)

    def estimate(self, case: Case) -> float:
        """Expected wall time of ``case``: the longest of its category so far, or a first guess."""
        seen = self.spent.get(case.category)
        return max(seen) if seen else FIRST_ESTIMATES[case.category]

    def record(self, case: Case, seconds: float) -> None:
        self.spent.setdefault(case.category, []).append(seconds)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block after ``seconds`` (SIGALRM; main thread, Unix)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"stopped at the time budget ({seconds:.0f} s left when it started)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cases(
    cases: Sequence[Case],
    measure: Callable[[Case], dict[str, Any]],
    budget: Budget,
    on_result: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    supports_bf16: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run ``cases`` in order within ``budget``; every case gets an entry, run or not.

    Args:
        cases: From :func:`plan_cases`.
        measure: Measures one case; returns its figures (an exception marks the case failed).
        budget: The time budget.
        on_result: Called with all entries so far after each case (to save them).
        supports_bf16: Whether the GPU does bf16 (bf16 cases are skipped otherwise).

    Returns:
        Entries by case key, in plan order: the case's fields, ``status`` (``ok``, ``skipped``
        or ``error``), ``wall_seconds`` and the figures, or ``reason``.
    """
    entries: dict[str, dict[str, Any]] = {}
    for case in cases:
        entry: dict[str, Any] = asdict(case)
        left, needed = budget.left(), budget.estimate(case)
        if case.precision != "fp32" and not supports_bf16:
            entry.update(status="skipped", reason="this GPU has no bf16 support")
        elif needed > left:
            entry.update(
                status="skipped",
                reason=f"time budget: {max(left, 0):.0f} s left, this case takes ~{needed:.0f} s",
            )
        else:
            start = budget.clock()
            try:
                with deadline(left):
                    figures = measure(case)
            except Exception as err:  # one failed case (OOM, compile error) must not end the run
                message = str(err).strip().splitlines()[0] if str(err).strip() else ""
                entry.update(status="error", reason=f"{type(err).__name__}: {message}"[:300])
            else:
                entry.update(status="ok", **figures)
            entry["wall_seconds"] = budget.clock() - start
            budget.record(case, entry["wall_seconds"])
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        entries[case.key] = entry
        if on_result is not None:
            on_result(entries)
    return entries


def build(case: Case, tiny: bool = False) -> torch.nn.Module:
    """The model of ``case`` (full size; ``tiny`` for tests), random weights, seed 0."""
    from ..models import TDANet

    torch.manual_seed(0)
    size = dict(bn_chan=16, hid_chan=32, n_blocks=2, upsampling_depth=3) if tiny else {}
    return TDANet(
        n_src=2,
        sample_rate=case.sample_rate,
        enc_kernel_ms=MODELS[case.model],
        checkpoint_blocks=case.checkpoint,
        **size,
    )


def measure_case(
    case: Case,
    device: str = "cuda",
    tiny: bool = False,
    repeats: int = REPEATS,
    warmup: int = WARMUP,
) -> dict[str, Any]:
    """Time and peak memory of one case (``bench.gpu``); milliseconds and MiB.

    ``device="cpu"``, ``tiny`` and fewer repeats are for tests (no memory figures off CUDA).
    """
    from .gpu import inference_latency, train_step_time

    model = build(case, tiny)
    dtype = PRECISIONS[case.precision]

    def prepare(net: torch.nn.Module) -> None:
        if case.compiled:
            net.masker.compile_block()

    common = dict(
        device=device,
        dtype=dtype,
        repeats=repeats,
        warmup=warmup,
        prepare=prepare,
        max_seconds=MAX_TIMED_SECONDS,
    )
    if case.task == "inference":
        row = inference_latency(model, case.sample_rate, case.seconds, **common)
    else:
        row = train_step_time(model, case.sample_rate, case.batch_size, case.seconds, **common)
    peak = row["peak_bytes"]
    return {
        "median_ms": 1000 * row["median_s"],
        "q1_ms": 1000 * row["q1_s"],
        "q3_ms": 1000 * row["q3_s"],
        "runs": row["n"],
        "peak_memory_mb": None if peak is None else peak / 2**20,
    }


def format_report(entries: dict[str, dict[str, Any]], card: str) -> str:
    """The results as a Markdown table."""
    lines = [
        f"# GPU check: {card}",
        "",
        "| case | median | q1-q3 | peak memory | status |",
        "|---|---:|---:|---:|---|",
    ]
    for key, e in entries.items():
        if e["status"] == "ok":
            peak = "-" if e.get("peak_memory_mb") is None else f"{e['peak_memory_mb']:,.0f} MiB"
            lines.append(
                f"| {key} | {e['median_ms']:.1f} ms | {e['q1_ms']:.1f}-{e['q3_ms']:.1f} ms "
                f"| {peak} | ok ({e['runs']} runs) |"
            )
        else:
            lines.append(f"| {key} | - | - | - | {e['status']}: {e['reason']} |")
    done = [e for e in entries.values() if e["status"] == "ok"]
    lines += ["", f"{len(done)} of {len(entries)} cases measured."]
    if done:
        lines.append(
            f"median wall time per case: {statistics.median(e['wall_seconds'] for e in done):.0f} s"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make gpu-check``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m asteroid_tdanet.bench.gpu_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    parser.add_argument("--budget-minutes", type=float, default=BUDGET_SECONDS / 60)
    args = parser.parse_args(argv)
    try:
        card = check_cuda()
    except GpuUnavailable as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 2

    from ..provenance import provenance, write_result

    header = provenance(COMMAND)  # taken before measuring: the code that ran
    budget = Budget(args.budget_minutes * 60)
    path = args.out_dir / f"gpu-{card_slug(card)}.json"
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    torch.backends.cudnn.allow_tf32 = False

    def save(entries: dict[str, dict[str, Any]]) -> None:
        values = {
            "card": card,
            "cuda": torch.version.cuda,
            "budget_seconds": budget.seconds,
            "elapsed_seconds": budget.clock() - budget.start,
            "settings": {
                "repeats": REPEATS,
                "warmup": WARMUP,
                "max_timed_seconds": MAX_TIMED_SECONDS,
                "weights": "random (seed 0), full-size models",
                "tf32": False,
            },
            "cases": entries,
        }
        write_result(path, values, header)

    def measure(case: Case) -> dict[str, Any]:
        print(f"gpu-check: {case.key} ...", file=sys.stderr, flush=True)
        return measure_case(case)

    entries = run_cases(
        plan_cases(),
        measure,
        budget,
        on_result=save,
        supports_bf16=torch.cuda.is_bf16_supported(),
    )
    print(format_report(entries, card))
    print(f"gpu-check: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
