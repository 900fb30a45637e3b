"""Inference-time matrix products through oneDNN (asteroid_tdanet.kernels)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

from asteroid_tdanet import kernels
from asteroid_tdanet.derived import forward_pass

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


def test_another_kernel_is_chosen_only_when_clearly_faster():
    mkl = [1.0, 1.0, 0.1]  # median 1.0
    assert kernels.fastest({"mkl": mkl, "onednn": [0.96, 0.9, 5.0]}) == "onednn"  # 0.96
    assert kernels.fastest({"mkl": mkl, "onednn": [0.98] * 3}) == "mkl"  # within the margin
    assert kernels.fastest({"mkl": mkl, "onednn": [1.0] * 3}) == "mkl"
    assert kernels.fastest({"mkl": mkl, "onednn": [1.2] * 3}) == "mkl"
    three = {"mkl": mkl, "onednn": [0.95] * 3, "mkl_transposed": [0.9] * 3}
    assert kernels.fastest(three) == "mkl_transposed"  # the fastest of those clearly faster
    assert kernels.fastest({**three, "onednn": [0.8] * 3}) == "onednn"
    assert kernels.fastest({"mkl": mkl}) == "mkl"
    with pytest.raises(ValueError, match="timed calls of mkl and of every kernel"):
        kernels.fastest({"mkl": [], "onednn": [1.0]})
    with pytest.raises(ValueError, match="timed calls of mkl and of every kernel"):
        kernels.fastest({"mkl": [1.0], "onednn": []})


def _slowed(kernel, calls: list[str], name: str):
    def run(*args):
        calls.append(name)
        if name == "slow":
            time.sleep(0.002)
        return kernel(*args)

    return run


KERNELS = ("onednn", "mkl", "mkl_transposed")  # the order in which they take turns


@needs_onednn
@pytest.mark.parametrize("fast", KERNELS)
def test_each_shape_cycles_through_the_kernels_then_keeps_the_fastest(
    monkeypatch, unmeasured, fast
):
    calls: list[str] = []
    for name in KERNELS:
        kernel = getattr(kernels, f"_{name}")
        kernel = _slowed(kernel, calls, name)
        if name != fast:  # every kernel but one is slowed
            kernel = _slowed(kernel, [], "slow")
        monkeypatch.setattr(kernels, f"_{name}", kernel)
    x, w, b = operands(3, 11)
    measured = 3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)
    with torch.inference_mode(), forward_pass():
        for _ in range(measured):
            torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
        assert calls == list(KERNELS) * (measured // 3)
        assert list(kernels.chosen_kernels().values()) == [fast]
        del calls[:]
        for _ in range(3):
            kernels.linear(x, w, b)
    assert calls == [fast] * 3
    assert not kernels._trials


def test_without_onednn_the_two_mkl_kernels_take_turns(monkeypatch, unmeasured):
    monkeypatch.setattr(kernels, "onednn_linear_available", lambda: False)
    calls: list[str] = []
    for name in KERNELS:
        monkeypatch.setattr(kernels, f"_{name}", _slowed(getattr(kernels, f"_{name}"), calls, name))
    x, w, b = operands(3, 11)
    measured = 2 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)
    with torch.inference_mode(), forward_pass():
        for _ in range(measured):
            torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
    assert calls == ["mkl", "mkl_transposed"] * (measured // 2)
    assert list(kernels.chosen_kernels().values())[0] in ("mkl", "mkl_transposed")


@pytest.mark.parametrize("shape", [(), (7,), (3, 11), (2, 5, 9), (0, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_the_transposed_weight_kernel_matches_f_linear(kernel_choice, shape, bias):
    kernel_choice(kernels.MKL_TRANSPOSED)
    x, w, b = operands(*shape, bias=bias)
    weight = torch.nn.Parameter(w)
    xt = x.mT.contiguous().mT if x.ndim > 1 else x  # a non-contiguous input too
    with torch.inference_mode(), forward_pass():
        for inputs in (x, xt):
            out = kernels.linear(inputs, weight, b)
            assert out.shape == F.linear(x, w, b).shape
            torch.testing.assert_close(out, F.linear(x, w, b))
        ops = ops_run(lambda: kernels.linear(x, weight, b))
    product = "aten::addmm" if bias else "aten::mm"
    assert "aten::linear" not in ops and (product in ops or x.ndim == 1)


def test_the_transposed_copy_follows_every_change_of_the_weight(kernel_choice):
    # Within a pass the kept copy is trusted; between passes a change through .data (no version
    # bump, same pointer) must reach it.
    kernel_choice(kernels.MKL_TRANSPOSED)
    x, w, b = operands(3, 11)
    conv = torch.nn.Conv1d(48, 24, 1)
    with torch.no_grad():
        conv.weight.copy_(w.unsqueeze(-1))
    for scale in (1.0, -2.0, 0.5):
        conv.weight.data.mul_(scale)
        weight = conv.weight.squeeze(-1)  # a new view at each call, as the fast path passes it
        with torch.inference_mode(), forward_pass():
            out = kernels.linear(x, weight, b)
        torch.testing.assert_close(out, F.linear(x, conv.weight.squeeze(-1), b))


def test_outside_a_forward_pass_the_transposed_kernel_is_f_linear(kernel_choice):
    kernel_choice(kernels.MKL_TRANSPOSED)
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        ops = ops_run(lambda: kernels.linear(x, torch.nn.Parameter(w), b))
        assert torch.equal(kernels.linear(x, torch.nn.Parameter(w), b), F.linear(x, w, b))
    assert "aten::linear" in ops and "aten::t" in ops  # F.linear's own transposed view


@needs_onednn
def test_shapes_rows_and_thread_counts_are_measured_apart(unmeasured):
    x, w, b = operands(3, 11)
    calls = 3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)
    threads = torch.get_num_threads()
    with torch.inference_mode(), forward_pass():
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


def test_outside_a_forward_pass_nothing_is_measured(monkeypatch, unmeasured):
    x, w, b = operands(3, 11)
    with torch.inference_mode():
        for _ in range(3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            assert "aten::linear" in ops_run(lambda: kernels.linear(x, w, b))
    assert not kernels._trials and not kernels._chosen
    # A choice made within a pass serves calls outside one too (the transposed kernel, which
    # has no kept copy there, as F.linear).
    for kernel in KERNELS:
        if kernel == "onednn" and not kernels.onednn_linear_available():
            continue
        monkeypatch.setattr(kernels, "_chosen", {(6, 48, 24, torch.get_num_threads()): kernel})
        with torch.inference_mode():
            torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
            expected = "mkldnn::_linear_pointwise" if kernel == "onednn" else "aten::linear"
            assert expected in ops_run(lambda: kernels.linear(x, w, b))


def test_products_in_training_or_switched_off_are_not_measured(unmeasured):
    x, w, b = operands(3, 11)
    w.requires_grad_(True)
    kernels.linear(x, w, b)
    with torch.inference_mode(), kernels.onednn_linear(False):
        kernels.linear(x, w.detach(), b)
    assert not kernels._trials and not kernels._chosen


def test_operands_of_other_ranks_get_f_linear_and_its_errors(unmeasured):
    x, w, b = operands(3, 11)
    with torch.inference_mode(), forward_pass():
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
    with torch.inference_mode(), forward_pass():
        for _ in range(3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            for inp in inputs:
                torch.testing.assert_close(kernels.linear(inp, w, b), F.linear(x, w, b))
    assert kernels.chosen_kernels() and not kernels._trials


def test_autocast_dispatch_modes_and_determinism_get_f_linear_unmeasured(unmeasured):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passing(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    x, w, b = operands(3, 11)
    with torch.inference_mode(), forward_pass():
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
    with torch.inference_mode(), forward_pass():
        with pytest.raises(RuntimeError) as theirs:
            F.linear(x[..., :7], w, b)
        with pytest.raises(RuntimeError) as ours:
            kernels.linear(x[..., :7], w, b)
    assert str(ours.value) == str(theirs.value)


@needs_onednn
def test_threads_sharing_a_shape_leave_one_choice_and_no_measurement(monkeypatch, unmeasured):
    # Each product sleeps, so many calls are in flight when the choice is made: a call that
    # looked before the choice must not start a new measurement after it.
    for name in ("_onednn", "_mkl", "_mkl_transposed"):
        kernel = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, k=kernel: time.sleep(0.001) or k(*a))
    x, w, b = operands(3, 11)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode(), forward_pass():
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
    with torch.inference_mode(), forward_pass():
        for _ in range(3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            kernels.linear(x, w, b)
        (key,) = kernels._chosen
        torch.testing.assert_close(kernels._measured(key, x, w, b), F.linear(x, w, b))
    assert not kernels._trials


def test_the_untimed_first_calls_do_not_decide(monkeypatch, unmeasured):
    # oneDNN is slow only in its first calls (as when it builds its primitive): the choice must
    # come from the later, timed calls, where it is the fastest. (Stand-ins with fixed delays:
    # real kernels on a tiny product take as long as a thread wake-up.)
    seen = {"onednn": 0}

    def onednn(*args):
        seen["onednn"] += 1
        if seen["onednn"] <= kernels.WARMUP_CALLS:
            time.sleep(0.03)
        else:  # median 3.5 ms over the timed calls; 6 ms if the first calls counted
            time.sleep(0.001 if seen["onednn"] % 2 else 0.006)
        return F.linear(*args)

    def slower(*args):
        time.sleep(0.005)
        return F.linear(*args)

    monkeypatch.setattr(kernels, "onednn_linear_available", lambda: True)
    monkeypatch.setattr(kernels, "_onednn", onednn)
    monkeypatch.setattr(kernels, "_mkl", slower)
    monkeypatch.setattr(kernels, "_mkl_transposed", slower)
    x, w, b = operands(3, 11)
    with torch.inference_mode(), forward_pass():
        for _ in range(3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            torch.testing.assert_close(kernels.linear(x, w, b), F.linear(x, w, b))
    assert list(kernels.chosen_kernels().values()) == ["onednn"]
