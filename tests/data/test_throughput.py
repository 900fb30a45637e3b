"""The data-loader throughput study (make results-dynamic-mixing): what it measures and states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asteroid_tdanet.data import throughput


def test_throughput_result_reports_rates_and_the_cited_gpu_step(tmp_path: Path):
    out = tmp_path / "throughput.json"
    throughput.main(
        ["--out", str(out), "--mixtures", "4", "--items", "6", "--repeats", "1", "--segment", "1"]
    )
    result = json.loads(out.read_text())
    assert (
        result["command"] == "make results-dynamic-mixing"
        and "load_average_1min" in (result["machine"])
    )
    rates = result["items_per_s"]
    assert set(rates) == {
        "fixed_mixtures",
        "dynamic_mixing",
        "dynamic_mixing_speed_perturb",
        "dynamic_mixing_in_memory",
    }
    assert all(rate > 0 for rate in rates.values())
    step = result["gpu_step"]
    # The GPU figure is an input (cited), never a measurement of this machine.
    assert step["measured"] is False and "cited" in step["source"]
    assert step["items_per_s_needed"] == pytest.approx(4 / (step["step_ms"] / 1000), abs=0.05)
    for name, rate in rates.items():
        # Rounded rates: workers needed = items a step needs per second / items one worker makes.
        assert result["workers_needed"][name] == pytest.approx(
            step["items_per_s_needed"] / rate, rel=0.02, abs=6e-4
        ), name
        assert result["ratio_to_fixed"][name] == pytest.approx(
            rate / rates["fixed_mixtures"], rel=0.02, abs=6e-4
        ), name
