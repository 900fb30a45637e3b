"""Published reference figures: complete, sourced, plausible, and equal to what the sources print.

The spot values below were copied by hand from the sources (the paper's Table 2 as the authors
publish it in JusperLee/TDANet's README, the Asteroid and SpeechBrain READMEs and model cards),
not from the module under test.
"""

from __future__ import annotations

import pytest

from asteroid_tdanet.data.registry import NAMES
from asteroid_tdanet.paper import (
    BENCHMARK_LABELS,
    BENCHMARKS,
    CORE_MODELS,
    MODEL_LABELS,
    NOT_FOUND,
    Figure,
    paper_efficiency,
    paper_gaps,
    paper_results,
    toolkit_baselines,
)

# (benchmark, model, metric) -> value printed in the paper's Table 2.
PAPER_SPOT_VALUES = {
    ("lrs2_2mix", "tdanet", "si_snri"): 13.2,
    ("lrs2_2mix", "tdanet_large", "si_snri"): 14.2,
    ("lrs2_2mix", "tdanet_large", "sdri"): 14.5,
    ("lrs2_2mix", "afrcnn16", "sdri"): 13.3,
    ("lrs2_2mix", "sepformer", "si_snri"): 13.5,
    ("librimix", "tdanet", "sdri"): 17.4,
    ("librimix", "convtasnet", "si_snri"): 12.2,
    ("librimix", "dprnn", "si_snri"): 16.1,
    ("librimix", "sepformer", "sdri"): 17.0,
    ("wham", "tdanet", "si_snri"): 14.8,
    ("wham", "tdanet_large", "sdri"): 15.4,
    ("wham", "sepformer", "si_snri"): 14.4,
    ("wham", "convtasnet", "si_snri"): 12.7,
    ("wham", "dptnet", "sdri"): 15.3,
    ("librimix", "tdanet", "params_m"): 2.3,
    ("wham", "sepformer", "params_m"): 26.0,
    ("lrs2_2mix", "convtasnet", "params_m"): 5.6,
}

# (benchmark, baseline id, metric) -> value printed by the toolkit.
BASELINE_SPOT_VALUES = {
    ("librimix", "asteroid/convtasnet/train-100/sep_clean", "si_snri"): 13.0,
    ("librimix", "asteroid/convtasnet/train-100/sep_clean", "sdri"): 13.4,
    ("librimix", "asteroid/convtasnet/train-360/sep_noisy", "sdri"): 12.5,
    ("librimix", "speechbrain/sepformer/dynamic-mixing", "si_snri"): 20.4,
    ("librimix", "speechbrain/sepformer/hf-sepformer-libri2mix", "si_snri"): 20.6,
    ("librimix", "speechbrain/sepformer/hf-sepformer-libri2mix", "sdri"): 20.9,
    ("wham", "speechbrain/sepformer/speed-augment", "si_snri"): 16.3,
    ("wham", "speechbrain/sepformer/hf-sepformer-wham", "sdri"): 16.7,
}

PLAUSIBLE = {"dB": (0.0, 30.0), "M": (0.1, 100.0), "ratio": (0.0, 1.0)}


def all_figures() -> list[Figure]:
    figures = []
    for benchmark in BENCHMARKS:
        figures += [f for m in paper_results(benchmark).values() for f in m.values()]
        figures += [f for b in toolkit_baselines(benchmark).values() for f in b.metrics.values()]
    figures += [f for m in paper_efficiency().values() for f in m.values()]
    return figures


def test_benchmarks_are_registry_names():
    assert set(BENCHMARKS) <= set(NAMES)
    assert set(BENCHMARK_LABELS) == set(BENCHMARKS)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_core_models_are_complete_except_documented_gaps(benchmark):
    results = paper_results(benchmark)
    gaps = set(paper_gaps(benchmark))
    for model in CORE_MODELS:
        for metric in ("si_snri", "sdri", "params_m"):
            assert (metric in results[model]) != ((model, metric) in gaps), (model, metric)
    assert set(results) <= set(MODEL_LABELS)


def test_the_only_gap_among_core_models_is_conv_tasnet_sdri_on_wham():
    # Table 2 prints "-" for Conv-TasNet's SDRi on WHAM! (and BLSTM-TasNet's).
    core_gaps = {
        (b, m, metric) for b in BENCHMARKS for m, metric in paper_gaps(b) if m in CORE_MODELS
    }
    assert core_gaps == {("wham", "convtasnet", "sdri")}
    assert set(paper_gaps("wham")) == {("convtasnet", "sdri"), ("blstm_tasnet", "sdri")}


def test_every_figure_has_a_source():
    figures = all_figures()
    assert len(figures) > 70
    for fig in figures:
        src = fig.source
        assert src.citation and src.location and src.variant, fig
        assert src.url.startswith("https://"), fig
        assert src.url in src.cite() and src.variant in src.cite()


def test_values_are_plausible():
    for fig in all_figures():
        low, high = PLAUSIBLE[fig.unit]
        assert low < fig.value < high, fig


@pytest.mark.parametrize(("key", "value"), PAPER_SPOT_VALUES.items(), ids=str)
def test_paper_values_equal_the_printed_table(key, value):
    benchmark, model, metric = key
    fig = paper_results(benchmark)[model][metric]
    assert fig.value == value
    assert fig.source.location == "Table 2"
    assert "2209.15200" in fig.source.citation


def test_tdanet_large_beats_tdanet_everywhere():
    # The paper's claim, which a swapped row would break.
    for benchmark in BENCHMARKS:
        res = paper_results(benchmark)
        for metric in ("si_snri", "sdri"):
            assert res["tdanet_large"][metric].value > res["tdanet"][metric].value


def test_notes_say_who_trained_the_baselines():
    lrs2 = paper_results("lrs2_2mix")
    assert "Asteroid" in lrs2["convtasnet"]["si_snri"].note
    assert "SpeechBrain" in lrs2["sepformer"]["sdri"].note
    assert "SpeechBrain" in paper_results("wham")["sepformer"]["si_snri"].note
    assert paper_results("librimix")["tdanet"]["si_snri"].note == ""


def test_variants_name_sample_rate_and_mode():
    assert "16 kHz" in paper_results("lrs2_2mix")["tdanet"]["si_snri"].source.variant
    for benchmark in ("librimix", "wham"):
        for baseline in toolkit_baselines(benchmark).values():
            for fig in baseline.metrics.values():
                assert "8 kHz" in fig.source.variant and "min mode" in fig.source.variant
    noisy = toolkit_baselines("librimix")["asteroid/convtasnet/train-100/sep_noisy"]
    assert "sep_noisy" in noisy.metrics["si_snri"].source.variant


@pytest.mark.parametrize(("key", "value"), BASELINE_SPOT_VALUES.items(), ids=str)
def test_baseline_values_equal_the_toolkits(key, value):
    benchmark, name, metric = key
    assert toolkit_baselines(benchmark)[name].metrics[metric].value == value


def test_baselines_name_their_toolkit_and_model():
    for benchmark in BENCHMARKS:
        for name, baseline in toolkit_baselines(benchmark).items():
            assert name.startswith(f"{baseline.toolkit}/{baseline.model}/")
            assert baseline.model in MODEL_LABELS
    assert toolkit_baselines("lrs2_2mix") == {}


def test_efficiency_ratios_from_the_abstract():
    eff = paper_efficiency()
    assert eff["tdanet"]["macs_vs_sepformer"].value == 0.05
    assert eff["tdanet"]["cpu_time_vs_sepformer"].value == 0.10
    assert eff["tdanet_large"]["macs_vs_sepformer"].value == 0.10
    assert eff["tdanet_large"]["cpu_time_vs_sepformer"].value == 0.24
    assert eff["tdanet"]["macs_vs_sepformer"].source.location == "Abstract"


def test_missing_figures_are_listed():
    assert any("MACs" in item for item in NOT_FOUND)


@pytest.mark.parametrize("benchmark", ["wsj0_2mix", "mini2mix", "LibriMix"])
@pytest.mark.parametrize("function", [paper_results, toolkit_baselines, paper_gaps])
def test_unknown_benchmark_is_a_clear_error(function, benchmark):
    with pytest.raises(ValueError, match=rf"{benchmark}.*lrs2_2mix.*librimix.*wham"):
        function(benchmark)
