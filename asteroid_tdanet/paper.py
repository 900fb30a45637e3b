"""Published reference figures shown beside our own results, each with the source it comes from.

Two kinds of figures:

- `paper_results(benchmark)`: Table 2 of the TDANet paper (Li, Yang, Hu, ICLR 2023): SI-SNRi
  and SDRi (dB) of TDANet, TDANet Large and eight earlier models on LRS2-2Mix, Libri2Mix and
  WHAM!, with each model's parameter count. `paper_efficiency()`: the efficiency ratios the
  paper's abstract states against Sepformer.
- `toolkit_baselines(benchmark)`: results the toolkits publish for their own recipes (Asteroid's
  Conv-TasNet on Libri2Mix, SpeechBrain's SepFormer on Libri2Mix and WHAM!), each with the exact
  data variant (sample rate, min/max mode, clean/noisy task, training split) it was measured on.

Benchmarks are named as in `asteroid_tdanet.data.registry` (``librimix``, ``wham``,
``lrs2_2mix``); metrics as in the compare stage's table (``si_snri``, ``sdri``, ``params_m``).

Only figures read in a primary source are recorded: the paper's table as published by its
authors, the toolkits' own READMEs and model cards. A figure the paper prints as "-" (not
reported) is absent and listed by `paper_gaps`; figures searched for but not found in a primary
source are listed in `NOT_FOUND`.

Example:
    >>> from asteroid_tdanet.paper import paper_results
    >>> fig = paper_results("librimix")["tdanet"]["si_snri"]
    >>> fig.value, fig.unit, fig.source.location
    (16.9, 'dB', 'Table 2')
"""

from __future__ import annotations

from dataclasses import dataclass, field

BENCHMARKS: tuple[str, ...] = ("lrs2_2mix", "librimix", "wham")
"""Benchmarks of the paper, by their registry names."""

BENCHMARK_LABELS: dict[str, str] = {
    "lrs2_2mix": "LRS2-2Mix",
    "librimix": "Libri2Mix",
    "wham": "WHAM!",
}

METRIC_LABELS: dict[str, str] = {
    "si_snri": "SI-SNRi (dB)",
    "sdri": "SDRi (dB)",
    "params_m": "params (M)",
    "macs_vs_sepformer": "MACs relative to Sepformer",
    "cpu_time_vs_sepformer": "CPU inference time relative to Sepformer",
}

MODEL_LABELS: dict[str, str] = {
    "blstm_tasnet": "BLSTM-TasNet",
    "convtasnet": "Conv-TasNet",
    "sudormrf_1.0x": "SuDoRM-RF 1.0x",
    "sudormrf_2.5x": "SuDoRM-RF 2.5x",
    "dprnn": "DualPathRNN",
    "dptnet": "DPTNet",
    "afrcnn16": "A-FRCNN-16",
    "sepformer": "Sepformer",
    "tdanet": "TDANet",
    "tdanet_large": "TDANet Large",
}

CORE_MODELS: tuple[str, ...] = (
    "tdanet",
    "tdanet_large",
    "convtasnet",
    "dprnn",
    "afrcnn16",
    "sepformer",
)
"""The models our recipes compare against, and so the ones the docs show first."""


@dataclass(frozen=True)
class Source:
    """Where a figure was published.

    Args:
        citation: Who published it, where (paper, toolkit recipe, model card).
        location: Table, section or heading inside that publication.
        url: Link to the publication; a commit-pinned link for repository files.
        variant: The exact data set variant the figure is for (sample rate, min/max mode,
            clean/noisy task, training split, augmentation), as far as the source states it.
    """

    citation: str
    location: str
    url: str
    variant: str

    def cite(self) -> str:
        """One line for a table footnote or tooltip: ``citation, location (variant). url``."""
        return f"{self.citation}, {self.location} ({self.variant}). {self.url}"


@dataclass(frozen=True)
class Figure:
    """One published number.

    Args:
        value: The number as printed.
        unit: ``"dB"``, ``"M"`` (millions of parameters) or ``"ratio"`` (a fraction of a
            reference model's cost).
        source: Where it is printed.
        note: How the publication qualifies it (e.g. who trained the model), or "".
    """

    value: float
    unit: str
    source: Source
    note: str = ""


@dataclass(frozen=True)
class Baseline:
    """A toolkit's published result for one of its own recipes.

    Args:
        toolkit: ``"asteroid"`` or ``"speechbrain"``.
        model: Model key (see `MODEL_LABELS`).
        setting: Short label of the training setting (split, task, augmentation).
        metrics: ``metric -> Figure``.
    """

    toolkit: str
    model: str
    setting: str
    metrics: dict[str, Figure] = field(default_factory=dict)


# --- the paper's Table 2 ----------------------------------------------------------------------

PAPER_CITATION = (
    "Li, Yang, Hu, 'An efficient encoder-decoder architecture with top-down attention for "
    "speech separation', ICLR 2023 (arXiv:2209.15200)"
)
PAPER_URL = "https://openreview.net/pdf?id=fzberKYWKsI"
# The authors publish the table as an image in their repository's README; that is where the
# numbers below were read (pinned to the commit).
PAPER_TABLE_URL = (
    "https://github.com/JusperLee/TDANet/blob/565af18692e18bf695e5bb0ca54ba466c4a86a2a/results.png"
)

_PAPER_VARIANTS = {
    "lrs2_2mix": "LRS2-2Mix test set (3000 mixtures), 16 kHz, 2-s two-speaker mixtures",
    "librimix": (
        "Libri2Mix test set, clean two-speaker mixtures; the authors' config trains on "
        "train-100 at 8 kHz (min/max mode not stated)"
    ),
    "wham": "WHAM! test set, noisy two-speaker mixtures (sample rate and mode not stated)",
}

_ASTEROID_BY_AUTHORS = (
    "not in the model's original paper: trained and tested by the TDANet authors with Asteroid"
)
_SPEECHBRAIN_BY_AUTHORS = "trained and tested by the TDANet authors with SpeechBrain"
_DPTNET_BY_YAO = "reported by Yao et al. (2022), not in DPTNet's original paper"

# model -> benchmark -> (SI-SNRi, SDRi, note); None where the paper prints "-".
_TABLE2: dict[str, dict[str, tuple[float | None, float | None, str]]] = {
    "blstm_tasnet": {
        "lrs2_2mix": (6.1, 6.8, _ASTEROID_BY_AUTHORS),
        "librimix": (7.9, 8.7, ""),
        "wham": (9.8, None, ""),
    },
    "convtasnet": {
        "lrs2_2mix": (10.6, 11.0, _ASTEROID_BY_AUTHORS),
        "librimix": (12.2, 12.7, ""),
        "wham": (12.7, None, ""),
    },
    "sudormrf_1.0x": {
        "lrs2_2mix": (11.0, 11.4, _ASTEROID_BY_AUTHORS),
        "librimix": (13.5, 14.0, ""),
        "wham": (12.9, 13.3, ""),
    },
    "sudormrf_2.5x": {
        "lrs2_2mix": (11.3, 11.7, _ASTEROID_BY_AUTHORS),
        "librimix": (14.0, 14.4, ""),
        "wham": (13.7, 14.1, ""),
    },
    "dprnn": {
        "lrs2_2mix": (12.7, 13.0, _ASTEROID_BY_AUTHORS),
        "librimix": (16.1, 16.6, ""),
        "wham": (13.7, 14.1, ""),
    },
    "dptnet": {
        "lrs2_2mix": (13.3, 13.6, _ASTEROID_BY_AUTHORS),
        "librimix": (16.7, 17.1, _DPTNET_BY_YAO),
        "wham": (14.9, 15.3, _DPTNET_BY_YAO),
    },
    "afrcnn16": {
        "lrs2_2mix": (13.0, 13.3, _ASTEROID_BY_AUTHORS),
        "librimix": (16.7, 17.2, ""),
        "wham": (14.5, 14.8, ""),
    },
    "sepformer": {
        "lrs2_2mix": (13.5, 13.8, _SPEECHBRAIN_BY_AUTHORS),
        "librimix": (16.5, 17.0, ""),
        "wham": (14.4, 15.0, _SPEECHBRAIN_BY_AUTHORS),
    },
    "tdanet": {
        "lrs2_2mix": (13.2, 13.5, ""),
        "librimix": (16.9, 17.4, ""),
        "wham": (14.8, 15.0, ""),
    },
    "tdanet_large": {
        "lrs2_2mix": (14.2, 14.5, ""),
        "librimix": (17.4, 17.9, ""),
        "wham": (15.2, 15.4, ""),
    },
}

# Table 2's "Params (M)" column: one value per model, the same on every benchmark.
_TABLE2_PARAMS_M: dict[str, float] = {
    "blstm_tasnet": 23.6,
    "convtasnet": 5.6,
    "sudormrf_1.0x": 2.7,
    "sudormrf_2.5x": 6.4,
    "dprnn": 2.7,
    "dptnet": 2.7,
    "afrcnn16": 6.1,
    "sepformer": 26.0,
    "tdanet": 2.3,
    "tdanet_large": 2.3,
}


def _paper_source(benchmark: str, location: str = "Table 2") -> Source:
    return Source(
        citation=PAPER_CITATION,
        location=location,
        url=PAPER_TABLE_URL,
        variant=_PAPER_VARIANTS[benchmark],
    )


# --- the paper's abstract: efficiency against Sepformer ----------------------------------------

_ABSTRACT_SOURCE = Source(
    citation=PAPER_CITATION,
    location="Abstract",
    url=PAPER_URL,
    variant="model cost, independent of the benchmark",
)
_EFFICIENCY: dict[str, dict[str, float]] = {
    "tdanet": {"macs_vs_sepformer": 0.05, "cpu_time_vs_sepformer": 0.10},
    "tdanet_large": {"macs_vs_sepformer": 0.10, "cpu_time_vs_sepformer": 0.24},
}


# --- toolkit baselines ------------------------------------------------------------------------

_ASTEROID_README = (
    "Asteroid, egs/librimix/ConvTasNet recipe README",
    "https://github.com/asteroid-team/asteroid/blob/6ca1bd2e00dd6df0ec1273ef3a0ef5c4bdeb9ceb/"
    "egs/librimix/ConvTasNet/README.md",
)
_SB_LIBRIMIX_README = (
    "SpeechBrain, recipes/LibriMix/separation README",
    "https://github.com/speechbrain/speechbrain/blob/87cc48323949aee31f8b39777af5358b3dc21dac/"
    "recipes/LibriMix/separation/README.md",
)
_SB_WHAM_README = (
    "SpeechBrain, recipes/WHAMandWHAMR/separation README",
    "https://github.com/speechbrain/speechbrain/blob/5796c88942970d37858b41dba5cd114da9d2e9e8/"
    "recipes/WHAMandWHAMR/separation/README.md",
)
# SpeechBrain's data preparation reads wav8k/min/ (prepare_data.py of each recipe) and its
# hparams set sample_rate 8000; the Libri2Mix recipe trains on train-360 mix_clean, the WHAM!
# recipe on wham_original mix_both.
_SB_LIBRIMIX_VARIANT = "Libri2Mix test, 8 kHz, min mode, sep_clean; trained on train-360"
_SB_WHAM_VARIANT = "WHAM! tt, 8 kHz, min mode, noisy separation (mix_both); trained on tr"


def _asteroid(setting: str, task: str, si_snri: float, sdri: float) -> Baseline:
    # The README: "All the models were trained using 8 Khz min subsets".
    source = Source(
        citation=_ASTEROID_README[0],
        location="Results",
        url=_ASTEROID_README[1],
        variant=f"Libri2Mix test, 8 kHz, min mode, {task}; trained on {setting}",
    )
    return Baseline(
        toolkit="asteroid",
        model="convtasnet",
        setting=f"{setting}, {task}",
        metrics={
            "si_snri": Figure(si_snri, "dB", source),
            "sdri": Figure(sdri, "dB", source),
        },
    )


def _speechbrain(
    citation: str, url: str, location: str, variant: str, setting: str, **values: float
) -> Baseline:
    source = Source(citation=citation, location=location, url=url, variant=variant)
    return Baseline(
        toolkit="speechbrain",
        model="sepformer",
        setting=setting,
        metrics={metric: Figure(value, "dB", source) for metric, value in values.items()},
    )


_BASELINES: dict[str, dict[str, Baseline]] = {
    "librimix": {
        "asteroid/convtasnet/train-100/sep_clean": _asteroid("train-100", "sep_clean", 13.0, 13.4),
        "asteroid/convtasnet/train-360/sep_clean": _asteroid("train-360", "sep_clean", 14.7, 15.1),
        "asteroid/convtasnet/train-100/sep_noisy": _asteroid("train-100", "sep_noisy", 10.8, 11.4),
        "asteroid/convtasnet/train-360/sep_noisy": _asteroid("train-360", "sep_noisy", 12.0, 12.5),
        "speechbrain/sepformer/speed-augment": _speechbrain(
            *_SB_LIBRIMIX_README,
            "Results",
            _SB_LIBRIMIX_VARIANT + ", speed augmentation",
            "train-360, speed augmentation",
            si_snri=20.1,
        ),
        "speechbrain/sepformer/dynamic-mixing": _speechbrain(
            *_SB_LIBRIMIX_README,
            "Results",
            _SB_LIBRIMIX_VARIANT + ", dynamic mixing",
            "train-360, dynamic mixing",
            si_snri=20.4,
        ),
        "speechbrain/sepformer/hf-sepformer-libri2mix": _speechbrain(
            "SpeechBrain, model card of speechbrain/sepformer-libri2mix",
            "https://huggingface.co/speechbrain/sepformer-libri2mix",
            "results table, release 16-09-22",
            _SB_LIBRIMIX_VARIANT,
            "released model (Hugging Face)",
            si_snri=20.6,
            sdri=20.9,
        ),
    },
    "wham": {
        "speechbrain/sepformer/speed-augment": _speechbrain(
            *_SB_WHAM_README,
            "Results",
            _SB_WHAM_VARIANT + ", speed augmentation",
            "tr, speed augmentation",
            si_snri=16.3,
        ),
        "speechbrain/sepformer/dynamic-mixing": _speechbrain(
            *_SB_WHAM_README,
            "Results",
            _SB_WHAM_VARIANT + ", dynamic mixing",
            "tr, dynamic mixing",
            si_snri=16.5,
        ),
        "speechbrain/sepformer/hf-sepformer-wham": _speechbrain(
            "SpeechBrain, model card of speechbrain/sepformer-wham",
            "https://huggingface.co/speechbrain/sepformer-wham",
            "results table, release 09-03-21",
            _SB_WHAM_VARIANT,
            "released model (Hugging Face)",
            si_snri=16.3,
            sdri=16.7,
        ),
    },
    # Neither Asteroid nor SpeechBrain publishes an LRS2-2Mix recipe result.
    "lrs2_2mix": {},
}

NOT_FOUND: tuple[str, ...] = (
    "paper: absolute MACs (G per second of audio), CPU and GPU inference time and GPU memory "
    "of each model (the paper's efficiency table) - not read in a primary source here; only "
    "the abstract's ratios to Sepformer are recorded (paper_efficiency)",
    "paper: the min/max mode of Libri2Mix and the sample rate and mode of WHAM! - not stated "
    "in the sources read",
    "SpeechBrain: SDRi of the recipe README rows (the README gives SI-SNRi only)",
    "Asteroid and SpeechBrain: no published LRS2-2Mix result",
)
"""Figures looked for and not recorded, for the report and the docs."""


def _check(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(
            f"no published figures for benchmark {benchmark!r}; "
            f"known benchmarks: {list(BENCHMARKS)}"
        )


def paper_results(benchmark: str) -> dict[str, dict[str, Figure]]:
    """The paper's Table 2 for one benchmark.

    Args:
        benchmark: ``"lrs2_2mix"``, ``"librimix"`` or ``"wham"``.

    Returns:
        ``model -> {"si_snri", "sdri", "params_m"} -> Figure``, in the table's row order. A
        metric the paper prints as "-" is absent (see `paper_gaps`).

    Raises:
        ValueError: For a benchmark the paper does not report.
    """
    _check(benchmark)
    results: dict[str, dict[str, Figure]] = {}
    source = _paper_source(benchmark)
    for model, rows in _TABLE2.items():
        si_snri, sdri, note = rows[benchmark]
        metrics: dict[str, Figure] = {}
        if si_snri is not None:
            metrics["si_snri"] = Figure(si_snri, "dB", source, note)
        if sdri is not None:
            metrics["sdri"] = Figure(sdri, "dB", source, note)
        metrics["params_m"] = Figure(_TABLE2_PARAMS_M[model], "M", source)
        results[model] = metrics
    return results


def paper_gaps(benchmark: str) -> list[tuple[str, str]]:
    """``(model, metric)`` pairs that Table 2 prints as "-" (not reported) for `benchmark`."""
    _check(benchmark)
    gaps = []
    for model, rows in _TABLE2.items():
        si_snri, sdri, _ = rows[benchmark]
        gaps += [(model, m) for m, v in (("si_snri", si_snri), ("sdri", sdri)) if v is None]
    return gaps


def paper_efficiency() -> dict[str, dict[str, Figure]]:
    """The abstract's cost ratios to Sepformer: ``model -> metric -> Figure`` (unit "ratio").

    ``macs_vs_sepformer``: multiply-accumulate operations as a fraction of Sepformer's;
    ``cpu_time_vs_sepformer``: CPU inference time as a fraction of Sepformer's.
    """
    return {
        model: {
            metric: Figure(value, "ratio", _ABSTRACT_SOURCE) for metric, value in values.items()
        }
        for model, values in _EFFICIENCY.items()
    }


def toolkit_baselines(benchmark: str) -> dict[str, Baseline]:
    """Results Asteroid and SpeechBrain publish for their own recipes on `benchmark`.

    Args:
        benchmark: ``"lrs2_2mix"``, ``"librimix"`` or ``"wham"``.

    Returns:
        ``id -> Baseline`` (ids like ``"asteroid/convtasnet/train-100/sep_clean"``); empty for
        LRS2-2Mix, where neither toolkit publishes one. Each figure's ``source.variant`` names
        the exact data variant.

    Raises:
        ValueError: For a benchmark without published figures.
    """
    _check(benchmark)
    return dict(_BASELINES[benchmark])
