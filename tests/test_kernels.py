"""Inference-time matrix products through oneDNN (asteroid_tdanet.kernels)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

from asteroid_tdanet import kernels

needs_onednn = pytest.mark.skipif(
    not kernels.onednn_linear_available(), reason="this torch build has no oneDNN matmul"
)


def operands(*shape: int, bias: bool = True, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, 48, generator=generator, dtype=dtype)
    w = torch.randn(24, 48, generator=generator, dtype=dtype)
    b = torch.randn(24, generator=generator, dtype=dtype) if bias else None
    return x, w, b


@pytest.fixture(autouse=True)
def onednn_chosen(monkeypatch):
    """Whether oneDNN is faster is measured per CPU; these tests fix the answer to oneDNN."""
    monkeypatch.setattr(kernels, "onednn_linear_faster", lambda: kernels.onednn_linear_available())


def ops_run(fn) -> set[str]:
    with profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@needs_onednn
@pytest.mark.parametrize("shape", [(7,), (3, 11), (2, 5, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_inference_products_match_f_linear_and_run_on_onednn(shape, bias):
    x, w, b = operands(*shape, bias=bias)
    with torch.inference_mode():
        out = kernels.linear(x, w, b)
        assert "mkldnn::_linear_pointwise" in ops_run(lambda: kernels.linear(x, w, b))
    torch.testing.assert_close(out, F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    # A transposed (non-contiguous) input is read correctly too.
    xt = x.mT.contiguous().mT if x.ndim > 1 else x
    with torch.no_grad():
        torch.testing.assert_close(kernels.linear(xt, w, b), F.linear(x, w, b))


def test_gradients_and_float64_take_f_linear():
    x, w, b = operands(4, 6)
    w.requires_grad_(True)
    out = kernels.linear(x, w, b)
    assert out.grad_fn is not None
    out.square().sum().backward()
    reference = w.detach().clone().requires_grad_(True)
    F.linear(x, reference, b).square().sum().backward()
    torch.testing.assert_close(w.grad, reference.grad)
    x64, w64, b64 = operands(4, 6, dtype=torch.float64)
    with torch.inference_mode():
        assert "mkldnn::_linear_pointwise" not in ops_run(lambda: kernels.linear(x64, w64, b64))
        assert torch.equal(kernels.linear(x64, w64, b64), F.linear(x64, w64, b64))


def test_switched_off_is_f_linear():
    x, w, b = operands(5, 3)
    with torch.inference_mode(), kernels.onednn_linear(False):
        assert "mkldnn::_linear_pointwise" not in ops_run(lambda: kernels.linear(x, w, b))
        assert torch.equal(kernels.linear(x, w, b), F.linear(x, w, b))
    assert kernels.onednn_linear_enabled()  # restored


@needs_onednn
def test_measured_choice_sends_products_to_f_linear_when_onednn_is_slower(monkeypatch):
    monkeypatch.setattr(kernels, "onednn_linear_faster", lambda: False)
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        assert "mkldnn::_linear_pointwise" not in ops_run(lambda: kernels.linear(x, w, b))
        assert torch.equal(kernels.linear(x, w, b), F.linear(x, w, b))


def test_measured_choice_is_a_cached_answer(monkeypatch):
    monkeypatch.undo()  # the real measurement, not the fixture's fixed answer
    kernels.onednn_linear_faster.cache_clear()
    first = kernels.onednn_linear_faster()
    assert isinstance(first, bool)
    assert kernels.onednn_linear_faster.cache_info().hits == 0
    assert kernels.onednn_linear_faster() is first
    assert kernels.onednn_linear_faster.cache_info().hits == 1
    if not kernels.onednn_linear_available():
        assert first is False


def test_the_measurement_is_not_counted_by_an_active_flop_counter(monkeypatch):
    # It runs inside a process's first forward pass: a MAC count of that pass (tdanet-bench,
    # results-cpu-speed) must not include the probes' products.
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.undo()
    kernels.onednn_linear_faster.cache_clear()
    kernels.onednn_linear_available.cache_clear()
    with FlopCounterMode(display=False) as counter:
        kernels.onednn_linear_faster()
    assert kernels.onednn_linear_faster.cache_info().misses == 1
    assert counter.get_total_flops() == 0
