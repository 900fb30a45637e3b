"""Writers for benchmark results: terminal table, JSON, markdown, and a MACs-vs-time plot.

All writers take the results dict built by :func:`asteroid_tdanet.bench.__main__.run_benchmark`:
``meta`` (settings and machine), ``models`` (params and MACs per model), ``cpu`` and ``gpu``
(timing rows), ``baselines`` and ``notes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["format_tables", "write_json", "write_markdown", "write_plot"]


def _fmt_ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{100.0 * value / base:.1f}%"


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    """Render rows as a markdown pipe table or an aligned plain-text table."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _model_rows(results: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    meta = results["meta"]
    base_name = results["baselines"]["macs"]
    models = results["models"]
    base = next((m for m in models if m["name"] == base_name), None)
    title = (
        f"Size and MACs per second of audio (input {meta['macs_seconds']:g} s at "
        f"{meta['sample_rate']} Hz, batch 1; MACs = FLOPs / 2; % of {base_name})"
    )
    headers = [
        "Model",
        "Params (M)",
        "GMAC/s FlopCounterMode",
        f"% {base_name}",
        "GMAC/s ptflops",
        f"% {base_name} (ptflops)",
    ]
    rows = []
    for m in models:
        fc, pt = m.get("gmacs_per_s"), m.get("ptflops_gmacs_per_s")
        rows.append(
            [
                m["label"],
                f"{m['params'] / 1e6:.3f}" if m.get("params") is not None else "-",
                f"{fc:.3f}" if fc is not None else "-",
                _fmt_ratio(fc, base and base.get("gmacs_per_s")),
                f"{pt:.3f}" if pt is not None else "-",
                _fmt_ratio(pt, base and base.get("ptflops_gmacs_per_s")),
            ]
        )
    return title, headers, rows


def _label(results: dict[str, Any], name: str) -> str:
    return next((m["label"] for m in results["models"] if m["name"] == name), name)


def _cpu_rows(results: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    meta = results["meta"]
    base_name = results["baselines"]["time"]
    title = (
        f"CPU inference time (batch 1, eval, inference mode, {meta['sample_rate']} Hz; "
        f"median of {meta['repeats']} interleaved runs after {meta['warmup']} warm-up; "
        f"% of {base_name} in the same setting)"
    )
    headers = [
        "Model",
        "Backend",
        "Threads",
        "Input (s)",
        "Median (ms)",
        "IQR (ms)",
        "Min-max (ms)",
        "RTF",
        f"% {base_name}",
    ]
    rows = []
    for row in results["cpu"]:
        base = next(
            (
                r
                for r in results["cpu"]
                if r["model"] == base_name
                and r["backend"] == "torch"
                and r["threads"] == row["threads"]
                and r["seconds"] == row["seconds"]
            ),
            None,
        )
        rows.append(
            [
                _label(results, row["model"]),
                row["backend"],
                str(row["threads"]),
                f"{row['seconds']:g}",
                f"{1e3 * row['median_s']:.1f}",
                f"{1e3 * row['q1_s']:.1f}-{1e3 * row['q3_s']:.1f}",
                f"{1e3 * row['min_s']:.1f}-{1e3 * row['max_s']:.1f}",
                f"{row['rtf']:.3f}",
                _fmt_ratio(row["median_s"], base and base["median_s"]),
            ]
        )
    return title, headers, rows


def _gpu_rows(results: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    meta = results["meta"]
    base_name = results["baselines"]["time"]
    title = (
        f"Accelerator ({meta.get('gpu_name') or meta.get('device')}): inference latency at "
        f"batch 1 and training step (forward, PIT SI-SDR, backward, Adam), {meta['sample_rate']} "
        f"Hz; % of {base_name} in the same setting"
    )
    headers = [
        "Model",
        "Task",
        "Dtype",
        "Batch x s",
        "Median (ms)",
        "IQR (ms)",
        "Peak (GB)",
        f"% {base_name}",
    ]
    rows = []
    for row in results["gpu"]:
        if "error" in row:
            rows.append(
                [
                    _label(results, row["model"]),
                    row["task"],
                    row["dtype"],
                    f"{row.get('batch_size', 1)} x {row['seconds']:g}",
                    "failed",
                    row["error"][:60],
                    "-",
                    "-",
                ]
            )
            continue
        base = next(
            (
                r
                for r in results["gpu"]
                if r["model"] == base_name
                and r["task"] == row["task"]
                and "error" not in r
                and r["dtype"] == row["dtype"]
                and r["seconds"] == row["seconds"]
            ),
            None,
        )
        peak = row.get("peak_bytes")
        rows.append(
            [
                _label(results, row["model"]),
                row["task"],
                row["dtype"],
                f"{row.get('batch_size', 1)} x {row['seconds']:g}",
                f"{1e3 * row['median_s']:.1f}",
                f"{1e3 * row['q1_s']:.1f}-{1e3 * row['q3_s']:.1f}",
                f"{peak / 1e9:.2f}" if peak is not None else "-",
                _fmt_ratio(row["median_s"], base and base["median_s"]),
            ]
        )
    return title, headers, rows


def _sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    sections = [_model_rows(results)]
    if results.get("cpu"):
        sections.append(_cpu_rows(results))
    if results.get("gpu"):
        sections.append(_gpu_rows(results))
    return sections


def _header_lines(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    return [
        f"tdanet-bench {meta['date']}: {meta['machine']}",
        f"torch {meta['torch']}, {meta['cores']} cores; sample rate {meta['sample_rate']} Hz"
        + ("; TINY model configs (smoke test, numbers meaningless)" if meta.get("tiny") else ""),
    ]


def format_tables(results: dict[str, Any], markdown: bool = False) -> str:
    """All result tables as text (aligned plain text, or markdown)."""
    parts = []
    if markdown:
        parts.append("# TDANet efficiency benchmark\n")
        parts += [f"- {line}" for line in _header_lines(results)]
        parts.append("")
        parts.append("Models:")
        parts += [f"- **{m['label']}**: {m['description']}" for m in results["models"]]
        parts.append("")
    else:
        parts += _header_lines(results)
        parts.append("")
    for title, headers, rows in _sections(results):
        parts.append(f"## {title}" if markdown else title)
        if markdown:
            parts.append("")
        parts.append(_table(headers, rows, markdown))
        parts.append("")
    if results.get("notes"):
        parts.append("## Notes" if markdown else "Notes:")
        if markdown:
            parts.append("")
        parts += [f"- {note}" for note in results["notes"]]
    return "\n".join(parts).rstrip() + "\n"


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results dict as indented JSON."""
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """Write the result tables as markdown."""
    path.write_text(format_tables(results, markdown=True))


def write_plot(results: dict[str, Any], path: Path) -> bool:
    """Plot MACs per second of audio vs CPU real-time factor, marker area ~ parameters.

    Uses the first thread setting and input length of the torch CPU rows.

    Returns:
        False (and writes nothing) when there is nothing to plot: no CPU timing or no MACs.
    """
    torch_rows = [r for r in results.get("cpu", []) if r["backend"] == "torch"]
    if not torch_rows:
        return False
    threads, seconds = torch_rows[0]["threads"], torch_rows[0]["seconds"]
    points = []
    for m in results["models"]:
        row = next(
            (
                r
                for r in torch_rows
                if r["model"] == m["name"] and r["threads"] == threads and r["seconds"] == seconds
            ),
            None,
        )
        if row is not None and m.get("gmacs_per_s") and m.get("params"):
            label = m.get("short_label") or m["label"]
            points.append((label, m["gmacs_per_s"], row["rtf"], m["params"]))
    if not points:
        return False

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    fig, ax = plt.subplots(figsize=(7.5, 5))
    biggest = max(p[3] for p in points)
    for label, macs, rtf, params in points:
        ax.scatter(macs, rtf, s=40 + 1500 * params / biggest, alpha=0.6)
        ax.annotate(
            f"{label}\n{params / 1e6:.3g} M params",
            (macs, rtf),
            fontsize=7,
            xytext=(6, 6),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(0.25)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(
        f"GMAC per second of audio (FlopCounterMode, {results['meta']['sample_rate']} Hz)"
    )
    ax.set_ylabel(f"CPU time per second of audio (RTF), {threads} thread(s), {seconds:g} s input")
    ax.set_title("Separation cost: MACs vs CPU time (marker area ~ parameters)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
