"""Recorded fused-kernel calls run again on new inputs (asteroid_tdanet.programs)."""

from __future__ import annotations

import pytest
import torch

from asteroid_tdanet import native, programs

needs_kernels = pytest.mark.skipif(
    native.library() is None, reason=f"fused kernels unavailable: {native.describe()}"
)

CHANNELS = 37  # full vector blocks and a remainder


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class Params:
    """Parameters of a small chain of every kind of step."""

    def __init__(self) -> None:
        self.weight = randn(CHANNELS, 1, 5, seed=1)
        self.bias = randn(CHANNELS, seed=2)
        self.gamma = randn(CHANNELS, seed=3)
        self.beta = randn(CHANNELS, seed=4)
        self.pre_bias = randn(CHANNELS, seed=5)
        self.source = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5])


def chain(p: Params, x: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gLN + PReLU in place, a strided depthwise convolution with moments, a plain gLN that
    hands on its moments, a gated gLN reading them, and a pooled sum: every kind of step."""
    current = native.trusted_gln(
        x, p.gamma, p.beta, 1e-8, x, native.PRELU, 0.25, pre_bias=p.pre_bias
    )
    y, moments = native.trusted_depthwise(current, p.weight, p.bias, 2, 2, moments=True)
    stats = torch.empty(2, x.shape[0], CHANNELS, dtype=torch.float64)
    y = native.trusted_gln(y, p.gamma, p.beta, 1e-5, y, moments=moments, out_moments=stats)
    gated = native.trusted_gln(
        current,
        p.gamma,
        p.beta,
        1e-5,
        torch.empty_like(current),
        native.GATE | native.SIGMOID,
        gate=gate,
        value=y,
        source=p.source,
    )
    pooled = native.trusted_copy(y, torch.empty_like(y))
    native.trusted_pool_add(gated, pooled)
    return gated, pooled


def inputs(seed: int) -> torch.Tensor:
    return randn(2, 11, CHANNELS, seed=seed) + 3.0  # a mean large against the spread


@needs_kernels
def test_a_program_computes_what_the_calls_compute_on_new_inputs():
    p = Params()
    gate = randn(2, 6, CHANNELS, seed=9)
    recorded_x = inputs(10)
    with programs.recording(recorded_x, gate) as recorder:
        gated, pooled = chain(p, recorded_x, gate)
    program = programs.Program(recorder)
    assert len(program) == 6
    for seed in (11, 12):  # run twice: the second run must not see the first one's input
        x, gate_now = inputs(seed), randn(2, 6, CHANNELS, seed=seed + 100)
        direct_x = x.clone()
        program.run(x, gate_now)
        want_gated, want_pooled = chain(p, direct_x, gate_now)
        assert torch.equal(gated, want_gated)
        assert torch.equal(pooled, want_pooled)
        assert torch.equal(x, direct_x)  # the first gLN wrote over its input, as the call does


@needs_kernels
def test_a_program_keeps_its_buffers_alive_but_not_its_inputs():
    import weakref

    p = Params()
    x = inputs(10)
    with programs.recording(x) as recorder:
        y = native.trusted_depthwise(x, p.weight, p.bias, 1, 2)
    program = programs.Program(recorder)
    gone, kept = weakref.ref(x), weakref.ref(y)
    del x, y
    assert gone() is None  # each run reads the input it is given
    assert kept() is not None  # the program writes it at each run
    program.run(inputs(11))
    assert torch.equal(kept(), native.trusted_depthwise(inputs(11), p.weight, p.bias, 1, 2))


@needs_kernels
def test_recording_runs_nothing():
    p = Params()
    x = inputs(10)
    gate = randn(2, 6, CHANNELS, seed=9)
    before = x.clone()
    with programs.recording(x, gate):
        chain(p, x, gate)
    assert torch.equal(x, before)  # the in-place gLN did not run


@needs_kernels
def test_a_step_that_reads_what_nothing_recorded_wrote_is_refused():
    p = Params()
    x = inputs(10)
    outsider = inputs(11)  # made before recording, and not declared an input
    refused = pytest.raises(RuntimeError, match=r"step 0 \(depthwise\) reads memory")
    with refused, programs.recording(x):
        native.trusted_depthwise(outsider, p.weight, p.bias, 1, 2)
    assert programs.active() is None


@needs_kernels
def test_a_later_program_reads_an_earlier_ones_buffers_but_not_its_inputs():
    p = Params()
    x = inputs(10)
    with programs.recording(x) as recorder:
        y = native.trusted_depthwise(x, p.weight, p.bias, 1, 2)
    first = programs.Program(recorder)
    z = inputs(11)
    with programs.recording(z, after=first) as recorder:
        out = native.trusted_gln(y, p.gamma, p.beta, 1e-5, torch.empty_like(y))
    second = programs.Program(recorder)
    for seed in (12, 13):
        x_now = inputs(seed)
        first.run(x_now)
        second.run(z)
        want = native.trusted_gln(
            native.trusted_depthwise(x_now, p.weight, p.bias, 1, 2),
            p.gamma,
            p.beta,
            1e-5,
            torch.empty_like(y),
        )
        assert torch.equal(out, want)
    refused = pytest.raises(RuntimeError, match=r"step 0 \(gln\) reads memory")
    with refused, programs.recording(z, after=first):
        native.trusted_gln(x, p.gamma, p.beta, 1e-5, torch.empty_like(x))  # first's input


@needs_kernels
@pytest.mark.parametrize(
    "operation",
    [
        lambda y: y + 1,
        lambda y: y.mul_(2),
        lambda y: y.clone(),
        lambda y: y.mT.contiguous(),  # a copy: it would read values
        lambda y: float(y[0, 0, 0]),
    ],
)
def test_torch_operations_on_recorded_buffers_raise(operation):
    p = Params()
    x = inputs(10)
    with pytest.raises(RuntimeError, match="torch operation"), programs.recording(x):
        y = native.trusted_depthwise(x, p.weight, p.bias, 1, 2)
        operation(y)
    with pytest.raises(RuntimeError, match="torch operation"), programs.recording(x):
        operation(x)  # the input's values are not known either


@needs_kernels
def test_shape_queries_views_and_parameters_are_allowed_while_recording():
    p = Params()
    x = inputs(10)
    with programs.recording(x):
        y = native.trusted_depthwise(x, p.weight, p.bias, 1, 2)
        assert y.shape == x.shape and y.contiguous() is y and y.dim() == 3
        assert torch.empty_like(y).shape == y.shape
        assert (p.gamma * 2).shape == (CHANNELS,)  # parameters hold their values


@needs_kernels
def test_inputs_of_another_shape_or_layout_are_refused():
    p = Params()
    x = inputs(10)
    with programs.recording(x) as recorder:
        native.trusted_depthwise(x, p.weight, p.bias, 1, 2)
    program = programs.Program(recorder)
    with pytest.raises(ValueError, match=r"input 0 must be a contiguous torch.float32 CPU tensor"):
        program.run(inputs(11)[:, :10])
    with pytest.raises(ValueError, match="1 inputs given, 1 recorded|2 inputs given"):
        program.run(x, x)
    with pytest.raises(ValueError, match="contiguous"):
        program.run(inputs(11).mT.contiguous().mT)
    with pytest.raises(ValueError, match="contiguous float32"):
        programs.recording(x.double()).__enter__()


@needs_kernels
def test_a_failing_step_raises_the_kernels_error():
    p = Params()
    x = inputs(10)
    gate = randn(2, 3, CHANNELS, seed=9)  # 3 frames: the source index reaches frame 5
    with programs.recording(x, gate) as recorder:
        native.trusted_gln(
            x, p.gamma, p.beta, 1e-5, x, native.GATE, gate=gate, value=gate, source=p.source
        )
    with pytest.raises(ValueError, match=r"source frames outside \[0, 3\)"):
        programs.Program(recorder).run(x, gate)


@needs_kernels
def test_recordings_do_not_nest():
    x = inputs(10)
    nested = pytest.raises(RuntimeError, match="already recording")
    with programs.recording(x), nested, programs.recording(x):
        pass
