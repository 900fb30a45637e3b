"""The evaluation report: one page per experiment to read and listen to, ``exp/<tag>/report/``.

Stage 3 writes it after scoring (``local/evaluate.py``); it can be rebuilt from an evaluated
experiment with ``python -m asteroid_tdanet.recipes.report --exp_dir E --data_dir D``::

    report/index.html          the page: no network needed, every file it uses is beside it
    report/img/*.png           training curve, per-mixture SI-SNRi distribution
    report/examples/<name>/    mixture.wav, s<i>.wav, s<i>_estimate.wav, spectrograms.png

The page holds the metrics table (the paper's figure beside ours where the paper reports this
model on this benchmark), the training curve, the distribution of per-mixture SI-SNRi, and the
worst and best test mixtures with spectrograms and audio players.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Result keys shown in the table, in this order, with the names users know.
METRIC_NAMES = {
    "si_sdr_imp": "SI-SNRi (dB)",
    "sdr_imp": "SDRi (dB)",
    "stoi_imp": "STOI improvement",
    "pesq_imp": "PESQ improvement",
    "si_sdr": "SI-SNR of the estimates (dB)",
    "input_si_sdr": "SI-SNR of the mixture (dB)",
    "sdr": "SDR of the estimates (dB)",
    "stoi": "STOI of the estimates",
    "pesq": "PESQ of the estimates",
}
RANK_KEY = "si_sdr_imp"


@dataclass
class Example:
    """One separated test mixture shown on the page.

    Attributes:
        name: Folder name and heading, e.g. ``"worst 1"``.
        utt_id: The test mixture's id.
        si_snri: Its SI-SNRi in dB.
        sample_rate: Hz.
        mixture: ``(time,)``.
        references: ``(n_src, time)``.
        estimates: ``(n_src, time)``, in the order of the references.
    """

    name: str
    utt_id: str
    si_snri: float
    sample_rate: int
    mixture: np.ndarray
    references: np.ndarray
    estimates: np.ndarray


def pick_examples(rows: Sequence[Mapping[str, Any]], n_each: int) -> list[tuple[str, str, float]]:
    """``(name, utt_id, si_snri)`` of the ``n_each`` worst and best mixtures by SI-SNRi.

    Mixtures whose SI-SNRi is not finite are left out; with fewer than ``2 * n_each`` mixtures
    each one is shown once (as a worst one first).
    """
    scored = [(float(r[RANK_KEY]), str(r["utt_id"])) for r in rows if _finite(r.get(RANK_KEY))]
    scored.sort()
    worst = scored[:n_each]
    best = [s for s in scored[::-1][:n_each] if s not in worst]
    return [(f"worst {i + 1}", utt, v) for i, (v, utt) in enumerate(worst)] + [
        (f"best {i + 1}", utt, v) for i, (v, utt) in enumerate(best)
    ]


def write_report(
    out_dir: str | Path,
    *,
    title: str,
    final: Mapping[str, Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, float]] | None,
    examples: Sequence[Example],
    paper: Mapping[str, float] | None = None,
    paper_source: str = "",
    facts: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``out_dir/index.html`` and the pictures and sounds it shows.

    Args:
        out_dir: The report folder (replaced if it exists).
        title: Page title (the experiment).
        final: ``final_metrics.json``: ``{metric: {mean, std, count}}``.
        rows: ``all_metrics.csv`` rows (``utt_id`` and one value per metric).
        history: Training history rows (``epoch``, ``train_loss``, ``val_loss``, ``lr``).
        examples: Worst and best mixtures to show and play.
        paper: The paper's figures for this model and benchmark, by metric key.
        paper_source: Where the paper's figures come from (shown under the table).
        facts: ``(label, value)`` lines shown at the top (model, data, test set...).

    Returns:
        The path of ``index.html``.
    """
    from .plots import plot_separation_example, plot_training_curve

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "img").mkdir(parents=True)
    parts = [_head(title), f"<h1>{_e(title)}</h1>"]
    if facts:
        parts.append(
            "<table class='facts'>"
            + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
            + "</table>"
        )
    parts.append(_metrics_table(final, paper or {}, paper_source))

    parts.append("<h2>Training curve</h2>")
    if history:
        plot_training_curve(list(history), out / "img" / "training_curve.png", title=title)
        parts.append(_img("img/training_curve.png", "training and validation loss per epoch"))
    else:
        parts.append("<p>No training history was found for this experiment.</p>")

    parts.append("<h2>SI-SNRi per test mixture</h2>")
    values = [float(r[RANK_KEY]) for r in rows if _finite(r.get(RANK_KEY))]
    if values:
        plot_distribution(
            values, out / "img" / "si_snri_distribution.png", paper.get(RANK_KEY) if paper else None
        )
        parts.append(_img("img/si_snri_distribution.png", "histogram of per-mixture SI-SNRi"))
        parts.append(
            f"<p>{len(values)} mixtures; median {np.median(values):.2f} dB, "
            f"10th percentile {np.percentile(values, 10):.2f} dB, "
            f"90th percentile {np.percentile(values, 90):.2f} dB.</p>"
        )
    else:
        parts.append("<p>No finite SI-SNRi was computed.</p>")

    if examples:
        parts.append("<h2>Worst and best test mixtures</h2>")
        parts.append(
            "<p>The estimates are in the order of the references (the permutation that "
            "maximises SI-SNR) and scaled to the mixture's peak level.</p>"
        )
    for example in examples:
        folder = "examples/" + _slug(example.name)
        _write_example_audio(out / folder, example)
        plot_separation_example(
            example.mixture,
            example.references,
            example.estimates,
            example.sample_rate,
            out / folder / "spectrograms.png",
            title=f"{example.utt_id}: SI-SNRi {example.si_snri:.2f} dB",
        )
        parts.append(
            f"<section class='example'><h3>{_e(example.name)}: {_e(example.utt_id)}, "
            f"SI-SNRi {example.si_snri:.2f} dB</h3>"
        )
        parts.append(_img(f"{folder}/spectrograms.png", f"spectrograms of {example.utt_id}"))
        players = [("mixture", "mixture.wav")]
        for i in range(1, len(example.references) + 1):
            players += [(f"reference {i}", f"s{i}.wav"), (f"estimate {i}", f"s{i}_estimate.wav")]
        parts.append("<div class='players'>")
        for label, name in players:
            parts.append(
                f"<figure><figcaption>{_e(label)}</figcaption>"
                f"<audio controls preload='auto' src='{folder}/{name}'></audio></figure>"
            )
        parts.append("</div></section>")
    parts.append("</body></html>\n")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def plot_distribution(values: Sequence[float], path: Path, paper_mean: float | None) -> Path:
    """Histogram of per-mixture SI-SNRi with our mean (and the paper's, when known)."""
    from .plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(values, bins=min(40, max(5, len(values) // 5)), color="C0", alpha=0.8)
    mean = float(np.mean(values))
    ax.axvline(mean, color="C1", lw=2, label=f"mean {mean:.2f} dB")
    if paper_mean is not None:
        ax.axvline(paper_mean, color="C3", ls="--", lw=2, label=f"paper {paper_mean:.1f} dB")
    ax.set_xlabel("SI-SNRi (dB)")
    ax.set_ylabel("test mixtures")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_report(
    exp_dir: str | Path,
    data_dir: str | Path,
    *,
    n_each: int = 2,
    device: str = "cpu",
) -> Path:
    """The report of an evaluated experiment (stage 3's outputs), in ``exp_dir/report/``.

    Reads ``conf.yml``, ``results/final_metrics.json``, ``results/all_metrics.csv`` and
    ``train_log/history.csv``, and separates the ``n_each`` worst and best test mixtures again
    with ``best_model.pth`` to show and play them.

    Args:
        exp_dir: ``exp/<tag>``, evaluated by stage 3.
        data_dir: The data set's metadata folder (stage 1's output).
        n_each: How many worst and how many best mixtures to show.
        device: Where the model runs: ``cpu``, ``cuda``, ``auto`` (CUDA when available).

    Returns:
        The path of ``index.html``.
    """
    import torch
    import yaml
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    from asteroid_tdanet.data import make_dataset
    from asteroid_tdanet.io import load_model

    from .config import validate
    from .evaluation import resolve_device
    from .training import read_history

    exp_dir = Path(exp_dir)
    results = exp_dir / "results"
    for path in (exp_dir / "conf.yml", results / "final_metrics.json", results / "all_metrics.csv"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: evaluate first (stage 3)")
    conf = validate(yaml.safe_load((exp_dir / "conf.yml").read_text()), str(exp_dir / "conf.yml"))
    final = json.loads((results / "final_metrics.json").read_text())
    with open(results / "all_metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    history_path = exp_dir / "train_log" / "history.csv"
    history = read_history(history_path) if history_path.is_file() else None

    data = conf["data"]
    picks = pick_examples(rows, n_each)
    examples: list[Example] = []
    if picks:
        test_set = make_dataset(
            data["format"],
            data_dir,
            "test",
            sample_rate=data["sample_rate"],
            n_src=data["n_src"],
            segment=None,
            task=data["task"],
            return_id=True,
        )
        index = {str(u.id): i for i, u in enumerate(test_set.utterances)}
        missing = [utt for _, utt, _ in picks if utt not in index]
        if missing:
            raise ValueError(
                f"{data_dir}: the test split has no mixture {missing[0]!r} listed in "
                f"{results / 'all_metrics.csv'}: was this experiment evaluated on other data?"
            )
        torch_device = resolve_device(device)
        model = load_model(exp_dir / "best_model.pth").to(torch_device).eval()
        pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
        for name, utt, value in picks:
            mixture, sources, _ = test_set[index[utt]]
            with torch.inference_mode():
                estimates = model(mixture[None].float().to(torch_device)).float().cpu()
            _, ordered = pit(estimates, sources[None].float(), return_est=True)
            examples.append(
                Example(
                    name,
                    utt,
                    value,
                    int(data["sample_rate"]),
                    mixture.numpy(),
                    sources.numpy(),
                    ordered[0].numpy(),
                )
            )
    model_name = conf["model"]["name"]
    paper, source = paper_figures(model_name, conf["model"].get("args", {}), data)
    facts = [
        ("model", model_name),
        ("data", f"{data['format']}, {data['task']}, {data['sample_rate']} Hz, test split"),
        ("test mixtures", str(len(rows))),
        ("experiment", str(exp_dir)),
    ]
    return write_report(
        exp_dir / "report",
        title=f"{exp_dir.name}: evaluation report",
        final=final,
        rows=rows,
        history=history,
        examples=examples,
        paper=paper,
        paper_source=source,
        facts=facts,
    )


# The paper's task per benchmark (Table 2): clean separation, except WHAM!'s noisy one.
PAPER_TASKS = {"lrs2_2mix": "sep_clean", "librimix": "sep_clean", "wham": "sep_noisy"}
# Our result keys -> the paper module's metric names.
PAPER_METRICS = {"si_sdr_imp": "si_snri", "sdr_imp": "sdri"}
# Architecture arguments that must be the paper's for its TDANet figures to apply.
TDANET_SIZES = ("bn_chan", "hid_chan", "n_blocks", "upsampling_depth")


def paper_model_key(model_name: str, model_args: Mapping[str, Any]) -> tuple[str | None, str]:
    """The paper's Table 2 row for a recipe model, or ``None`` and why there is none."""
    import inspect

    from asteroid_tdanet.models import TDANet, TDANetLarge

    if model_name in ("ConvTasNet", "DPRNNTasNet", "Sepformer"):
        key = {"ConvTasNet": "convtasnet", "DPRNNTasNet": "dprnn", "Sepformer": "sepformer"}
        return key[model_name], ""
    if model_name not in ("TDANet", "TDANetLarge"):
        return None, f"the paper reports no {model_name}"
    cls = TDANetLarge if model_name == "TDANetLarge" else TDANet
    defaults = {
        name: param.default
        for klass in (TDANet, cls)
        for name, param in inspect.signature(klass.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    differ = [k for k in TDANET_SIZES if model_args.get(k, defaults[k]) != defaults[k]]
    if differ:
        return None, (
            "this model's size differs from the paper's (" + ", ".join(differ) + "), so the "
            "paper's figures do not apply"
        )
    kernel = float(model_args.get("enc_kernel_ms", defaults["enc_kernel_ms"]))
    if kernel == 4.0:
        return "tdanet", ""
    if kernel == 2.0:
        return "tdanet_large", ""
    return None, f"the paper reports 4 ms and 2 ms encoder kernels, not {kernel:g} ms"


def paper_figures(
    model_name: str, model_args: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[dict[str, float], str]:
    """The paper's Table 2 figures for this model on this benchmark, and their source.

    Args:
        model_name: The conf's ``model.name``.
        model_args: The conf's ``model.args``.
        data: The conf's ``data`` section (``format``, ``task``).

    Returns:
        ``({result key: value}, source)``; no figures, and the reason as the source text, when
        the paper reports none for this data set, task or model.
    """
    from asteroid_tdanet import paper

    benchmark = data["format"]
    if benchmark not in paper.BENCHMARKS:
        return {}, f"the paper reports no results on {benchmark}"
    if data.get("task") != PAPER_TASKS[benchmark]:
        return {}, (
            f"the paper reports {paper.BENCHMARK_LABELS[benchmark]} for the task "
            f"{PAPER_TASKS[benchmark]}, not {data.get('task')}"
        )
    key, why = paper_model_key(model_name, model_args)
    table = paper.paper_results(benchmark)
    if key is None or key not in table:
        return {}, why or f"the paper reports no {model_name} on {benchmark}"
    row = table[key]
    figures = {ours: row[theirs].value for ours, theirs in PAPER_METRICS.items() if theirs in row}
    source = row["si_snri"].source
    label = paper.MODEL_LABELS[key]
    note = f"; {row['si_snri'].note}" if row["si_snri"].note else ""
    return figures, f"{label}, {source.citation}, {source.location} ({source.variant}{note})"


def _write_example_audio(folder: Path, example: Example) -> None:
    """16-bit PCM wavs; estimates rescaled to the mixture's peak (their scale is arbitrary)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rate = example.sample_rate
    peak = max(float(np.abs(example.mixture).max()), 1e-8)
    gain = 1.0 / max(peak, 1.0)
    sf.write(folder / "mixture.wav", example.mixture * gain, rate, subtype="PCM_16")
    for i, (ref, est) in enumerate(zip(example.references, example.estimates, strict=True), 1):
        sf.write(folder / f"s{i}.wav", ref * gain, rate, subtype="PCM_16")
        est_peak = max(float(np.abs(est).max()), 1e-8)
        sf.write(
            folder / f"s{i}_estimate.wav", est * (min(peak, 1.0) / est_peak), rate, subtype="PCM_16"
        )


def _metrics_table(
    final: Mapping[str, Mapping[str, Any]], paper: Mapping[str, float], paper_source: str
) -> str:
    keys = [k for k in METRIC_NAMES if k in final] + [
        k for k in final if k not in METRIC_NAMES and not k.startswith("input_")
    ]
    lines = [
        "<h2>Metrics on the test set</h2>",
        "<table class='metrics'><tr><th>metric</th><th>ours: mean</th><th>std</th>"
        "<th>mixtures</th><th>paper</th></tr>",
    ]
    for key in keys:
        value = final[key]
        paper_value = paper.get(key)
        lines.append(
            f"<tr><td>{_e(METRIC_NAMES.get(key, key))} <code>{_e(key)}</code></td>"
            f"<td>{_num(value.get('mean'))}</td><td>{_num(value.get('std'))}</td>"
            f"<td>{int(value.get('count') or 0)}</td>"
            f"<td>{'' if paper_value is None else f'{paper_value:g}'}</td></tr>"
        )
    lines.append("</table>")
    note = (
        f"Paper column: {_e(paper_source)}."
        if paper
        else f"Paper column: empty, {_e(paper_source) or 'no published figure applies'}."
    )
    lines.append(
        f"<p class='note'>{note} SI-SNRi is stored as <code>si_sdr_imp</code> (SI-SNR and "
        "SI-SDR are the same quantity); improvements are the estimates' score minus the "
        "mixture's; std is over test mixtures.</p>"
    )
    return "\n".join(lines)


def _head(title: str) -> str:
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}td:nth-child(n+2){text-align:right}.facts td{text-align:left}"
        "img{max-width:100%}.players{display:flex;flex-wrap:wrap;gap:1em}"
        "figure{margin:0}figcaption{font-size:90%;color:#555}.note{color:#555;font-size:90%}"
        "section.example{border-top:1px solid #ddd;margin-top:1.5em}"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{style}</style></head><body>"
    )


def _img(src: str, alt: str) -> str:
    return f"<p><img src='{_e(src)}' alt='{_e(alt)}'></p>"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any) -> str:
    return f"{float(value):.3f}" if _finite(value) else "n/a"


def _finite(value: Any) -> bool:
    try:
        return value is not None and value != "" and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m asteroid_tdanet.recipes.report --exp_dir E --data_dir D``."""
    parser = argparse.ArgumentParser(description="Rebuild exp/<tag>/report/index.html.")
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--examples", type=int, default=2, help="worst and best mixtures shown")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        path = build_report(args.exp_dir, args.data_dir, n_each=args.examples, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"report: {path}")


if __name__ == "__main__":
    main()
