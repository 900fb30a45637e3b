"""CPU inference speed of TDANet against its baselines, side by side: ``make results-cpu-speed``.

Every model of ``tdanet-bench`` (plus TDANet with its fast path switched off, to show what the
fast path buys) is timed interleaved in one process with ``tdanet-bench``'s own timing code
(batch 1, eval and inference mode, warm-up, median of interleaved rounds), for every thread count
and input duration asked for. Then, each in a fresh Python process as a user running the CLI once
per file would see it, TDANet's first call on a new input length against its steady-state time,
and TDANet alone at 1 and 2 threads in blocks through one process, with a large matrix product
as the control (whether a second thread's gain holds steady; on virtual machines it depends on
how the host places the two cores, which can change while a process runs).

Writes one result file (``asteroid_tdanet.provenance``) with the medians, the ratios the
efficiency issue sets targets for, params and MACs (per second of audio, plain modules), and the
load average before and after (a loaded machine makes times rough). Figures are kept per host
kind under ``hosts``, keyed by the CPU's identity (model, family/model numbers, AVX-512 or not,
cores, and the instruction set a run was limited to), each entry with its own date, commit and
machine: a run on another CPU adds its entries and keeps those of the CPUs measured before.
On an AVX-512 CPU the study also measures it limited to AVX2 (its AVX-512 code paths disabled).

Usage: ``python -m asteroid_tdanet.bench.cpu_speed --out results/cpu-speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import torch

from asteroid_tdanet import fast, kernels, native
from asteroid_tdanet.provenance import (
    cpu_identity,
    host_key,
    hosts_of,
    provenance,
    read_result,
    write_result,
)
from asteroid_tdanet.runtime import configure_cpu_process

from .macs import count_macs_detailed, count_params
from .timing import num_threads, summarize, time_interleaved
from .zoo import MODEL_NAMES, build_model

__all__ = [
    "gemm_rates",
    "main",
    "measure_first_call",
    "measure_thread_scaling",
    "paired_ratios",
    "ratios",
    "scaling_summary",
    "time_models",
    "verdict",
]

# The targets: (numerator, denominator, largest allowed ratio).
TARGETS = {
    "tdanet_vs_convtasnet": ("tdanet", "convtasnet", 0.9),
    "tdanet_vs_look2hear_reference": ("tdanet", "look2hear_reference", 0.22),
    "tdanet_vs_sepformer": ("tdanet", "sepformer", 0.08),
    "tdanet_large_vs_look2hear_reference": ("tdanet_large", "look2hear_reference", 0.4),
    "tdanet_vs_tdanet_plain": ("tdanet", "tdanet_plain", None),
    "tdanet_large_vs_tdanet_large_plain": ("tdanet_large", "tdanet_large_plain", None),
    "tdanet_vs_tdanet_mkl": ("tdanet", "tdanet_mkl", None),
    "tdanet_vs_tdanet_torchops": ("tdanet", "tdanet_torchops", None),
    "tdanet_vs_tdanet_calls": ("tdanet", "tdanet_calls", None),
}
# Suffixes of variants: PLAIN = the plain modules with MKL's matrix products (the eager model
# before any fast path); MKL = the fast path with MKL's instead of oneDNN's matrix products;
# TORCHOPS = the fast path with torch's operations instead of the fused kernels; CALLS = the
# fast path with the fused kernels called one by one from Python instead of from a recording.
PLAIN = "_plain"
MKL = "_mkl"
TORCHOPS = "_torchops"
CALLS = "_calls"
VARIANTS = (PLAIN, MKL, TORCHOPS, CALLS)
# The speed goals are stated at 8 kHz; runs at another rate are kept as entries of their own.
DEFAULT_SAMPLE_RATE = 8000


def _base(name: str) -> str:
    for suffix in VARIANTS:
        name = name.removesuffix(suffix)
    return name


def _log(message: str) -> None:
    print(f"[cpu-speed] {message}", file=sys.stderr, flush=True)


def _runner(model: torch.nn.Module, wav: torch.Tensor, variant: str):
    def run() -> torch.Tensor:
        with (
            fast.fast_path(variant != PLAIN),
            kernels.onednn_linear(variant not in (PLAIN, MKL)),
            native.native_kernels(variant not in (PLAIN, TORCHOPS)),
            fast.kernel_programs(variant != CALLS),
        ):
            return model(wav)

    return run


# Inputs of at most this many seconds get ``short_repeats`` rounds: a round is quick, and the
# goals are stated at 1 s, where a few rounds leave ratios a few hundredths apart between runs.
SHORT_INPUT_S = 1.0


def time_models(
    names: Sequence[str],
    sample_rate: int,
    seconds: Sequence[float],
    threads: Sequence[int],
    repeats: int,
    warmup: int,
    tiny: bool = False,
    short_repeats: int | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Median times of the models, interleaved, per ``t<threads>_<seconds>s`` setting.

    A name ending in ``_plain`` is that model's plain modules with MKL's matrix products; one
    ending in ``_mkl`` is its fast path with MKL's matrix products.

    Args:
        short_repeats: Rounds for inputs of at most :data:`SHORT_INPUT_S` (``None``:
            ``repeats``).

    Returns:
        ``{setting: {name: {"median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "rtf", "n",
        "rounds_ms"}}}``; ``rounds_ms`` holds the time of each round, in round order (round
        ``r`` of every model ran back to back, see :func:`ratios`).
    """
    models = {name: build_model(_base(name), sample_rate, tiny=tiny) for name in names}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for count in threads:
        for duration in seconds:
            wav = torch.randn(
                1, int(round(duration * sample_rate)), generator=torch.Generator().manual_seed(0)
            )
            runners = {
                name: _runner(model, wav, name.removeprefix(_base(name)))
                for name, model in models.items()
            }
            setting = f"t{count}_{duration:g}s"
            rounds = repeats
            if short_repeats is not None and duration <= SHORT_INPUT_S:
                rounds = short_repeats
            _log(f"{setting}: {len(runners)} models x ({warmup} warm-up + {rounds} rounds)")
            with num_threads(count):
                times = time_interleaved(runners, repeats=rounds, warmup=warmup)
            out[setting] = {}
            for name, values in times.items():
                stats = summarize(values, duration)
                out[setting][name] = {
                    "median_ms": 1e3 * stats.median_s,
                    "q1_ms": 1e3 * stats.q1_s,
                    "q3_ms": 1e3 * stats.q3_s,
                    "min_ms": 1e3 * stats.min_s,
                    "max_ms": 1e3 * stats.max_s,
                    "rtf": stats.rtf,
                    "n": stats.n,
                    "rounds_ms": [1e3 * value for value in values],
                }
    return out


# TDANet with 2 threads against 1 thread, same input duration: at most this ratio.
THREAD_TARGET = 0.65


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """The ratio of two models' times round by round (each round ran both back to back, so the
    load of that moment hits both): the median and quartiles over rounds."""
    if not numerator or len(numerator) != len(denominator):
        raise ValueError(
            f"paired ratios need the same rounds of both models, got {len(numerator)} "
            f"and {len(denominator)}"
        )
    values = sorted(a / b for a, b in zip(numerator, denominator, strict=True))
    q1, median, q3 = (
        statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    )
    return {"q1": q1, "median": median, "q3": q3}


# The fewest rounds whose paired ratios get a verdict.
VERDICT_ROUNDS = 5


def verdict(spread: dict[str, float], limit: float) -> str:
    """``met`` if even the third quartile of the paired ratios is within ``limit``, ``not met``
    if even the first quartile is above it, else ``within noise``."""
    if spread["q3"] <= limit:
        return "met"
    if spread["q1"] > limit:
        return "not met"
    return "within noise"


def ratios(timings: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The target ratios of median times per setting, and whether each target is met.

    ``<ratio>`` is the ratio of the two medians (as the targets are stated) and ``<ratio>_met``
    compares it with the target. Where both rows have their rounds (``rounds_ms``),
    ``<ratio>_paired`` gives the quartiles of the round-by-round ratios, and
    ``<ratio>_verdict`` (:func:`verdict`) says whether the target holds beyond the run's noise.
    Settings with 2 threads also get ``tdanet_vs_tdanet_1_thread`` (same duration).
    """
    out: dict[str, dict[str, Any]] = {}
    for setting, rows in timings.items():
        single = timings.get("t1_" + setting.split("_", 1)[1], {})
        if setting.startswith("t2_") and "tdanet" in rows and "tdanet" in single:
            value = rows["tdanet"]["median_ms"] / single["tdanet"]["median_ms"]
            out[setting] = {
                "tdanet_vs_tdanet_1_thread": value,
                "tdanet_vs_tdanet_1_thread_target": THREAD_TARGET,
                "tdanet_vs_tdanet_1_thread_met": value <= THREAD_TARGET,
            }
    for setting, rows in timings.items():
        out.setdefault(setting, {})
        for key, (num, den, limit) in TARGETS.items():
            if num in rows and den in rows:
                value = rows[num]["median_ms"] / rows[den]["median_ms"]
                out[setting][key] = value
                paired = None
                if "rounds_ms" in rows[num] and "rounds_ms" in rows[den]:
                    paired = paired_ratios(rows[num]["rounds_ms"], rows[den]["rounds_ms"])
                    out[setting][f"{key}_paired"] = paired
                if limit is not None:
                    out[setting][f"{key}_target"] = limit
                    out[setting][f"{key}_met"] = value <= limit
                    # (Quartiles of fewer rounds say nothing of the noise.)
                    if paired is not None and len(rows[num]["rounds_ms"]) >= VERDICT_ROUNDS:
                        out[setting][f"{key}_verdict"] = verdict(paired, limit)
    return out


_FIRST_CALL = """
import json, sys, time, torch
from asteroid_tdanet.bench.zoo import build_model
from asteroid_tdanet.runtime import flush_denormals, reuse_freed_memory
flush_denormals()
if {reuse_memory}:
    reuse_freed_memory()
torch.set_num_threads({threads})
model = build_model({name!r}, {sample_rate}, tiny={tiny})
wav = torch.randn(1, {samples}, generator=torch.Generator().manual_seed(0))
times = []
with torch.inference_mode():
    for _ in range({repeats} + 1):
        start = time.perf_counter()
        model(wav)
        times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _run_fresh(code: str, what: str) -> Any:
    """Run ``code`` in a fresh Python process; return the JSON its last output line holds."""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    if run.returncode:
        raise RuntimeError(f"{what} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure_first_call(
    name: str,
    sample_rate: int,
    seconds: float,
    threads: int,
    repeats: int,
    tiny: bool = False,
    reuse_memory: bool = True,
) -> dict[str, Any]:
    """First call on a new length, in a fresh process, against the median of the next calls.

    The process is set up as ``tdanet-separate`` sets itself up (``reuse_memory``: glibc keeps
    freed memory for reuse; ``False``: glibc's defaults, as in a user's own script).
    """
    code = _FIRST_CALL.format(
        reuse_memory=reuse_memory,
        name=name,
        sample_rate=sample_rate,
        tiny=tiny,
        threads=threads,
        samples=int(round(seconds * sample_rate)),
        repeats=repeats,
    )
    times = _run_fresh(code, f"first-call run of {name} on {seconds:g} s")
    steady = summarize(times[1:], seconds)
    return {
        "first_s": times[0],
        "steady_median_s": steady.median_s,
        "first_minus_steady_s": times[0] - steady.median_s,
        "steady_runs": len(times) - 1,
    }


# TDANet alone in a fresh process, timed at 1 and 2 threads in alternating blocks, with a large
# matrix product timed the same way as a control: whether the second core delivers at all, and
# whether TDANet's 2-thread time holds steady through the run.
_THREAD_SCALING = """
import json, time, torch
from asteroid_tdanet.bench.zoo import build_model
from asteroid_tdanet.runtime import configure_cpu_process
configure_cpu_process()
generator = torch.Generator().manual_seed(0)
model = build_model("tdanet", {sample_rate}, tiny={tiny})
wav = torch.randn(1, {samples}, generator=generator)
square = torch.randn({gemm_size}, {gemm_size}, generator=generator)

def median_ms(run):
    times = []
    for _ in range({calls}):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]

blocks = []
with torch.inference_mode():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model(wav), model(wav), square @ square
    for _ in range({blocks}):
        row = {{}}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row[f"tdanet_t{{threads}}_ms"] = median_ms(lambda: model(wav))
            row[f"gemm_t{{threads}}_ms"] = median_ms(lambda: square @ square)
        blocks.append(row)
print(json.dumps(blocks))
"""
# The control's size: a 1024 x 1024 x 1024 product (~20 ms on one core) splits evenly across cores.
SCALING_GEMM_SIZE = 1024


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def scaling_summary(blocks: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Per-block 2-thread / 1-thread time ratios of TDANet and of the control, and their spread.

    Args:
        blocks: One dict per block with ``tdanet_t1_ms``, ``tdanet_t2_ms``, ``gemm_t1_ms``,
            ``gemm_t2_ms`` (medians of that block's calls).

    Returns:
        ``{"blocks": n, "tdanet_t2_over_t1": {...}, "gemm_t2_over_t1": {...}}``, each spread
        being the ``min``, ``median`` and ``max`` over blocks.
    """
    if not blocks:
        raise ValueError("no thread-scaling blocks to summarize")
    out: dict[str, Any] = {"blocks": len(blocks)}
    for name in ("tdanet", "gemm"):
        ratios_ = [row[f"{name}_t2_ms"] / row[f"{name}_t1_ms"] for row in blocks]
        out[f"{name}_t2_over_t1"] = _spread(ratios_)
    return out


def measure_thread_scaling(
    sample_rate: int, seconds: float, blocks: int, calls: int = 5, tiny: bool = False
) -> dict[str, Any]:
    """TDANet's 2-thread against 1-thread time, alone in a fresh process, block by block.

    Each block times ``calls`` runs of TDANet and of a large matrix product (the control) at 1
    and then at 2 threads and keeps the medians; the blocks follow each other for the whole run,
    so a time that changes during the run shows as a spread of the per-block ratios.

    Returns:
        ``{"seconds", "calls_per_block", "gemm_size", "blocks": [...], "summary": {...}}``
        (:func:`scaling_summary`).
    """
    gemm_size = 128 if tiny else SCALING_GEMM_SIZE
    code = _THREAD_SCALING.format(
        sample_rate=sample_rate,
        tiny=tiny,
        samples=int(round(seconds * sample_rate)),
        gemm_size=gemm_size,
        calls=calls,
        blocks=blocks,
    )
    rows = _run_fresh(code, f"thread-scaling run of tdanet on {seconds:g} s")
    return {
        "seconds": seconds,
        "calls_per_block": calls,
        "gemm_size": gemm_size,
        "blocks": rows,
        "summary": scaling_summary(rows),
    }


# TDANet's kinds of matrix product at 1 s of 8 kHz audio (4 ms kernel: 1010 frames, 64 at the
# coarsest scale): the U-block's 1x1 projections, the attention's input projection and the
# coarsest scale's feed-forward products.
GEMM_SHAPES = {
    "projection_1010x128x512": (1010, 128, 512),
    "attention_64x512x1536": (64, 512, 1536),
    "feed_forward_64x512x1024": (64, 512, 1024),
}


def _product(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, kernel: str):
    # The kernels themselves: kernels.linear would send the product to its measured choice.
    if kernel == kernels.ONEDNN:
        return lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    if kernel == kernels.MKL_TRANSPOSED:
        transposed = w.t().contiguous()
        return lambda: torch.addmm(b, x, transposed)
    return lambda: torch.nn.functional.linear(x, w, b)


def gemm_rates(repeats: int = 21) -> dict[str, dict[str, float]]:
    """GMAC/s of each matrix-product kernel (``kernels``) on TDANet's shapes, 1 thread.

    Returns:
        ``{shape: {"mkl_gmacs": ..., "mkl_transposed_gmacs": ..., "onednn_gmacs": ...,
        "mkl_transposed_vs_mkl": ..., "onednn_vs_mkl": ...}}`` (GMAC/s, and each kernel's rate
        over ``F.linear``'s); the oneDNN figures are absent where this torch build has no
        oneDNN matmul.
    """
    out: dict[str, dict[str, float]] = {}
    generator = torch.Generator().manual_seed(0)
    for name, (rows, inner, cols) in GEMM_SHAPES.items():
        x = torch.randn(rows, inner, generator=generator)
        w = torch.randn(cols, inner, generator=generator)
        b = torch.randn(cols, generator=generator)

        names = [kernels.MKL, kernels.MKL_TRANSPOSED]
        names += [kernels.ONEDNN] if kernels.onednn_linear_available() else []
        runners = {name: _product(x, w, b, name) for name in names}
        with num_threads(1):
            times = time_interleaved(runners, repeats=repeats, warmup=3)
        macs = rows * inner * cols
        out[name] = {
            f"{kind}_gmacs": macs / summarize(values, 1.0).median_s / 1e9
            for kind, values in times.items()
        }
        for kind in names[1:]:
            out[name][f"{kind}_vs_mkl"] = out[name][f"{kind}_gmacs"] / out[name]["mkl_gmacs"]
    return out


def model_sizes(names: Sequence[str], sample_rate: int, tiny: bool = False) -> dict[str, Any]:
    """Params and MACs per second of audio (FlopCounterMode on 1 s, plain modules)."""
    wav = torch.randn(1, sample_rate, generator=torch.Generator().manual_seed(0))
    out = {}
    for name in names:
        model = build_model(name, sample_rate, tiny=tiny)
        # The model's MACs as defined (the plain modules), not those of a particular fast path.
        with fast.fast_path(False):
            macs = count_macs_detailed(model, wav).macs
        out[name] = {"params_m": count_params(model) / 1e6, "gmacs_per_s": macs / 1e9}
    return out


def _number(text: str, kind: type, least: float, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not value >= least:  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _at_least(least: int):
    """An argparse type: an integer ``>= least``."""
    what = "a positive integer" if least == 1 else f"an integer >= {least}"
    return lambda text: _number(text, int, least, what)


def _positive_float(text: str) -> float:
    value = _number(text, float, 0.0, "a positive number of seconds")
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _floats(text: str) -> list[float]:
    """A comma-separated list of positive durations (seconds)."""
    return [_positive_float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    """A comma-separated list of thread counts (>= 1)."""
    return [_at_least(1)(v) for v in text.split(",") if v.strip()]


def _hosts(text: str) -> list[str]:
    """A comma-separated list of host kinds this CPU can be measured as."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [name for name in names if name not in HOSTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: host kinds are {', '.join(HOSTS)} (comma-separated)"
        )
    unavailable = [name for name in names if name not in host_kinds()]
    if unavailable:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unavailable)}: this CPU has no AVX-512 code paths to disable "
            f"(measure it as {', '.join(host_kinds())})"
        )
    return names


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m asteroid_tdanet.bench.cpu_speed", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", required=True, help="result file (JSON)")
    p.add_argument("--sample-rate", type=_at_least(1), default=DEFAULT_SAMPLE_RATE)
    p.add_argument("--seconds", type=_floats, default=[1.0, 4.0])
    p.add_argument("--threads", type=_ints, default=[1, 2])
    p.add_argument("--repeats", type=_at_least(1), default=5, help="timed rounds (>= 1)")
    p.add_argument(
        "--short-repeats",
        type=_at_least(1),
        default=15,
        help=f"timed rounds for inputs of at most {SHORT_INPUT_S:g} s (>= 1)",
    )
    p.add_argument(
        "--warmup",
        type=_at_least(0),
        default=3,
        help="untimed rounds first (TDANet measures its matrix-product kernels in its first 3)",
    )
    p.add_argument(
        "--first-call-seconds",
        type=_floats,
        default=[1.0, 60.0],
        help="input durations of the first-call runs (an empty string skips them)",
    )
    p.add_argument(
        "--first-call-repeats",
        type=_at_least(1),
        default=2,
        help="steady-state calls after the first one (>= 1: the first call is compared to them)",
    )
    p.add_argument(
        "--scaling-blocks",
        type=_at_least(0),
        default=20,
        help="blocks of TDANet alone at 1 and 2 threads in a fresh process (0 skips them; "
        "run only when --threads has 1 and 2)",
    )
    p.add_argument("--tiny", action="store_true", help="tiny configs (tests only)")
    p.add_argument(
        "--hosts",
        type=_hosts,
        default=None,
        help=f"host kinds to measure, each in a fresh process (of {', '.join(HOSTS)}; "
        "default: native, and avx2_limited on an AVX-512 CPU)",
    )
    p.add_argument("--host-run", choices=list(HOSTS), help=argparse.SUPPRESS)
    p.add_argument(
        "--command", default="make results-cpu-speed", help="recorded regeneration command"
    )
    args = p.parse_args(argv)
    if args.hosts is None:
        args.hosts = host_kinds()
    if not args.seconds:
        p.error("--seconds: give at least one input duration")
    if not args.threads:
        p.error("--threads: give at least one thread count")
    durations = [("--seconds", s) for s in args.seconds]
    durations += [("--first-call-seconds", s) for s in args.first_call_seconds]
    for option, seconds in durations:
        if round(seconds * args.sample_rate) < 1:
            p.error(f"{option}: {seconds:g} s at {args.sample_rate} Hz is less than one sample")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        p.error(f"--out: folder {folder} does not exist")
    return args


# Host kinds a machine can be measured as: the CPU as it is, and (on an AVX-512 CPU) limited to
# AVX2: AVX-512 code paths of oneDNN, MKL and ATen switched off by their environment variables,
# which are read when torch loads, so each host kind runs in a fresh process.
HOSTS = {
    "native": {},
    "avx2_limited": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        # The fused kernels are compiled for the host at first use: for AVX2 (and FMA) here.
        "TDANET_KERNEL_ARCH": "x86-64-v3",
    },
}
AVX2_NOTE = (
    "measured on this (AVX-512) CPU with its AVX-512 code paths disabled (the isa_limits "
    "environment variables, set before torch is imported, in a fresh process); a real "
    "AVX2-only CPU such as AMD Zen 2 differs in clock, cache and memory bandwidth, so its times "
    "differ, and its ratios may too"
)


# The ISA each host kind is limited to, as host keys name it (None: the CPU as it is).
LIMITED_TO = {
    kind: limits["ONEDNN_MAX_CPU_ISA"] if limits else None for kind, limits in HOSTS.items()
}


def entry_key(machine: dict[str, Any], kind: str, sample_rate: int) -> str:
    """The ``hosts`` key of one run: the host kind, and the sample rate where it is not 8 kHz
    (the rate the speed goals are stated at), so a 16 kHz pass adds entries beside them."""
    rate = "" if sample_rate == DEFAULT_SAMPLE_RATE else f", {sample_rate / 1000:g} kHz"
    return host_key(machine, LIMITED_TO[kind]) + rate


def host_kinds(flags: Sequence[str] | None = None) -> list[str]:
    """The host kinds a CPU with these :data:`~asteroid_tdanet.provenance.SPEED_FLAGS` can be
    measured as (this CPU's by default): ``native``, plus ``avx2_limited`` with AVX-512."""
    if flags is None:
        flags = cpu_identity().get("flags", [])
    return ["native", "avx2_limited"] if "avx512f" in flags else ["native"]


def keyed_by_host(hosts: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    """Entries of a result file's ``hosts``, keyed by :func:`~asteroid_tdanet.provenance.host_key`.

    Entries written before figures were kept per CPU (keyed ``native``/``avx2_limited``, without
    their own date, commit and machine) take those of the file's header, which they were measured
    under, and are re-keyed by the CPU they recorded; entries already keyed are kept as they are.

    Args:
        hosts: The file's ``hosts``.
        header: The file's provenance header (``date``, ``commit``, ``machine``).
    """
    keyed = {}
    for key, entry in hosts.items():
        if key in HOSTS and isinstance(entry, dict):
            machine = {**header.get("machine", {}), "cpu_identity": entry["host"]["cpu"]}
            provenance_of = {name: header.get(name) for name in ("date", "commit")}
            entry = {**provenance_of, "machine": machine, **entry}
            key = host_key(machine, LIMITED_TO[key])
        keyed[key] = entry
    return keyed


def _previous(path: str) -> dict[str, Any]:
    """The per-host entries already in result file ``path``, keyed by host."""
    result = read_result(path)
    return keyed_by_host(hosts_of(result), result)


def _host(name: str) -> dict[str, Any]:
    limits = HOSTS[name]
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    host = {"cpu": cpu_identity(), "isa_limits": limits, "aten_cpu_capability": capability}
    host["measured_as"] = AVX2_NOTE if limits else "the CPU as it is (no ISA limits)"
    return host


def _run_host(name: str, argv: Sequence[str]) -> dict[str, Any]:
    """One host kind's measurement, in a fresh process with that kind's ISA limits."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "host.json")
        env = {**os.environ, **HOSTS[name]}
        command = [sys.executable, "-m", "asteroid_tdanet.bench.cpu_speed", *argv]
        command += ["--out", out, "--host-run", name]
        _log(f"host kind {name}: {HOSTS[name] or 'no ISA limits'}")
        subprocess.run(command, env=env, check=True)
        with open(out) as f:
            return json.load(f)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if args.host_run is None:
        header = provenance(args.command)  # taken before measuring: the code that ran
        started = time.time()
        load_before = os.getloadavg()
        passed = _without_out(argv)
        stamp = {field: header[field] for field in ("date", "commit", "machine")}
        measured = {}
        for name in args.hosts:
            key = entry_key(header["machine"], name, args.sample_rate)
            measured[key] = {**stamp, **_run_host(name, passed)}
        values = {
            "measured_now": list(measured),
            "hosts": {**_previous(args.out), **measured},
            "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
            "wall_s": time.time() - started,
        }
        write_result(args.out, values, header)
        _log(f"wrote {args.out}")
        summary = {key: host["ratios"] for key, host in measured.items()}
        print(json.dumps(summary, indent=1))
        return 0

    load_before = os.getloadavg()
    started = time.time()
    # As tdanet-separate does; process-wide, so every model is timed under the same setting.
    configure_cpu_process()
    names = list(MODEL_NAMES)
    sizes = model_sizes(names, args.sample_rate, args.tiny)
    variants = ["tdanet" + PLAIN, "tdanet_large" + PLAIN, "tdanet" + MKL, "tdanet" + TORCHOPS]
    timed = names + variants + ["tdanet" + CALLS]
    timings = time_models(
        timed,
        args.sample_rate,
        args.seconds,
        args.threads,
        args.repeats,
        args.warmup,
        args.tiny,
        args.short_repeats,
    )
    thread_scaling = None
    if args.scaling_blocks and {1, 2} <= set(args.threads):
        _log(f"thread scaling: tdanet alone, 1 and 2 threads, {args.scaling_blocks} blocks")
        thread_scaling = measure_thread_scaling(
            args.sample_rate, args.seconds[0], args.scaling_blocks, tiny=args.tiny
        )
    _log("matrix products: MKL vs oneDNN, 1 thread")
    gemm = gemm_rates()
    first_call, first_call_default_allocator = {}, {}
    for seconds in args.first_call_seconds:
        _log(f"first call vs steady state: tdanet, {seconds:g} s, 1 thread, fresh processes")
        for reuse, table in ((True, first_call), (False, first_call_default_allocator)):
            table[f"{seconds:g}s"] = measure_first_call(
                "tdanet", args.sample_rate, seconds, 1, args.first_call_repeats, args.tiny, reuse
            )
    values = {
        "host": _host(args.host_run),
        "config": {
            "sample_rate": args.sample_rate,
            "seconds": args.seconds,
            "threads": args.threads,
            "repeats": args.repeats,
            "short_repeats": args.short_repeats,
            "warmup": args.warmup,
            "batch_size": 1,
            "tiny": args.tiny,
            "fast_path_default": fast.fast_path_enabled(),
            "onednn_linear": kernels.onednn_linear_available(),
            # Measured per product shape by kernels.linear at first use, in this process.
            "linear_kernels_chosen": kernels.chosen_kernels(),
            "native_kernels": native.describe(),
            "allocator": "glibc keeps freed memory for reuse (runtime.configure_cpu_process, "
            "as tdanet-separate); first_call_default_allocator: glibc defaults",
            "method": "tdanet-bench's time_interleaved: eval, inference mode, interleaved "
            "rounds, median; *_plain = plain modules with MKL matrix products "
            "(TDANET_FAST_PATH=0 TDANET_ONEDNN_LINEAR=0); *_mkl = fast path with MKL matrix "
            "products (TDANET_ONEDNN_LINEAR=0); *_torchops = fast path with torch's operations "
            "instead of the fused CPU kernels (TDANET_NATIVE_KERNELS=0); *_calls = fast path "
            "with the fused kernels called one by one instead of from a recording per forward "
            "pass (TDANET_KERNEL_PROGRAMS=0)",
        },
        "models": sizes,
        "cpu": timings,
        "ratios": ratios(timings),
        "first_call": first_call,
        "first_call_default_allocator": first_call_default_allocator,
        "gemm": gemm,
        "thread_scaling": thread_scaling,
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "wall_s": time.time() - started,
    }
    with open(args.out, "w") as f:
        json.dump(values, f)
    return 0


def _without_out(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--out``/``--hosts``/``--command`` (the host runs get their own)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--out", "--hosts", "--command"):
            skip = True
        elif not arg.startswith(("--out=", "--hosts=", "--command=")):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
