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
from asteroid_tdanet.recipes.config import dump_conf, validate


def make_exp(root: Path, tag: str, si_snri: float | None) -> None:
    register_test_models()
    exp = root / tag
    dump_conf(validate(tiny_conf("ScaledMixture", {})), exp / "conf.yml")
    save_model_file(ScaledMixture(), exp / "best_model.pth")
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
    assert lines[2].startswith("| a_model | ScaledMixture | 10.00 | 10.50 | 0.000 |")
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
