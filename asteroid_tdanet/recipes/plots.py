"""Figures written by the recipe steps (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt

    return plt


def plot_training_curve(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Train and validation loss per epoch, and the learning rate.

    Args:
        history: Rows with ``epoch``, ``train_loss``, ``val_loss``, ``lr``.
        path: PNG to write.
        title: Figure title (the experiment tag).
    """
    plt = _pyplot()
    epochs = [r["epoch"] + 1 for r in history]
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in history], "o-", ms=3, label="validation loss")
    best = min(history, key=lambda r: r["val_loss"])
    ax.axvline(best["epoch"] + 1, color="gray", ls=":", label=f"best epoch {best['epoch'] + 1}")
    ax.set_ylabel("loss (negative dB)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(title or "training curve")
    ax_lr.semilogy(epochs, [r["lr"] for r in history], color="C2")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_separation_example(
    mixture: np.ndarray,
    references: np.ndarray,
    estimates: np.ndarray,
    sample_rate: int,
    path: str | Path,
    title: str = "",
) -> Path:
    """Spectrograms of a mixture, its reference sources and the model's estimates.

    Args:
        mixture: ``(time,)``.
        references: ``(n_src, time)``.
        estimates: ``(n_src, time)``, in the order of the references.
        sample_rate: Hz.
        path: PNG to write.
        title: Figure title (utterance id and scores).
    """
    plt = _pyplot()
    n_src = references.shape[0]
    fig, axes = plt.subplots(n_src + 1, 2, figsize=(10, 2.2 * (n_src + 1)), squeeze=False)
    nfft = 256 if sample_rate <= 8000 else 512
    panels = [("mixture", mixture, None)]
    panels += [(f"reference {i + 1}", references[i], estimates[i]) for i in range(n_src)]
    for row, (name, ref, est) in enumerate(panels):
        for col in range(2):
            ax = axes[row][col]
            if row == 0 and col == 1:
                t = np.arange(len(mixture)) / sample_rate
                ax.plot(t, mixture, lw=0.4)
                ax.set_title("mixture waveform")
                ax.set_xlim(0, t[-1] if len(t) else 1)
                continue
            signal = ref if col == 0 else est
            label = name if col == 0 else f"estimate {row}"
            ax.specgram(signal + 1e-9, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
            ax.set_title(label)
            ax.set_ylabel("Hz")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_quality_vs_macs(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """SI-SNRi against MACs per second of audio (log scale), marker area ~ parameters.

    The layout of the paper's Figure 1. Rows without MACs are left out of the plot. A row with
    ``paper_si_snri`` also gets a hollow marker at the paper's SI-SNRi for its model (at the
    same MACs: the paper's absolute MACs are not used), joined to the run's by a dashed line.

    Args:
        rows: Dicts with ``tag``, ``si_snri``, ``gmacs_per_s``, ``params_m`` and optionally
            ``paper_si_snri``.
        path: PNG to write.
        title: Figure title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    shown = [
        r
        for r in rows
        if _finite(r.get("gmacs_per_s"))
        and float(r["gmacs_per_s"]) > 0
        and _finite(r.get("si_snri"))
    ]
    any_paper = False
    for i, row in enumerate(shown):
        size = 40 + 60 * float(row.get("params_m") or 0.0)
        ax.scatter(row["gmacs_per_s"], row["si_snri"], s=size, alpha=0.6, color=f"C{i % 10}")
        if _finite(row.get("paper_si_snri")):
            x, ours, published = row["gmacs_per_s"], row["si_snri"], row["paper_si_snri"]
            ax.plot([x, x], [ours, published], "--", color=f"C{i % 10}", lw=1, alpha=0.7)
            ax.scatter(
                x,
                published,
                s=size,
                facecolors="none",
                edgecolors=f"C{i % 10}",
                label="TDANet paper, Table 2 (hollow)" if not any_paper else None,
            )
            any_paper = True
        ax.annotate(
            row["tag"],
            (row["gmacs_per_s"], row["si_snri"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=9,
        )
    if shown:
        ax.set_xscale("log")
    if any_paper:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no experiment with MACs and SI-SNRi", ha="center", transform=ax.transAxes
        )
    ax.set_xlabel("MACs per second of audio (G, log scale)")
    ax.set_ylabel("SI-SNRi (dB)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title or "separation quality vs. compute (marker area ~ parameters)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite(value: Any) -> bool:
    try:
        return value is not None and np.isfinite(float(value))
    except (TypeError, ValueError):
        return False
