"""make gpu-check: its planning, budget, result layout and report, checked without a GPU."""

from __future__ import annotations

import json
import time

import pytest
import torch

from asteroid_tdanet.bench import gpu_check
from asteroid_tdanet.bench.gpu_check import (
    Budget,
    Case,
    build,
    card_slug,
    format_report,
    measure_case,
    plan_cases,
    run_cases,
)
from asteroid_tdanet.masker import TDANetMasker
from asteroid_tdanet.provenance import HEADER_KEYS, provenance, write_result


def test_the_plan_is_what_the_issue_asks_for():
    keys = [c.key for c in plan_cases()]
    expected_inference = {
        f"inference.{m}.16k.{s}.fp32" for m in ("tdanet", "tdanet_large") for s in ("1s", "60s")
    }
    expected_train = {
        f"train.{m}.{p}.{c}.{k}"
        for m in ("tdanet.8k", "tdanet_large.16k")
        for p in ("fp32", "bf16-mixed")
        for c in ("eager", "compiled")
        for k in ("plain", "ckpt")
    }
    assert len(keys) == len(set(keys)) == 20
    assert set(keys) == expected_inference | expected_train
    # Cheap and predictable first, compilation last; keys are usable as JSON key paths.
    kinds = [c.category for c in plan_cases()]
    assert kinds == sorted(kinds, key=["inference", "train-eager", "train-compiled"].index)
    assert not any("/" in k for k in keys)
    for case in plan_cases():
        if case.task == "train":
            assert (case.batch_size, case.seconds) == (4, 3.0)
            assert case.sample_rate == {"tdanet": 8000, "tdanet_large": 16000}[case.model]
        else:
            assert (case.batch_size, case.sample_rate) == (1, 16000)


def test_cases_build_the_right_models():
    for case in plan_cases():
        model = build(case, tiny=True)
        assert model.enc_kernel_ms == {"tdanet": 4.0, "tdanet_large": 2.0}[case.model]
        assert model.sample_rate == case.sample_rate
        assert model.masker.checkpoint_blocks == case.checkpoint


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_measure(clock: FakeClock, durations: dict[str, float], fail: set[str] = frozenset()):
    def measure(case: Case):
        clock.now += durations.get(case.category, 1.0)
        if case.key in fail:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return {"median_ms": 1.0, "q1_ms": 1.0, "q3_ms": 1.0, "runs": 3, "peak_memory_mb": 5.0}

    return measure


def test_cases_that_do_not_fit_the_budget_are_skipped_with_the_reason():
    clock = FakeClock()
    # 100 s after the reserve: 4 inference cases (5 s), then eager ones take 20 s each.
    budget = Budget(110.0, clock=clock, reserve=10.0)
    durations = {"inference": 5.0, "train-eager": 20.0, "train-compiled": 60.0}
    entries = run_cases(plan_cases(), fake_measure(clock, durations), budget)
    status = {k: e["status"] for k, e in entries.items()}
    ran = [k for k, s in status.items() if s == "ok"]
    # 4 x 5 s, then eager cases while they fit: 20 + 4 x 20 = 100 s.
    assert ran == [c.key for c in plan_cases()][:8]
    skipped = [e for e in entries.values() if e["status"] == "skipped"]
    assert len(skipped) == 12 and all("time budget" in e["reason"] for e in skipped)
    assert (
        "0 s left, this case takes ~20 s"
        in entries["train.tdanet_large.16k.fp32.eager.plain"]["reason"]
    )
    assert clock.now <= budget.seconds - budget.reserve


def test_estimates_follow_the_longest_case_of_each_category():
    clock = FakeClock()
    budget = Budget(1000.0, clock=clock, reserve=0.0)
    eager = [c for c in plan_cases() if c.category == "train-eager"]
    assert budget.estimate(eager[0]) == gpu_check.FIRST_ESTIMATES["train-eager"]
    budget.record(eager[0], 70.0)
    budget.record(eager[1], 40.0)
    assert budget.estimate(eager[2]) == 70.0
    clock.now = 950.0
    assert budget.left() == 50.0
    entries = run_cases(eager[2:3], fake_measure(clock, {}), budget)
    assert entries[eager[2].key]["status"] == "skipped"


def test_a_failing_case_is_recorded_and_the_run_goes_on():
    clock = FakeClock()
    failing = "train.tdanet.8k.fp32.eager.plain"
    saved: list[int] = []
    entries = run_cases(
        plan_cases(),
        fake_measure(clock, {}, fail={failing}),
        Budget(10_000.0, clock=clock),
        on_result=lambda e: saved.append(len(e)),
    )
    assert entries[failing]["status"] == "error"
    assert entries[failing]["reason"] == (
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert sum(e["status"] == "ok" for e in entries.values()) == 19
    assert saved == list(range(1, 21))  # saved after every case


def test_bf16_cases_are_skipped_on_a_gpu_without_bf16():
    clock = FakeClock()
    entries = run_cases(
        plan_cases(), fake_measure(clock, {}), Budget(10_000.0, clock=clock), supports_bf16=False
    )
    for entry in entries.values():
        assert (entry["status"] == "skipped") == (entry["precision"] == "bf16-mixed")


def test_a_case_running_past_the_deadline_is_stopped():
    budget = Budget(1.5, reserve=1.0)  # half a second left
    budget.record(plan_cases()[0], 0.1)  # and inference cases look quick

    finished = []

    def slow(case):
        time.sleep(5)
        finished.append(case)  # only reached when the deadline did not interrupt the sleep
        return {}

    entries = run_cases(plan_cases()[:2], slow, budget)
    assert not finished
    first, second = entries.values()
    assert first["status"] == "error" and "stopped at the time budget" in first["reason"]
    assert second["status"] == "skipped"


def test_result_file_layout(tmp_path):
    clock = FakeClock()
    entries = run_cases(plan_cases()[:3], fake_measure(clock, {}), Budget(100.0, clock=clock))
    path = write_result(
        tmp_path / f"gpu-{card_slug('NVIDIA H200')}.json",
        {"card": "NVIDIA H200", "cases": entries},
        provenance(gpu_check.COMMAND),
    )
    assert path.name == "gpu-nvidia-h200.json"
    data = json.loads(path.read_text())
    assert all(k in data for k in HEADER_KEYS) and data["command"] == "make gpu-check"
    case = data["cases"]["inference.tdanet.16k.1s.fp32"]
    assert case["status"] == "ok" and case["peak_memory_mb"] == 5.0 and case["seconds"] == 1.0


def test_report_lists_every_case():
    entries = {
        "a": {"status": "ok", "median_ms": 12.345, "q1_ms": 12.0, "q3_ms": 13.0, "runs": 10}
        | {"peak_memory_mb": 1536.4, "wall_seconds": 9.0},
        "b": {"status": "ok", "median_ms": 2.0, "q1_ms": 2.0, "q3_ms": 2.0, "runs": 3}
        | {"peak_memory_mb": None, "wall_seconds": 1.0},
        "c": {"status": "skipped", "reason": "time budget: 3 s left, this case takes ~90 s"},
    }
    report = format_report(entries, "NVIDIA H200")
    assert report.splitlines()[0] == "# GPU check: NVIDIA H200"
    assert "| a | 12.3 ms | 12.0-13.0 ms | 1,536 MiB | ok (10 runs) |" in report
    assert "| b | 2.0 ms | 2.0-2.0 ms | - | ok (3 runs) |" in report
    assert "| c | - | - | - | skipped: time budget: 3 s left, this case takes ~90 s |" in report
    assert "2 of 3 cases measured." in report


def test_card_slug():
    assert card_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert card_slug("Tesla V100-SXM2-16GB") == "tesla-v100-sxm2-16gb"
    assert card_slug("???") == "unknown-gpu"


def test_without_a_gpu_it_stops_with_a_message_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs one CUDA GPU" in err and "torch.cuda.is_available() is False" in err
    assert list(tmp_path.iterdir()) == []


QUICK = {"repeats": 2, "warmup": 1}


def small(case: Case) -> Case:
    """The same case on a short input, to keep CPU runs cheap."""
    return Case(
        case.task,
        case.model,
        case.sample_rate,
        0.25,
        2,
        *[getattr(case, f) for f in ("precision", "compiled", "checkpoint")],
    )


@pytest.mark.parametrize(
    "key", ["inference.tdanet.16k.1s.fp32", "train.tdanet_large.16k.fp32.eager.ckpt"]
)
def test_measure_case_runs_on_cpu(key):
    case = small(next(c for c in plan_cases() if c.key == key))
    figures = measure_case(case, device="cpu", tiny=True, **QUICK)
    assert figures["runs"] >= 1 and 0 < figures["q1_ms"] <= figures["median_ms"] <= figures["q3_ms"]
    assert figures["peak_memory_mb"] is None  # no memory figures off CUDA


def test_compiled_cases_compile_the_block(monkeypatch):
    compiled = []
    monkeypatch.setattr(TDANetMasker, "compile_block", lambda self, **kw: compiled.append(self))
    for key in ("train.tdanet.8k.fp32.eager.plain", "train.tdanet.8k.fp32.compiled.plain"):
        case = small(next(c for c in plan_cases() if c.key == key))
        measure_case(case, device="cpu", tiny=True, **QUICK)
    assert len(compiled) == 1


@pytest.mark.slow
def test_a_compiled_checkpointed_training_step_runs_on_cpu():
    case = small(next(c for c in plan_cases() if c.key == "train.tdanet.8k.fp32.compiled.ckpt"))
    figures = measure_case(case, device="cpu", tiny=True, **QUICK)
    assert figures["runs"] >= 1 and figures["median_ms"] > 0
