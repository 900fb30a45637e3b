"""Accelerator timing functions, exercised on CPU (no memory figures) and on CUDA if present."""

from __future__ import annotations

import pytest
import torch

from asteroid_tdanet.bench.gpu import inference_latency, train_step_time
from asteroid_tdanet.bench.zoo import build_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_inference_latency(device):
    model = build_model("convtasnet", 8000, tiny=True)
    row = inference_latency(model, 8000, 0.25, device=device, repeats=2, warmup=1)
    assert row["n"] == 2 and row["median_s"] > 0 and row["seconds"] == 0.25
    assert (row["peak_bytes"] is None) == (device == "cpu")


@pytest.mark.parametrize("device", DEVICES)
def test_train_step_leaves_the_callers_model_untouched(device):
    model = build_model("convtasnet", 8000, tiny=True)
    before = [p.detach().clone() for p in model.parameters()]
    row = train_step_time(
        model, 8000, batch_size=2, seconds=0.25, device=device, repeats=2, warmup=1
    )
    assert row["n"] == 2 and row["batch_size"] == 2 and row["dtype"] == "fp32"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not model.training


def test_unknown_dtype():
    model = build_model("convtasnet", 8000, tiny=True)
    with pytest.raises(ValueError, match="dtype"):
        inference_latency(model, 8000, 0.1, device="cpu", dtype="fp8", repeats=1)
