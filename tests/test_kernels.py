"""Inference-time matrix products through oneDNN (asteroid_tdanet.kernels)."""

from __future__ import annotations

import threading
import time

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
def onednn_chosen(kernel_choice):
    """Which kernel is faster is measured per CPU and shape; these tests fix it to oneDNN."""
    kernel_choice(kernels.onednn_linear_available())


@pytest.fixture
def unmeasured(kernel_choice):
    """No shape measured yet: fresh tables of choices and of measurements."""
    kernel_choice(None)


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
def test_a_choice_of_mkl_sends_products_to_f_linear(kernel_choice):
    kernel_choice(False)
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        assert "mkldnn::_linear_pointwise" not in ops_run(lambda: kernels.linear(x, w, b))
        assert torch.equal(kernels.linear(x, w, b), F.linear(x, w, b))


def test_onednn_is_chosen_only_when_clearly_faster():
    assert kernels.onednn_faster([0.96, 0.9, 5.0], [1.0, 1.0, 0.1])  # medians: 0.96 vs 1.0
    assert not kernels.onednn_faster([0.98] * 3, [1.0] * 3)  # within the margin: MKL
    assert not kernels.onednn_faster([1.0] * 3, [1.0] * 3)
    assert not kernels.onednn_faster([1.2] * 3, [1.0] * 3)
    with pytest.raises(ValueError, match="both kernels"):
        kernels.onednn_faster([], [1.0])


def _slowed(kernel, calls: list[str], name: str):
    def run(*args):
        calls.append(name)
        if name == "slow":
            time.sleep(0.002)
        return kernel(*args)

    return run


@needs_onednn
@pytest.mark.parametrize("slow", ["onednn", "mkl"])
def test_each_shape_alternates_the_kernels_then_keeps_the_faster(monkeypatch, unmeasured, slow):
    calls: list[str] = []
    for name in ("onednn", "mkl"):
        kernel = getattr(kernels, f"_{name}")
        monkeypatch.setattr(kernels, f"_{name}", _slowed(kernel, calls, name))
    monkeypatch.setattr(kernels, f"_{slow}", _slowed(getattr(kernels, f"_{slow}"), [], "slow"))
    x, w, b = operands(3, 11)
    measured = 2 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)
    with torch.inference_mode():
        for _ in range(measured):
            torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
        assert calls == ["onednn", "mkl"] * (measured // 2)
        assert list(kernels.chosen_kernels().values()) == ["mkl" if slow == "onednn" else "onednn"]
        del calls[:]
        for _ in range(3):
            kernels.linear(x, w, b)
    fast = "mkl" if slow == "onednn" else "onednn"
    assert calls == [fast] * 3
    assert not kernels._trials


@needs_onednn
def test_shapes_rows_and_thread_counts_are_measured_apart(unmeasured):
    x, w, b = operands(3, 11)
    calls = 2 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        for inputs in (x, x[:, :5], torch.cat([x, x], 1)):  # 33, 15 and 66 rows
            for _ in range(calls):
                kernels.linear(inputs, w, b)
        for _ in range(calls):
            kernels.linear(x, w[:7], b[:7])
        try:
            torch.set_num_threads(threads + 1)
            for _ in range(calls):
                kernels.linear(x, w, b)
        finally:
            torch.set_num_threads(threads)
    chosen = kernels.chosen_kernels()
    assert chosen.keys() == {
        f"48x24, 32-63 rows, {threads} threads",
        f"48x24, 8-15 rows, {threads} threads",
        f"48x24, 64-127 rows, {threads} threads",
        f"48x7, 32-63 rows, {threads} threads",
        f"48x24, 32-63 rows, {threads + 1} threads",
    }


def test_products_in_training_or_switched_off_are_not_measured(unmeasured):
    x, w, b = operands(3, 11)
    w.requires_grad_(True)
    kernels.linear(x, w, b)
    with torch.inference_mode(), kernels.onednn_linear(False):
        kernels.linear(x, w.detach(), b)
    assert not kernels._trials and not kernels._chosen


def test_operands_of_other_ranks_get_f_linear_and_its_errors(unmeasured):
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        assert torch.equal(kernels.linear(x, w[0]), F.linear(x, w[0]))  # a weight vector
        with pytest.raises(RuntimeError) as theirs:
            F.linear(torch.tensor(1.0), w, b)
        with pytest.raises(RuntimeError) as ours:
            kernels.linear(torch.tensor(1.0), w, b)
    assert str(ours.value) == str(theirs.value)
    assert not kernels._trials and not kernels._chosen


@needs_onednn
@pytest.mark.parametrize("shape", [(7,), (2, 5, 9)])
def test_products_while_a_shape_is_measured_match_f_linear(unmeasured, shape):
    x, w, b = operands(*shape)
    inputs = (x, x.mT.contiguous().mT) if x.ndim > 1 else (x,)
    with torch.inference_mode():
        for _ in range(kernels.WARMUP_CALLS + kernels.TIMED_CALLS + 1):
            for inp in inputs:
                torch.testing.assert_close(kernels.linear(inp, w, b), F.linear(x, w, b))
    assert kernels.chosen_kernels() and not kernels._trials


def test_autocast_dispatch_modes_and_determinism_get_f_linear_unmeasured(unmeasured):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passing(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    x, w, b = operands(3, 11)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert kernels.linear(x, w, b).dtype == F.linear(x, w, b).dtype == torch.bfloat16
        with Passing():
            assert torch.equal(kernels.linear(x, w, b), F.linear(x, w, b))
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            assert "mkldnn::_linear_pointwise" not in ops_run(lambda: kernels.linear(x, w, b))
        finally:
            torch.use_deterministic_algorithms(before)
    assert not kernels._trials and not kernels._chosen


def test_mismatched_shapes_get_f_linear_s_error(unmeasured):
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        with pytest.raises(RuntimeError) as theirs:
            F.linear(x[..., :7], w, b)
        with pytest.raises(RuntimeError) as ours:
            kernels.linear(x[..., :7], w, b)
    assert str(ours.value) == str(theirs.value)


@needs_onednn
def test_threads_sharing_a_shape_leave_one_choice_and_no_measurement(monkeypatch, unmeasured):
    # Each product sleeps, so many calls are in flight when the choice is made: a call that
    # looked before the choice must not start a new measurement after it.
    for name in ("_onednn", "_mkl"):
        kernel = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, k=kernel: time.sleep(0.001) or k(*a))
    x, w, b = operands(3, 11)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                for _ in range(15):
                    torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(kernels.chosen_kernels()) == 1
    assert not kernels._trials


@needs_onednn
def test_a_call_that_arrives_after_the_choice_uses_it(unmeasured):
    # A thread may find a shape unmeasured, then reach the bookkeeping after another thread
    # chose: it must use the choice, not start measuring the shape again.
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        for _ in range(2 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            kernels.linear(x, w, b)
        (key,) = kernels._chosen
        torch.testing.assert_close(kernels._measured(key, x, w, b), F.linear(x, w, b))
    assert not kernels._trials
