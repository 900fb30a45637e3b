"""The documentation's pictures, drawn from the model's configuration and committed results.

``make docs-figures`` (``python -m asteroid_tdanet.figures --out docs/img``) writes:

    architecture.png      encoder, masker (the U-block applied repeatedly), decoder
    ublock.png            the U-block: bottom-up scales, global attention, top-down fusion
    quality-vs-macs.png   Libri2Mix SI-SNRi (the paper's Table 2) against MACs per second of
                          audio measured here (results/cpu-speed.json) and the MAC ratios the
                          paper's abstract states
    demo-training-curve.png, demo-separation.png
                          from a `make demo` run (``--demo-exp``): its training curve and its
                          best-scored test mixture
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# results/cpu-speed.json model keys -> the paper module's model keys.
MEASURED_MODELS = {
    "tdanet": "tdanet",
    "tdanet_large": "tdanet_large",
    "convtasnet": "convtasnet",
    "sepformer": "sepformer",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _box(ax, x: float, y: float, w: float, h: float, text: str, color: str, **kw: Any) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=color,
            ec="#333",
            lw=1.2,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=kw.get("fontsize", 10), wrap=True)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **kw: Any) -> None:
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
            "arrowstyle": "-|>",
            "color": kw.get("color", "#333"),
            "lw": 1.3,
            "shrinkA": 2,
            "shrinkB": 2,
            "connectionstyle": kw.get("conn", "arc3"),
        },
    )


def draw_architecture(path: str | Path, n_blocks: int = 16, kernel_ms: float = 4.0) -> Path:
    """Encoder -> masker (the shared U-block applied ``n_blocks`` times) -> masks -> decoder."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0.4, 3.2)
    ax.axis("off")
    _box(ax, 0.7, 1.6, 1.1, 0.8, "mixture\n(waveform)", "#eeeeee")
    _box(ax, 2.3, 1.6, 1.4, 1.0, f"encoder\n1-D conv,\n{kernel_ms:g} ms kernel", "#cfe2f3")
    _box(ax, 5.0, 1.6, 2.8, 1.9, "", "#fff2cc")
    ax.text(5.0, 2.35, "masker", ha="center", fontsize=11, weight="bold")
    _box(ax, 5.0, 1.45, 1.6, 0.8, "U-block\n(shared weights)", "#f9cb9c")
    ax.annotate(
        "",
        xy=(5.85, 1.25),
        xytext=(5.85, 1.65),
        arrowprops={"arrowstyle": "-|>", "connectionstyle": "arc3,rad=-1.6", "lw": 1.2},
    )
    ax.text(6.0, 1.05, f"x {n_blocks}", fontsize=10)
    ax.text(5.0, 0.82, "then one mask per talker", ha="center", fontsize=9)
    _box(ax, 7.55, 1.6, 0.9, 0.8, "x masks", "#d9ead3")
    _box(ax, 8.95, 1.6, 1.3, 1.0, "decoder\ntransposed\nconv", "#cfe2f3")
    _box(ax, 10.35, 2.2, 1.0, 0.55, "talker 1", "#eeeeee")
    _box(ax, 10.35, 1.0, 1.0, 0.55, "talker 2", "#eeeeee")
    _arrow(ax, (1.25, 1.6), (1.6, 1.6))
    _arrow(ax, (3.0, 1.6), (3.6, 1.6))
    _arrow(ax, (6.4, 1.6), (7.1, 1.6))
    # The encoded mixture also goes around the masker, to be multiplied by the masks.
    ax.plot([2.3, 2.3, 7.55], [2.1, 2.85, 2.85], color="#333", lw=1.3)
    _arrow(ax, (7.55, 2.85), (7.55, 2.02))
    ax.text(5.0, 2.93, "encoded mixture", ha="center", fontsize=8, color="#555")
    _arrow(ax, (8.0, 1.6), (8.3, 1.6))
    _arrow(ax, (9.6, 1.75), (9.85, 2.2))
    _arrow(ax, (9.6, 1.45), (9.85, 1.0))
    ax.set_title("TDANet: encoder, masker, decoder", fontsize=12)
    return _save(fig, path)


def draw_ublock(path: str | Path, depth: int = 5) -> Path:
    """The U-block: ``depth`` time scales bottom-up, global attention, top-down local attention.

    Scale ``i`` (``T / 2**i`` frames) comes from scale ``i - 1`` by a strided depthwise
    convolution; global attention runs on the sum of all scales pooled to the coarsest length;
    each scale's features are injected with the global ones (kernel-1 local attention), then
    the injected scales are fused from coarse to fine (kernel-5 local attention).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 6.6)
    ax.axis("off")
    ys = np.linspace(4.4, 0.6, depth)
    x_scale, x_inject, x_fuse = 1.4, 5.6, 8.9
    for i, y in enumerate(ys):
        _box(ax, x_scale, y, 1.9, 0.5, f"scale {i + 1}: T/{2**i}", "#cfe2f3", fontsize=9)
        if i:
            _arrow(ax, (x_scale, ys[i - 1] - 0.27), (x_scale, y + 0.27))
        _box(ax, x_inject, y, 1.6, 0.5, f"inject {i + 1}", "#d9ead3", fontsize=9)
        _arrow(ax, (x_scale + 0.97, y), (x_inject - 0.82, y))
        if i < depth - 1:
            _box(ax, x_fuse, y, 1.6, 0.5, f"fuse {i + 1}", "#b6d7a8", fontsize=9)
            _arrow(ax, (x_inject + 0.82, y), (x_fuse - 0.82, y))
    for i in range(depth - 2, -1, -1):
        # Fusion runs coarse to fine: fuse i takes inject i and what is coarser (fuse i+1, or
        # the coarsest injected scale).
        start = (x_inject + 0.82, ys[-1]) if i == depth - 2 else (x_fuse, ys[i + 1] + 0.27)
        _arrow(ax, start, (x_fuse, ys[i] - 0.27), conn="arc3,rad=0.0")
    _arrow(ax, (x_fuse + 0.82, ys[0]), (10.6, ys[0]))
    ax.text(10.65, ys[0] + 0.25, "out", fontsize=9)
    _box(
        ax,
        3.6,
        5.75,
        2.6,
        0.9,
        "global attention: self-attention + FFN\non the sum of all scales,\n"
        "each pooled to the coarsest length",
        "#f9cb9c",
        fontsize=8,
    )
    for y in ys:
        ax.plot([x_scale + 0.97, 2.6], [y, 5.3], color="#aaa", lw=0.9)
    for y in ys:
        _arrow(ax, (4.9, 5.6), (x_inject - 0.2, y + 0.27), color="#c55")
    ax.text(1.4, 5.0, "bottom-up\n(strided convs)", ha="center", fontsize=10, weight="bold")
    ax.text(x_inject + 0.9, 5.1, "top-down", ha="center", fontsize=10, weight="bold")
    ax.text(6.9, 5.75, "global features, resized to each scale (red)", fontsize=8, color="#c55")
    ax.set_title("The U-block, paper mode (applied repeatedly with shared weights)", fontsize=12)
    return _save(fig, path)


def quality_vs_macs_points(
    cpu_speed: dict[str, Any], benchmark: str = "librimix"
) -> list[dict[str, Any]]:
    """The points of the quality-vs-MACs plot.

    Each model measured in ``results/cpu-speed.json`` gets the paper's Table 2 SI-SNRi on
    ``benchmark`` at its measured GMAC/s (``kind="measured"``); TDANet and TDANet Large also get
    a point at the MACs the paper's abstract states as a fraction of Sepformer's, applied to
    Sepformer's measured count (``kind="paper ratio"``).
    """
    from asteroid_tdanet import paper

    table = paper.paper_results(benchmark)
    # MAC counts do not depend on the host kind; files keep one entry per kind under "hosts".
    hosts = cpu_speed.get("hosts")
    models = next(iter(hosts.values()))["models"] if hosts else cpu_speed["models"]
    points = []
    for ours, key in MEASURED_MODELS.items():
        if ours in models and key in table:
            points.append(
                {
                    "model": paper.MODEL_LABELS[key],
                    "gmacs_per_s": float(models[ours]["gmacs_per_s"]),
                    "si_snri": table[key]["si_snri"].value,
                    "kind": "measured",
                }
            )
    sepformer = float(models["sepformer"]["gmacs_per_s"])
    for key, figures in paper.paper_efficiency().items():
        points.append(
            {
                "model": paper.MODEL_LABELS[key],
                "gmacs_per_s": figures["macs_vs_sepformer"].value * sepformer,
                "si_snri": table[key]["si_snri"].value,
                "kind": "paper ratio",
            }
        )
    return points


def plot_quality_vs_macs(
    path: str | Path, cpu_speed_json: str | Path, benchmark: str = "librimix"
) -> Path:
    """SI-SNRi (the paper's) against GMAC per second of audio (ours, and the paper's ratios)."""
    from asteroid_tdanet import paper

    data = json.loads(Path(cpu_speed_json).read_text())
    points = quality_vs_macs_points(data, benchmark)
    rate = data.get("config", {}).get("sample_rate", 8000)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for p in points:
        measured = p["kind"] == "measured"
        ax.scatter(
            p["gmacs_per_s"],
            p["si_snri"],
            s=70,
            marker="o" if measured else "D",
            facecolors="C0" if measured else "none",
            edgecolors="C0" if measured else "C3",
            zorder=3,
        )
        if measured:
            ax.annotate(
                p["model"],
                (p["gmacs_per_s"], p["si_snri"]),
                textcoords="offset points",
                xytext=(7, -4),
                fontsize=9,
            )
    ax.scatter([], [], marker="o", color="C0", label=f"MACs measured here ({rate / 1000:g} kHz)")
    ax.scatter(
        [],
        [],
        marker="D",
        facecolors="none",
        edgecolors="C3",
        label="MACs from the paper's ratio to Sepformer",
    )
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(FixedLocator([2, 3, 5, 10, 20, 50, 100]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"GMAC per second of audio ({rate / 1000:g} kHz, log scale)")
    ax.set_ylabel(f"SI-SNRi on {paper.BENCHMARK_LABELS[benchmark]}, paper's Table 2 (dB)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title("Quality vs computation: SI-SNRi from the paper, MACs counted here")
    return _save(fig, path)


def demo_figures(exp_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The demo run's training curve and the best-scored of the test mixtures stage 3 wrote."""
    import yaml

    from asteroid_tdanet.recipes.plots import plot_separation_example, plot_training_curve
    from asteroid_tdanet.recipes.training import read_history

    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    conf = yaml.safe_load((exp_dir / "conf.yml").read_text())
    # The run's own budget goes in the titles: a figure says which run it shows.
    label = f"demo recipe, {conf['training']['max_steps']} training steps"
    history = read_history(exp_dir / "train_log" / "history.csv")
    final = json.loads((exp_dir / "results" / "final_metrics.json").read_text())
    mean = final["si_sdr_imp"]["mean"]
    written = [
        plot_training_curve(
            history,
            out_dir / "demo-training-curve.png",
            title=f"{label}: test SI-SNRi {mean:.2f} dB",
        )
    ]
    with open(exp_dir / "results" / "all_metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    examples = exp_dir / "results" / "examples"
    # The best-scored of the examples stage 3 wrote (it writes the first few test mixtures).
    shown = [r for r in rows if (examples / _safe(r["utt_id"])).is_dir()]
    if shown:
        import soundfile as sf

        best = max(shown, key=lambda r: float(r["si_sdr_imp"]))
        folder = examples / _safe(best["utt_id"])
        mix, rate = sf.read(folder / "mixture.wav")
        refs = np.stack([sf.read(folder / f"s{i}.wav")[0] for i in (1, 2)])
        ests = np.stack([sf.read(folder / f"s{i}_estimate.wav")[0] for i in (1, 2)])
        written.append(
            plot_separation_example(
                mix,
                refs,
                ests,
                rate,
                out_dir / "demo-separation.png",
                title=f"{label}: test mixture {best['utt_id']}, "
                f"SI-SNRi {float(best['si_sdr_imp']):.2f} dB",
            )
        )
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "utt"


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw the documentation's pictures.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--cpu-speed", type=Path, default=REPO / "results" / "cpu-speed.json")
    parser.add_argument("--demo-exp", type=Path, default=None, help="a `make demo` experiment")
    args = parser.parse_args(argv)
    written = [
        draw_architecture(args.out / "architecture.png"),
        draw_ublock(args.out / "ublock.png"),
        plot_quality_vs_macs(args.out / "quality-vs-macs.png", args.cpu_speed),
    ]
    if args.demo_exp is not None:
        written += demo_figures(args.demo_exp, args.out)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
