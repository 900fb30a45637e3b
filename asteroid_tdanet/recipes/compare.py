"""Stage 5 of every recipe: one table over every evaluated experiment in ``exp/``.

For each ``exp/<tag>/`` with ``results/final_metrics.json``: model, SI-SNRi, SDRi, parameters,
MACs per second of audio and the CPU real-time factor (``asteroid_tdanet.bench``), written to
``exp/compare.md``, ``exp/compare.csv`` and ``exp/compare.png`` (quality against MACs, the layout
of the paper's Figure 1). With ``benchmark`` (a data set of the paper), each row also shows the
paper's SI-SNRi and SDRi for its model, the figure marks them, and ``compare.md`` lists the
paper's Table 2 and the toolkits' published baselines with their sources
(:mod:`asteroid_tdanet.recipes.published`). Efficiency numbers are cached in
``exp/<tag>/results/bench.json`` and recomputed when ``best_model.pth`` changes.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

COLUMNS = [
    ("tag", "experiment"),
    ("model", "model"),
    ("si_snri", "SI-SNRi (dB)"),
    ("paper_si_snri", "SI-SNRi paper (dB)"),
    ("sdri", "SDRi (dB)"),
    ("paper_sdri", "SDRi paper (dB)"),
    ("params_m", "params (M)"),
    ("gmacs_per_s", "MACs (G/s of audio)"),
    ("cpu_rtf", "CPU RTF"),
    ("n_test", "test utterances"),
]


def _bench_values(exp_dir: Path, sample_rate: int, rtf_repeats: int) -> dict[str, Any]:
    """Parameters, GMACs per second of audio and CPU RTF of ``best_model.pth`` (cached)."""
    from asteroid_tdanet.io import load_model

    model_path = exp_dir / "best_model.pth"
    stamp = f"{model_path.stat().st_mtime_ns}-{model_path.stat().st_size}-{rtf_repeats}"
    cache = exp_dir / "results" / "bench.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return cached
    model = load_model(model_path).eval()
    values: dict[str, Any] = {
        "stamp": stamp,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gmacs_per_s": None,
        "cpu_rtf": None,
    }
    try:
        from asteroid_tdanet.bench import count_macs, cpu_rtf
    except ImportError as err:
        log.warning("asteroid_tdanet.bench is not available (%s): MACs and RTF are n/a", err)
        return values
    complete = True
    # A model the counter cannot handle gets "n/a" in the table instead of stopping the stage.
    try:
        values["gmacs_per_s"] = count_macs(model, int(sample_rate)) / 1e9
    except Exception as err:
        log.warning("%s: MACs not counted (%s: %s)", exp_dir.name, type(err).__name__, err)
        complete = False
    if rtf_repeats > 0:
        try:
            values["cpu_rtf"] = float(cpu_rtf(model, sample_rate, seconds=1.0, repeats=rtf_repeats))
        except Exception as err:
            log.warning("%s: CPU RTF not measured (%s: %s)", exp_dir.name, type(err).__name__, err)
            complete = False
    if complete:
        cache.write_text(json.dumps(values, indent=2) + "\n")
    return values


def collect(exp_root: str | Path, rtf_repeats: int = 5) -> list[dict[str, Any]]:
    """One row per evaluated experiment under ``exp_root`` (sorted by tag)."""
    rows = []
    for exp_dir in sorted(p for p in Path(exp_root).iterdir() if p.is_dir()):
        metrics_path = exp_dir / "results" / "final_metrics.json"
        if not metrics_path.is_file() or not (exp_dir / "best_model.pth").is_file():
            log.info("skipping %s: not evaluated", exp_dir.name)
            continue
        conf = yaml.safe_load((exp_dir / "conf.yml").read_text())
        metrics = json.loads(metrics_path.read_text())
        bench = _bench_values(exp_dir, conf["data"]["sample_rate"], rtf_repeats)
        rows.append(
            {
                "tag": exp_dir.name,
                "model": conf["model"]["name"],
                "si_snri": metrics.get("si_sdr_imp", {}).get("mean"),
                "paper_si_snri": None,  # set by compare() for a benchmark of the paper
                "sdri": metrics.get("sdr_imp", {}).get("mean"),
                "paper_sdri": None,
                "params_m": bench["params_m"],
                "gmacs_per_s": bench["gmacs_per_s"],
                "cpu_rtf": bench["cpu_rtf"],
                "n_test": metrics.get("si_sdr_imp", {}).get("count"),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a markdown table."""
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "| " + " | ".join("---" if k in ("tag", "model") else "---:" for k, _ in COLUMNS) + " |"
    body = ["| " + " | ".join(_cell(r[k]) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def compare(
    exp_root: str | Path, rtf_repeats: int = 5, title: str = "", benchmark: str | None = None
) -> str:
    """Write ``compare.{md,csv,png}`` in ``exp_root`` and return the markdown table.

    Args:
        exp_root: The experiments folder.
        rtf_repeats: Timed runs for the CPU real-time factor (0: not measured).
        title: Figure title.
        benchmark: The recipe's data set (``librimix``, ``wham``, ``lrs2_2mix``): adds the
            published figures. None, or a data set the paper does not report: none are shown.
    """
    from .plots import plot_quality_vs_macs
    from .published import add_paper_columns, has_figures, published_section

    exp_root = Path(exp_root)
    if not exp_root.is_dir():
        raise FileNotFoundError(f"{exp_root} not found: train and evaluate first")
    rows = collect(exp_root, rtf_repeats)
    if not rows:
        raise FileNotFoundError(f"no evaluated experiment in {exp_root} (run stages 2 and 3)")
    add_paper_columns(rows, benchmark)
    table = markdown_table(rows)
    note = (
        "\n\nSI-SNRi/SDRi: mean over the test set; paper: the TDANet paper's Table 2 for the "
        "same model and benchmark (n/a: not published); MACs: one forward pass on 1 s of audio; "
        "CPU RTF: processing time / audio duration on this machine's CPU (lower is faster).\n"
    )
    if has_figures(benchmark):
        note += "\n" + published_section(benchmark, rows)
    (exp_root / "compare.md").write_text(table + note)
    with open(exp_root / "compare.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k, _ in COLUMNS])
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k, _ in COLUMNS} for r in rows)
    plot_quality_vs_macs(rows, exp_root / "compare.png", title=title)
    return table
