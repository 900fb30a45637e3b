"""Stage 5 library: the comparison table, CSV and figure over exp/."""

from __future__ import annotations

import builtins
import csv
import json
from pathlib import Path

import pytest
from recipe_helpers import ScaledMixture, register_test_models, tiny_conf

from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.recipes.compare import collect, compare, markdown_table
from asteroid_tdanet.recipes.config import build_model, dump_conf, validate


def make_exp(root: Path, tag: str, si_snri: float | None, model: str = "ScaledMixture") -> None:
    register_test_models()
    exp = root / tag
    if model == "ScaledMixture":
        dump_conf(validate(tiny_conf("ScaledMixture", {})), exp / "conf.yml")
        save_model_file(ScaledMixture(), exp / "best_model.pth")
    else:
        conf = validate(tiny_conf(model))
        dump_conf(conf, exp / "conf.yml")
        save_model_file(build_model(conf), exp / "best_model.pth")
    if si_snri is not None:
        (exp / "results").mkdir()
        metrics = {  # SDR failed on one utterance: its count differs
            "si_sdr_imp": {"mean": si_snri, "std": 1.0, "count": 4},
            "sdr_imp": {"mean": si_snri + 0.5, "std": 1.0, "count": 3},
            "si_sdr": {"mean": si_snri + 7.0, "std": 1.0, "count": 4},
        }
        (exp / "results" / "final_metrics.json").write_text(json.dumps(metrics))


def test_compare_tables_every_evaluated_experiment(tmp_path: Path):
    make_exp(tmp_path, "b_model", 12.0)
    make_exp(tmp_path, "a_model", 10.0)
    make_exp(tmp_path, "not_evaluated", None)
    table = compare(tmp_path, rtf_repeats=0)
    lines = table.splitlines()
    assert len(lines) == 4 and "SI-SNRi (dB)" in lines[0]
    # No benchmark given: the paper columns say n/a.
    assert lines[2].startswith("| a_model | ScaledMixture | 10.00 | n/a | 10.50 | n/a | 0.000 |")
    with open(tmp_path / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["tag"] for r in rows] == ["a_model", "b_model"]
    assert float(rows[1]["si_snri"]) == 12.0 and float(rows[1]["params_m"]) == 2e-6
    assert float(rows[1]["sdri"]) == 12.5 and rows[1]["n_test"] == "4"  # improvements, counts
    assert rows[0]["cpu_rtf"] == ""  # not measured with rtf_repeats=0
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert (tmp_path / "compare.md").read_text().startswith(table)


def test_compare_without_the_bench_module_says_n_a(tmp_path: Path, monkeypatch):
    make_exp(tmp_path, "a", 10.0)
    real_import = builtins.__import__

    def no_bench(name, *args, **kwargs):
        if name == "asteroid_tdanet.bench":
            raise ImportError("absent for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bench)
    rows = collect(tmp_path, rtf_repeats=0)
    assert rows[0]["gmacs_per_s"] is None
    assert "| n/a | n/a |" in markdown_table(rows)


def test_compare_needs_evaluated_experiments(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no evaluated experiment"):
        compare(tmp_path)
    with pytest.raises(FileNotFoundError):
        compare(tmp_path / "absent")


def test_the_paper_column_and_the_published_results(tmp_path: Path, monkeypatch):
    from matplotlib.axes import Axes

    from asteroid_tdanet import paper

    make_exp(tmp_path, "tdanet", 15.2, model="TDANet")
    make_exp(tmp_path, "convtasnet", 11.0, model="ConvTasNet")
    make_exp(tmp_path, "scaled", 3.0)
    points = []
    scatter = Axes.scatter

    def spy(self, x, y, *args, **kwargs):
        points.append((float(y), kwargs.get("facecolors")))
        return scatter(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", spy)
    table = compare(tmp_path, rtf_repeats=0, benchmark="librimix")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines()[2:]}
    # Table 2 of the paper, Libri2Mix: TDANet 16.9 / 17.4, Conv-TasNet 12.2 / 12.7 (dB).
    assert rows["tdanet"][2:6] == ["15.20", "16.90", "15.70", "17.40"]
    assert rows["convtasnet"][2:6] == ["11.00", "12.20", "11.50", "12.70"]
    assert rows["scaled"][2:6] == ["3.00", "n/a", "3.50", "n/a"]  # not a model of the paper
    with open(tmp_path / "compare.csv") as handle:
        csv_rows = {r["tag"]: r for r in csv.DictReader(handle)}
    tdanet_paper = paper.paper_results("librimix")["tdanet"]
    assert float(csv_rows["tdanet"]["paper_si_snri"]) == tdanet_paper["si_snri"].value
    assert csv_rows["scaled"]["paper_sdri"] == ""
    # The figure: a hollow marker at the paper's value for each model it reports.
    assert sorted(y for y, face in points if face == "none") == [12.2, 16.9]

    md = (tmp_path / "compare.md").read_text()
    assert "## Published results on Libri2Mix" in md
    for label, si_snri, sdri in [
        ("TDANet", 16.9, 17.4),
        ("TDANet Large", 17.4, 17.9),
        ("Conv-TasNet", 12.2, 12.7),
        ("DualPathRNN", 16.1, 16.6),
        ("A-FRCNN-16", 16.7, 17.2),
        ("Sepformer", 16.5, 17.0),
    ]:
        assert f"| {label} | {si_snri:.1f} | {sdri:.1f} |" in md, label
    assert "| TDANet | 16.9 | 17.4 | 2.3 | tdanet |" in md  # which experiment is that model
    assert "| asteroid | Conv-TasNet | train-100, sep_clean | 13.0 | 13.4 |" in md
    assert "| speechbrain | Sepformer | train-360, dynamic mixing | 20.4 | - |" in md
    assert "Table 2" in md and paper.PAPER_TABLE_URL in md  # the source of each figure
    for baseline in paper.toolkit_baselines("librimix").values():
        assert next(iter(baseline.metrics.values())).source.url in md


def test_published_results_of_each_benchmark(tmp_path: Path):
    make_exp(tmp_path, "tdanet", 12.0, model="TDANet")
    compare(tmp_path, rtf_repeats=0, benchmark="lrs2_2mix")
    md = (tmp_path / "compare.md").read_text()
    assert "| TDANet | 13.2 | 13.5 |" in md
    assert "Neither Asteroid nor SpeechBrain publishes a result on LRS2-2Mix" in md
    compare(tmp_path, rtf_repeats=0, benchmark="wham")
    md = (tmp_path / "compare.md").read_text()
    assert "| TDANet | 14.8 | 15.0 |" in md and "| Conv-TasNet | 12.7 | - |" in md
    compare(tmp_path, rtf_repeats=0, benchmark="mini2mix")  # not in the paper: no section
    assert "Published results" not in (tmp_path / "compare.md").read_text()
