"""The separator's fast path computes what the plain modules compute (asteroid_tdanet.fast)."""

from __future__ import annotations

import pytest
import torch
from conftest import max_rel_error

from asteroid_tdanet import TDANet, TDANetLarge, fast, kernels, native, programs
from asteroid_tdanet import masker as masker_module
from asteroid_tdanet.masker import UBlock

# Depth 4 from odd frame counts gives every resize case: exact halvings with and without an odd
# last frame, and non-halving nearest resizes of the global features to the finer scales.
SMALL = {"bn_chan": 16, "hid_chan": 32, "n_blocks": 3, "upsampling_depth": 4, "n_heads": 4}
CASES = {
    "tdanet": (TDANet, False),
    "tdanet_large": (TDANetLarge, False),
    "legacy_look2hear": (TDANet, True),
}
TOLERANCE = 1e-4


def build(name: str, dtype: torch.dtype = torch.float32, **extra) -> torch.nn.Module:
    """A small model with every parameter perturbed, so gLN gains and biases are not 1 and 0."""
    cls, legacy = CASES[name]
    torch.manual_seed(0)
    model = cls(n_src=2, sample_rate=8000, legacy_look2hear=legacy, **SMALL, **extra)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return model.to(dtype)


def both_paths(fn):
    """``fn()`` on the plain modules with ``F.linear``, then with the defaults, same seed each.

    The defaults are the fast path and (in inference) the matrix-product kernel measured faster
    for each shape (see ``kernel_choice`` to fix it); where autograd
    records a graph the fast path is allowed explicitly (by default training runs the plain
    modules).
    """
    out = []
    for enabled in (False, True):
        torch.manual_seed(1)
        with (
            fast.fast_path(enabled),
            fast.fast_path_in_training(enabled),
            kernels.onednn_linear(enabled),
        ):
            out.append(fn())
    return out


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("length", [2477, 1601])
def test_eval_outputs_match_the_plain_modules(name, length):
    model = build(name).eval()
    wav = torch.randn(3, length, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        plain, quick = both_paths(lambda: model(wav))
    assert quick.shape == plain.shape
    assert max_rel_error(quick, plain) <= TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("checkpoint_blocks", [False, True])
def test_train_outputs_and_gradients_match(name, checkpoint_blocks):
    # float64: the two paths must be the same function, not merely close in float32; dropout and
    # drop-path are on (the defaults) and must draw the same numbers on both paths.
    model = build(name, torch.float64, checkpoint_blocks=checkpoint_blocks).train()
    gen = torch.Generator().manual_seed(3)
    wav = torch.randn(2, 1237, generator=gen, dtype=torch.float64)
    weight = torch.randn(2, 2, 1237, generator=gen, dtype=torch.float64)

    def step():
        model.zero_grad()
        out = model(wav)
        (out * weight).sum().backward()
        # None for parameters the computation does not use (legacy mode's coarsest injection).
        return out.detach(), {n: p.grad for n, p in model.named_parameters()}

    (plain, plain_grads), (quick, quick_grads) = both_paths(step)
    assert max_rel_error(quick, plain) <= 1e-9
    assert plain_grads.keys() == quick_grads.keys()
    for key, grad in plain_grads.items():
        if grad is None:
            assert quick_grads[key] is None, key
        else:
            assert max_rel_error(quick_grads[key], grad) <= 1e-9, key


@pytest.mark.skipif(native.library() is None, reason="fused kernels unavailable")
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(("batch", "length"), [(1, 2477), (2, 1601)])
def test_recorded_kernel_calls_equal_the_direct_calls(name, batch, length, kernel_choice):
    # The U-block's fused calls are recorded at its first application in a pass and run from
    # the recording for the others: the same kernels on the same data, so the same bits.
    kernel_choice(False)  # the same product kernel every call
    model = build(name).eval()
    x = torch.randn(batch, length, generator=torch.Generator().manual_seed(3))
    recorded = []
    record = programs.Program.__init__

    def counting(self, recorder):
        recorded.append(len(recorder.steps))
        record(self, recorder)

    with torch.inference_mode(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(programs.Program, "__init__", counting)
        for _ in range(2):  # the second pass must use the changed weights, not the first's
            with fast._programs.scoped(False):
                want = model(x)
            got = model(x)
            assert torch.equal(got, want)
            with torch.no_grad():
                for param in model.parameters():
                    param.mul_(1.05)
    # Two programs per pass (before and after the global attention), run by all three blocks.
    assert len(recorded) == 4 and all(recorded)


def test_ublock_alone_channel_first():
    torch.manual_seed(0)
    block = UBlock(bn_chan=8, hid_chan=16, depth=5, n_heads=2).eval()
    with torch.no_grad():
        for param in block.parameters():
            param.add_(0.3 * torch.randn_like(param))
    x = torch.randn(2, 8, 333)
    with torch.no_grad():
        plain, quick = both_paths(lambda: block(x))
    assert quick.shape == plain.shape == x.shape
    assert max_rel_error(quick, plain) <= TOLERANCE


def test_parameters_the_kernels_cannot_read_send_the_block_to_torch():
    # The fused kernels read parameters by pointer, without checks of their own: a strided
    # gain (a view of every other element) must not reach them. Torch's operations serve.
    torch.manual_seed(0)
    block = UBlock(bn_chan=8, hid_chan=16, depth=4, n_heads=2).eval()
    norm = block.down[1].norm
    with torch.no_grad():
        for param in block.parameters():
            param.add_(0.3 * torch.randn_like(param))
        strided = torch.randn(2 * norm.weight.numel())[::2]
    norm.weight = torch.nn.Parameter(strided)
    assert not norm.weight.is_contiguous()
    x = torch.randn(2, 8, 333)
    with torch.no_grad():
        assert not fast.kernels_fit(block, x.mT)
        assert fast.kernels_fit(block.down[0], x.mT) == native.usable(x)
        plain, quick = both_paths(lambda: block(x))
    assert max_rel_error(quick, plain) <= TOLERANCE


class EveryOther(torch.nn.Module):
    """A parametrization whose weight is a strided view, recomputed at each access."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.stack([w, -w], 1)[:, 0]


def test_parametrized_or_misshapen_parameters_send_the_block_to_torch():
    torch.manual_seed(0)
    block = UBlock(bn_chan=8, hid_chan=16, depth=4, n_heads=2).eval()
    x = torch.randn(2, 8, 333)
    torch.nn.utils.parametrize.register_parametrization(block.down[1].norm, "weight", EveryOther())
    with torch.no_grad():
        assert not block.down[1].norm.weight.is_contiguous()
        assert not fast.kernels_fit(block, x.mT)
        plain, quick = both_paths(lambda: block(x))
    assert max_rel_error(quick, plain) <= TOLERANCE

    wrong = UBlock(bn_chan=8, hid_chan=16, depth=4, n_heads=2).eval()
    wrong.down[2].norm.weight = torch.nn.Parameter(torch.ones(4))  # 4 gains for 16 channels
    other = UBlock(bn_chan=8, hid_chan=16, depth=4, n_heads=2).eval()
    other.inject[0].local.conv.weight = torch.nn.Parameter(torch.ones(4, 1, 1))
    for misshapen in (wrong, other):
        with torch.no_grad():
            assert not fast.kernels_fit(misshapen, x.mT)
            with pytest.raises(RuntimeError):  # torch's operations refuse it, as the plain ones do
                misshapen(x)


@pytest.mark.parametrize("kernel", [5, 1])
def test_a_full_convolution_in_place_of_a_depthwise_one_sends_the_block_to_torch(kernel):
    # The fused kernels compute depthwise convolutions only; a full one (groups=1), even 1x1,
    # is what torch's operations then compute, as the plain modules do.
    torch.manual_seed(0)
    block = UBlock(bn_chan=8, hid_chan=16, depth=4, n_heads=2).eval()
    x = torch.randn(2, 8, 333)
    with torch.no_grad():
        assert fast.kernels_fit(block, x.mT) == native.usable(x)
        stride = block.down[1].conv.stride
        block.down[1].conv = torch.nn.Conv1d(16, 16, kernel, stride, kernel // 2)
        assert not fast.kernels_fit(block, x.mT)
        plain, quick = both_paths(lambda: block(x))
    assert max_rel_error(quick, plain) <= TOLERANCE


@pytest.fixture
def fast_calls(monkeypatch) -> list[int]:
    """One entry per U-block application that ran through the fast path."""
    calls: list[int] = []
    original = fast.ublock_forward
    monkeypatch.setattr(fast, "ublock_forward", lambda *a: calls.append(1) or original(*a))
    return calls


def test_on_by_default_and_switched_off(fast_calls):
    model = build("tdanet").eval()
    wav = torch.randn(1, 800)
    assert fast.fast_path_enabled()
    with torch.no_grad():
        model(wav)
        assert len(fast_calls) == SMALL["n_blocks"]
        with fast.fast_path(False):
            model(wav)
        assert len(fast_calls) == SMALL["n_blocks"]
    assert fast.fast_path_enabled()


def test_training_runs_the_plain_modules_unless_allowed(fast_calls):
    # Where autograd records a graph, the plain modules' backward pass is the faster one.
    model = build("tdanet").train()
    wav = torch.randn(1, 800)
    model(wav).sum().backward()
    assert fast_calls == []
    with fast.fast_path_in_training(True):
        model(wav).sum().backward()
    assert len(fast_calls) == SMALL["n_blocks"]
    assert not fast.records_graph(wav)  # an input alone does not make a graph
    for param in model.parameters():  # frozen weights and a plain input: nothing to record
        param.requires_grad_(False)
    model(wav)
    assert len(fast_calls) == 2 * SMALL["n_blocks"]
    model(wav.requires_grad_())  # gradients w.r.t. the input: a graph again
    assert len(fast_calls) == 2 * SMALL["n_blocks"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nearest_index_is_torchs(dtype):
    # The plan of every resize comes from F.interpolate itself, in the data's dtype (torch's
    # float32 and float64 scales pick different frames at 7501 -> 60001); the halving shortcut
    # only where it agrees with it.
    for src, dst in [(39, 78), (39, 77), (64, 1010), (5, 9), (7, 7), (7501, 60001), (3751, 7501)]:
        index = fast._nearest_index(src, dst, dtype)
        y = torch.randn(1, dst, 3, dtype=dtype)
        p, q = torch.randn(1, src, 3, dtype=dtype), torch.randn(1, src, 3, dtype=dtype)
        up = torch.nn.functional.interpolate
        ref = y * up(p.mT, size=dst).mT + up(q.mT, size=dst).mT
        torch.testing.assert_close(fast.affine_up(y, p, q), ref)
        assert (index is None) == (src != dst and dst in (2 * src, 2 * src - 1))


def test_plain_modules_under_autocast_and_other_dtypes(monkeypatch):
    # The fast path takes gLN statistics from sums: it must not run on reduced precision.
    masker = build("tdanet").masker.eval()
    monkeypatch.setattr(masker_module, "masker_forward", lambda *a: pytest.fail("fast path used"))
    feats = torch.randn(1, masker.in_chan, 99)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        masker(feats)
    with torch.no_grad():
        masker.to(torch.bfloat16)(feats.to(torch.bfloat16))
