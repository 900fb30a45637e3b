"""CPU timing helpers: statistics, interleaving, threads. No test asserts a time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asteroid_tdanet.bench.timing import (
    all_cores,
    cpu_rtf,
    num_threads,
    parse_threads,
    summarize,
    time_interleaved,
)


def test_summarize_matches_hand_computed_quartiles():
    stats = summarize([4.0, 1.0, 3.0, 2.0], audio_seconds=2.0)
    assert stats.n == 4
    assert stats.median_s == 2.5
    # inclusive quartiles of 1, 2, 3, 4: 1 + 0.75 * 1 and 1 + 2.25 * 1
    assert stats.q1_s == pytest.approx(1.75)
    assert stats.q3_s == pytest.approx(3.25)
    assert (stats.min_s, stats.max_s) == (1.0, 4.0)
    assert stats.rtf == 1.25


def test_summarize_single_and_empty():
    assert summarize([0.5], 1.0).q1_s == 0.5
    with pytest.raises(ValueError, match="no timings"):
        summarize([], 1.0)


def test_time_interleaved_rotates_order_and_warms_up():
    calls: list[str] = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = time_interleaved(runners, repeats=3, warmup=2)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]
    assert calls[6:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_time_interleaved_runs_in_inference_mode():
    seen = []
    time_interleaved({"x": lambda: seen.append(torch.is_inference_mode_enabled())}, repeats=1)
    assert seen == [True, True]


def test_threads_parsing_and_restoring():
    assert parse_threads("all") == all_cores() >= 1
    assert parse_threads("3") == 3
    with pytest.raises(ValueError):
        parse_threads("0")
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_rtf_returns_a_positive_ratio_and_restores_mode():
    model = nn.Sequential(nn.Unflatten(1, (1, -1)), nn.Conv1d(1, 2, 16, stride=8)).train()
    rtf = cpu_rtf(model, sample_rate=8000, seconds=0.1, repeats=2)
    assert isinstance(rtf, float) and rtf > 0
    assert model.training
