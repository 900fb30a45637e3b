"""``tdanet-bench``: parameters, MACs, CPU (and GPU) time of TDANet and its baselines.

Examples:
    tdanet-bench --quick                           # a few minutes on a laptop
    tdanet-bench --sample-rate 16000 --seconds 1,4 --threads 1,all --repeats 10
    tdanet-bench --device cuda --models tdanet,look2hear_reference
    python -m asteroid_tdanet.bench --help

Writes ``bench.json``, ``bench.md`` and ``bench.png`` to ``--out`` and prints the tables.
Every ratio compares models measured in the same run, on this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..provenance import cpu_model
from .gpu import inference_latency, train_step_time
from .macs import UncountedOpError, count_macs_detailed, count_macs_ptflops, count_params
from .onnx_time import OnnxUnavailable, load_exporter, make_onnx_runner
from .report import format_tables, write_json, write_markdown, write_plot
from .timing import all_cores, num_threads, parse_threads, summarize, time_interleaved
from .zoo import (
    MODEL_NAMES,
    ModelUnavailable,
    build_model,
    model_description,
    model_label,
    model_short_label,
)

__all__ = ["build_parser", "main", "run_benchmark"]


def _log(message: str) -> None:
    print(f"[tdanet-bench] {message}", file=sys.stderr, flush=True)


def _floats(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers like '1,4', got {text!r}")
    return values


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {unknown or text!r}; choose from {','.join(MODEL_NAMES)}"
        )
    return names


def _threads(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    try:
        for v in values:
            parse_threads(v)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``tdanet-bench``."""
    p = argparse.ArgumentParser(
        prog="tdanet-bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--models",
        type=_names,
        default=list(MODEL_NAMES),
        help=f"comma-separated, from {','.join(MODEL_NAMES)}",
    )
    p.add_argument("--sample-rate", type=int, default=8000, help="Hz")
    p.add_argument(
        "--seconds",
        type=_floats,
        default=None,
        help="input durations for timing, e.g. 1,4 (default 1,4; --quick: 1)",
    )
    p.add_argument(
        "--macs-seconds",
        type=float,
        default=1.0,
        help="input duration for counting MACs (reported per second of audio)",
    )
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="CPU thread settings, e.g. 1,all (default 1,all; --quick: 1)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per model and setting (default 10; --quick: 3)",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed runs first (default 2; --quick: 1)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer settings and repeats: a smoke run, not a measurement",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="tiny configs of every model (tests only: numbers are meaningless)",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: CPU timing; cuda: accelerator latency, training step, memory",
    )
    p.add_argument("--baseline-macs", default="sepformer", help="model the MACs ratios refer to")
    p.add_argument(
        "--baseline-time", default="look2hear_reference", help="model the time ratios refer to"
    )
    p.add_argument("--no-ptflops", action="store_true", help="skip the ptflops column")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime rows")
    p.add_argument(
        "--gpu-infer-seconds",
        type=_floats,
        default=None,
        help="accelerator inference input durations (default 1,60; --quick: 1)",
    )
    p.add_argument("--gpu-batch", type=int, default=4, help="training step batch size")
    p.add_argument(
        "--gpu-train-seconds", type=float, default=3.0, help="training step item duration"
    )
    p.add_argument(
        "--gpu-dtypes",
        default=None,
        help="comma-separated from fp32,bf16 (default fp32,bf16; --quick: fp32)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default bench_results/<date-time>)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing into a folder that already holds bench.json",
    )
    return p


def _fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults that depend on --quick."""
    quick = args.quick
    args.seconds = args.seconds or ([1.0] if quick else [1.0, 4.0])
    args.threads = args.threads or (["1"] if quick else ["1", "all"])
    args.repeats = args.repeats if args.repeats is not None else (3 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.gpu_infer_seconds = args.gpu_infer_seconds or ([1.0] if quick else [1.0, 60.0])
    args.gpu_dtypes = (args.gpu_dtypes or ("fp32" if quick else "fp32,bf16")).split(",")
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit("tdanet-bench: --repeats must be >= 1 and --warmup >= 0")
    return args


def _count(args: argparse.Namespace, name: str, model: torch.nn.Module, notes: list[str]):
    """Params and MACs of one model (FlopCounterMode with the guard; ptflops)."""
    n = int(round(args.macs_seconds * args.sample_rate))
    wav = torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    _log(f"counting MACs of {name} on {args.macs_seconds:g} s")
    counted = count_macs_detailed(model, wav)  # raises UncountedOpError: never a silent zero
    entry: dict[str, Any] = {
        "name": name,
        "label": model_label(name),
        "short_label": model_short_label(name),
        "description": model_description(name),
        "params": count_params(model),
        "macs": counted.macs,
        "macs_by_op": counted.by_op,
        "gmacs_per_s": counted.macs / args.macs_seconds / 1e9,
        "ptflops_macs": None,
        "ptflops_gmacs_per_s": None,
    }
    if not args.no_ptflops:
        try:
            entry["ptflops_macs"] = count_macs_ptflops(model, n)
            entry["ptflops_gmacs_per_s"] = entry["ptflops_macs"] / args.macs_seconds / 1e9
        except (ImportError, RuntimeError) as err:
            notes.append(f"ptflops column missing for {name}: {err}")
        else:
            if entry["ptflops_macs"] < 0.95 * counted.macs:
                notes.append(
                    f"ptflops counts {100 * (1 - entry['ptflops_macs'] / counted.macs):.0f}% "
                    f"fewer MACs than FlopCounterMode for {name}: it only sees the modules it "
                    "hooks and a few patched functionals (e.g. not F.linear), so work called "
                    "functionally is missed; FlopCounterMode counts every aten op."
                )
    return entry


def _cpu_timings(args, models: dict[str, torch.nn.Module], notes: list[str]) -> list[dict]:
    exporter = None
    if not args.no_onnx:
        try:
            exporter = load_exporter()
        except OnnxUnavailable as err:
            notes.append(f"onnxruntime rows skipped: {err}")
    rows: list[dict] = []
    onnx_failed: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="tdanet-bench-onnx-") as tmp:
        for threads_text in args.threads:
            threads = parse_threads(threads_text)
            for seconds in args.seconds:
                wav = torch.randn(
                    1,
                    int(round(seconds * args.sample_rate)),
                    generator=torch.Generator().manual_seed(0),
                )
                runners: dict[tuple[str, str], Any] = {}
                for name, model in models.items():
                    runners[(name, "torch")] = lambda m=model, x=wav: m(x)
                    if exporter is None or name in onnx_failed:
                        continue
                    try:
                        runners[(name, "onnxruntime")] = _onnx_runner(
                            exporter, name, model, wav, threads, Path(tmp)
                        )
                    except OnnxUnavailable as err:
                        onnx_failed.add(name)
                        notes.append(f"onnxruntime row skipped for {name}: {err}")
                _log(
                    f"CPU timing: {threads} thread(s), {seconds:g} s input, "
                    f"{len(runners)} runners x ({args.warmup} warm-up + {args.repeats} runs)"
                )
                with num_threads(threads):
                    times = time_interleaved(
                        {f"{n}|{b}": fn for (n, b), fn in runners.items()},
                        repeats=args.repeats,
                        warmup=args.warmup,
                        progress=lambda msg: _log(f"  {msg}"),
                    )
                for key, values in times.items():
                    name, backend = key.split("|")
                    rows.append(
                        {
                            "model": name,
                            "backend": backend,
                            "threads": threads,
                            "seconds": seconds,
                            **summarize(values, seconds).as_dict(),
                            "times_s": values,
                        }
                    )
    return rows


def _onnx_runner(exporter, name, model, wav, threads, tmp: Path):
    """An onnxruntime runner, reusing the model's first export when its length axis is dynamic."""
    first = tmp / f"{name}.onnx"
    if not first.is_file():
        _log(f"exporting {name} to ONNX (a full-size model can take minutes)")
        return make_onnx_runner(exporter, model, wav, threads, first)
    try:
        return make_onnx_runner(exporter, model, wav, threads, first)
    except OnnxUnavailable:
        return make_onnx_runner(exporter, model, wav, threads, tmp / f"{name}-{wav.shape[-1]}.onnx")


def _gpu_timings(args, models: dict[str, torch.nn.Module], notes: list[str]) -> list[dict]:
    rows: list[dict] = []
    for name, model in models.items():
        for dtype in args.gpu_dtypes:
            for seconds in args.gpu_infer_seconds:
                _log(f"GPU inference: {name}, {dtype}, {seconds:g} s")
                rows.append(
                    _guarded_gpu(
                        lambda s=seconds, d=dtype, m=model: inference_latency(
                            m, args.sample_rate, s, "cuda", d, args.repeats, args.warmup
                        ),
                        dict(
                            model=name, task="inference", dtype=dtype, seconds=seconds, batch_size=1
                        ),
                        notes,
                    )
                )
            _log(
                f"GPU training step: {name}, {dtype}, {args.gpu_batch} x "
                f"{args.gpu_train_seconds:g} s"
            )
            rows.append(
                _guarded_gpu(
                    lambda d=dtype, m=model: train_step_time(
                        m,
                        args.sample_rate,
                        args.gpu_batch,
                        args.gpu_train_seconds,
                        "cuda",
                        d,
                        args.repeats,
                        args.warmup,
                    ),
                    dict(
                        model=name,
                        task="train step",
                        dtype=dtype,
                        seconds=args.gpu_train_seconds,
                        batch_size=args.gpu_batch,
                    ),
                    notes,
                )
            )
    return rows


def _guarded_gpu(fn, info: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Run one accelerator measurement; an out-of-memory or other failure becomes a row note."""
    try:
        return {**info, **fn()}
    except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
        torch.cuda.empty_cache()
        message = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        notes.append(
            f"{info['model']} {info['task']} {info['dtype']} {info['seconds']:g} s: {message}"
        )
        return {**info, "error": message}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build the models, count, time, and return the results dict (see ``report``)."""
    args = _fill_defaults(args)
    notes: list[str] = []
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("tdanet-bench: --device cuda but no CUDA device is available")
    if args.tiny:
        notes.append("TINY model configs: a smoke test of the tool; the numbers mean nothing.")
    if args.quick:
        notes.append("--quick: few settings and repeats; a smoke run, not a measurement.")

    models: dict[str, torch.nn.Module] = {}
    for name in args.models:
        try:
            models[name] = build_model(name, args.sample_rate, tiny=args.tiny)
        except ModelUnavailable as err:
            notes.append(f"{name} skipped: {err}")
            _log(f"{name} skipped: {err}")
    if not models:
        raise SystemExit("tdanet-bench: no model could be built (see the notes above)")

    baselines = {"macs": args.baseline_macs, "time": args.baseline_time}
    for kind, name in baselines.items():
        if name not in models:
            notes.append(f"{kind} baseline {name!r} not in this run: ratios left blank")

    entries = [_count(args, name, model, notes) for name, model in models.items()]
    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": cpu_model(),
        "cores": all_cores(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "sample_rate": args.sample_rate,
        "macs_seconds": args.macs_seconds,
        "seconds": args.seconds,
        "threads": [parse_threads(t) for t in args.threads],
        "repeats": args.repeats,
        "warmup": args.warmup,
        "device": args.device,
        "gpu_name": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "quick": args.quick,
        "tiny": args.tiny,
        "mac_counter": "torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2), MHA fast "
        "path off, CPU attention formula, uncounted-op guard; ptflops (pytorch backend)",
    }
    results = {
        "meta": meta,
        "models": entries,
        "cpu": [],
        "gpu": [],
        "baselines": baselines,
        "notes": notes,
    }
    if args.device == "cpu":
        results["cpu"] = _cpu_timings(args, models, notes)
    else:
        results["gpu"] = _gpu_timings(args, models, notes)
    return results


def _out_dir(args: argparse.Namespace) -> Path:
    out = args.out or Path("bench_results") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if (out / "bench.json").exists() and not args.overwrite:
        raise SystemExit(
            f"tdanet-bench: {out / 'bench.json'} exists; pass --overwrite or choose another --out"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tdanet-bench``; returns the exit status."""
    from asteroid_tdanet.runtime import configure_cpu_process

    args = build_parser().parse_args(argv)
    # As tdanet-separate does; process-wide, so every model is timed under the same setting.
    configure_cpu_process()
    out = _out_dir(args)
    try:
        results = run_benchmark(args)
    except UncountedOpError as err:
        _log(f"MAC count refused: {err}")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if not write_plot(results, out / "bench.png"):
        results["notes"].append("no plot: it needs CPU timings and MAC counts")
    write_json(results, out / "bench.json")
    write_markdown(results, out / "bench.md")
    print(format_tables(results))
    _log(
        f"wrote {out / 'bench.json'}, bench.md"
        + (", bench.png" if (out / "bench.png").exists() else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
