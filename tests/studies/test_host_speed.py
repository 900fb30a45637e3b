"""The host-speed reference step: what it reports, and that it leaves torch's threads alone."""

import json
import statistics
import subprocess
import sys

import pytest
import torch

from asteroid_tdanet.studies import host_speed


def test_the_figure_is_the_median_of_the_rounds_and_threads_are_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = host_speed.reference_step_ms(steps=2, rounds=3, warmup=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(result["rounds_ms"]) == 3 and result["steps"] == 2
    assert all(value > 0 for value in result["rounds_ms"])
    assert result["median_ms"] == pytest.approx(statistics.median(result["rounds_ms"]), abs=0.06)
    assert result["workload"] == host_speed.WORKLOAD


def test_the_reference_network_is_fixed_and_trains():
    first, second = host_speed.reference_model(), host_speed.reference_model()
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(2, 1, 12000)
    assert first(x).shape == x.shape  # encoder and decoder invert each other's framing


@pytest.mark.parametrize("steps, rounds", [(0, 3), (3, 0)])
def test_no_steps_or_rounds_is_a_clear_error(steps, rounds):
    with pytest.raises(ValueError, match="at least 1"):
        host_speed.reference_step_ms(steps=steps, rounds=rounds)


def test_the_command_prints_one_json_line():
    out = subprocess.run(
        [sys.executable, "-m", host_speed.__name__, "--steps", "1", "--rounds", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["steps"] == 1
