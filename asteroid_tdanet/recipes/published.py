"""Published figures beside a recipe's own results in stage 5 (:mod:`asteroid_tdanet.paper`).

Each experiment's row gains the paper's SI-SNRi and SDRi for its model on the recipe's benchmark
(Table 2 of the TDANet paper), and ``compare.md`` ends with the paper's rows for the models the
recipes compare and the toolkits' published baselines, each with its source and data variant.
"""

from __future__ import annotations

from typing import Any

from asteroid_tdanet import paper

# Model registry names (conf ``model.name``) -> the paper's model keys.
PAPER_MODELS = {
    "TDANet": "tdanet",
    "TDANetLarge": "tdanet_large",
    "ConvTasNet": "convtasnet",
    "DPRNNTasNet": "dprnn",
    "Sepformer": "sepformer",
}


def has_figures(benchmark: str | None) -> bool:
    """Whether the paper reports ``benchmark`` (a data set registry name)."""
    return benchmark in paper.BENCHMARKS


def add_paper_columns(rows: list[dict[str, Any]], benchmark: str | None) -> list[dict[str, Any]]:
    """Set ``paper_si_snri`` and ``paper_sdri`` of every row (None where not published)."""
    table = paper.paper_results(benchmark) if has_figures(benchmark) else {}
    for row in rows:
        figures = table.get(PAPER_MODELS.get(row["model"], ""), {})
        for metric in ("si_snri", "sdri"):
            figure = figures.get(metric)
            row[f"paper_{metric}"] = None if figure is None else figure.value
    return rows


def _value(figure: paper.Figure | None) -> str:
    if figure is None:
        return "-"
    return f"{figure.value:.1f}" if figure.unit == "dB" else f"{figure.value:g}"


def published_section(benchmark: str, rows: list[dict[str, Any]]) -> str:
    """Markdown: the paper's rows for the compared models, the toolkits' baselines, sources."""
    label = paper.BENCHMARK_LABELS[benchmark]
    table = paper.paper_results(benchmark)
    ours: dict[str, list[str]] = {}
    for row in rows:
        key = PAPER_MODELS.get(row["model"])
        if key is not None:
            ours.setdefault(key, []).append(row["tag"])
    source = next(iter(table.values()))["si_snri"].source
    lines = [
        f"## Published results on {label}",
        "",
        "The TDANet paper's Table 2 [1] (SI-SNRi and SDRi in dB, parameters in millions):",
        "",
        "| model | SI-SNRi (dB) | SDRi (dB) | params (M) | your experiments | note |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for key in paper.CORE_MODELS:
        figures = table[key]
        note = next((f.note for f in figures.values() if f.note), "")
        lines.append(
            f"| {paper.MODEL_LABELS[key]} | {_value(figures.get('si_snri'))} | "
            f"{_value(figures.get('sdri'))} | {_value(figures.get('params_m'))} | "
            f"{', '.join(ours.get(key, [])) or '-'} | {note} |"
        )
    refs = [f"[1] {source.cite()}"]
    baselines = paper.toolkit_baselines(benchmark)
    if baselines:
        lines += [
            "",
            "Results the toolkits publish for their own recipes (other training data or "
            "augmentation than this recipe: see each variant):",
            "",
            "| toolkit | model | setting | SI-SNRi (dB) | SDRi (dB) | source |",
            "| --- | --- | --- | ---: | ---: | --- |",
        ]
        for baseline in baselines.values():
            figure = next(iter(baseline.metrics.values()))
            cite = figure.source.cite()
            if cite not in [r.split("] ", 1)[1] for r in refs]:
                refs.append(f"[{len(refs) + 1}] {cite}")
            number = next(i + 1 for i, r in enumerate(refs) if r.endswith(cite))
            lines.append(
                f"| {baseline.toolkit} | {paper.MODEL_LABELS[baseline.model]} | "
                f"{baseline.setting} | {_value(baseline.metrics.get('si_snri'))} | "
                f"{_value(baseline.metrics.get('sdri'))} | [{number}] |"
            )
    else:
        lines += ["", f"Neither Asteroid nor SpeechBrain publishes a result on {label}."]
    lines += ["", "Sources:", "", *[f"- {r}" for r in refs]]
    return "\n".join(lines) + "\n"
