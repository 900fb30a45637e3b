"""The fused CPU kernels against torch's own operations, and how they are built (native)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from asteroid_tdanet import native

needs_kernels = pytest.mark.skipif(
    native.library() is None, reason=f"fused kernels unavailable: {native.describe()}"
)


def randn(*shape: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gln_reference(y, gamma, beta, eps, pre_scale=None, pre_bias=None):
    """gLN in float64 through torch's GroupNorm, of ``pre_scale * y + pre_bias``."""
    z = y.double()
    if pre_scale is not None:
        z = z * pre_scale.double()
    if pre_bias is not None:
        z = z + pre_bias.double()
    out = F.group_norm(z.mT, 1, gamma.double(), beta.double(), eps)
    return out.mT


def peak_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def test_kernels_build_where_there_is_a_compiler():
    # CI has a C compiler: a build that silently fell back to torch would leave them untested.
    if native._compiler() is None:
        pytest.skip("no C compiler here")
    info = native.describe()
    assert info["available"], info
    assert info["openmp"] in (True, False)


@needs_kernels
@pytest.mark.parametrize("channels", [1, 7, 32, 33, 517])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(5, 1, 2), (5, 2, 2), (3, 2, 1), (1, 1, 0)]
)
@pytest.mark.parametrize("frames", [1, 2, 9, 101])
def test_depthwise_equals_conv1d(channels, kernel, stride, padding, frames):
    if frames + 2 * padding < kernel:
        pytest.skip("no output frame")  # not reachable from TDANet: "same" padding
    conv = torch.nn.Conv1d(channels, channels, kernel, stride, padding, groups=channels)
    x = randn(2, frames, channels, seed=frames, dtype=torch.float32)
    with torch.no_grad():
        want = conv(x.mT).mT
        got = native.depthwise(x, conv.weight, conv.bias, stride, padding)
        no_bias = native.depthwise(x, conv.weight, None, stride, padding)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(no_bias, want - conv.bias.detach(), atol=1e-5, rtol=1e-5)


@needs_kernels
def test_depthwise_sees_a_weight_changed_in_place():
    # The (K, C) copy of a weight is cached; loading a state dict changes the weight in place.
    conv = torch.nn.Conv1d(16, 16, 5, padding=2, groups=16, bias=False)
    x = randn(1, 30, 16, dtype=torch.float32)
    with torch.no_grad():
        native.depthwise(x, conv.weight, None, 1, 2)
        conv.weight.mul_(-2.0)
        got = native.depthwise(x, conv.weight, None, 1, 2)
        torch.testing.assert_close(got, conv(x.mT).mT, atol=1e-5, rtol=1e-5)
        conv.load_state_dict({"weight": randn(16, 1, 5, seed=3, dtype=torch.float32)})
        got = native.depthwise(x, conv.weight, None, 1, 2)
        torch.testing.assert_close(got, conv(x.mT).mT, atol=1e-5, rtol=1e-5)


@needs_kernels
def test_depthwise_sees_a_weight_changed_through_data_between_passes():
    # Within a forward pass the taps are kept; an update through .data (no version bump, same
    # pointer) between passes must reach the next pass.
    from asteroid_tdanet.derived import forward_pass

    conv = torch.nn.Conv1d(16, 16, 5, 1, 2, groups=16)
    x = randn(1, 20, 16).float()
    with torch.no_grad():
        for scale in (1.0, 3.0, -0.5):
            conv.weight.data.mul_(scale)
            with forward_pass():
                got = native.depthwise(x, conv.weight, conv.bias, 1, 2)
                again = native.depthwise(x, conv.weight, conv.bias, 1, 2)
            want = conv(x.mT).mT
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            assert torch.equal(got, again)


@needs_kernels
@pytest.mark.parametrize("channels", [7, 32, 70])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("frames", [1, 15, 16, 17, 128, 129, 300])
def test_depthwise_moments_are_its_outputs_statistics(channels, stride, frames):
    # Frame counts around a block of rows (16) and a chunk (128); 70 channels: a remainder.
    conv = torch.nn.Conv1d(channels, channels, 5, stride, 2, groups=channels)
    x = (randn(3, frames, channels, seed=frames) + randn(3, 1, channels, seed=1) * 4).float()
    with torch.no_grad():
        plain = native.depthwise(x, conv.weight, conv.bias, stride, 2)
        got, moments = native.depthwise(x, conv.weight, conv.bias, stride, 2, moments=True)
    assert torch.equal(got, plain)
    assert moments.shape == (2, 3, channels) and moments.dtype == torch.float64
    var, mean = torch.var_mean(got.double(), 1, correction=0)
    spread = var.sqrt().clamp_min(1e-30)
    assert ((moments[0] - mean).abs() / spread).max() < 1e-6
    assert ((moments[1] - var).abs() / var.clamp_min(1e-30)).max() < 1e-5


@needs_kernels
@pytest.mark.parametrize(("offset", "spread"), [(3e3, 3.0), (1e6, 1.0)])
def test_depthwise_moments_keep_their_digits_when_the_mean_dwarfs_the_spread(offset, spread):
    # A bias 1e3 to 1e6 times the output's spread, over 3000 frames (many blocks and chunks):
    # the gLN of the output from these statistics is as exact as from torch's in float64.
    channels = 70
    conv = torch.nn.Conv1d(channels, channels, 5, 1, 2, groups=channels)
    x = (randn(2, 3000, channels) * spread / 3).float()
    gamma, beta = randn(channels, seed=1).float(), randn(channels, seed=2).float()
    with torch.no_grad():
        conv.bias.fill_(offset)
        y, moments = native.depthwise(x, conv.weight, conv.bias, 1, 2, moments=True)
    var, mean = torch.var_mean(y.double(), 1, correction=0)
    assert ((moments[1] - var).abs() / var).max() < 1e-5
    got = native.gln(y, gamma, beta, 1e-8, moments=moments)
    assert peak_error(got, gln_reference(y, gamma, beta, 1e-8)) < 1e-6
    torch.testing.assert_close(got, native.gln(y, gamma, beta, 1e-8), atol=1e-6, rtol=0)


@needs_kernels
def test_gln_normalises_with_the_moments_it_is_given():
    # Given means 1 and variances 4 - eps for every channel, gLN is (y - 1) / 2 * gamma + beta,
    # whatever y's own statistics are.
    y, gamma, beta, *_ = gln_case()
    moments = torch.stack([torch.ones(2, 40), torch.full((2, 40), 4.0 - 1e-5)]).double()
    got = native.gln(y, gamma, beta, 1e-5, moments=moments)
    torch.testing.assert_close(got, (y - 1) / 2 * gamma + beta, atol=1e-5, rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("given", [False, True])
@pytest.mark.parametrize(("offset", "spread"), [(0.0, 1.0), (1e6, 1.0)])
def test_gln_hands_over_its_outputs_statistics(given, offset, spread):
    # A plain gLN's output is an affine map of y per channel: its per-channel means and
    # variances follow from y's, for the next gLN of it (an injection), as if measured.
    y, gamma, beta, *_ = gln_case()
    y = (y.double() * spread + offset).float()
    moments = None
    if given:
        var, mean = torch.var_mean(y.double(), 1, correction=0)
        moments = torch.stack([mean, var]).contiguous()
    stats = torch.empty(2, 2, 40, dtype=torch.float64)
    out = torch.empty_like(y)
    native.trusted_gln(y, gamma, beta, 1e-8, out, moments=moments, out_moments=stats)
    var, mean = torch.var_mean(out.double(), 1, correction=0)
    assert ((stats[0] - mean).abs() / var.sqrt()).max() < 1e-5
    assert ((stats[1] - var).abs() / var).max() < 1e-5
    torch.testing.assert_close(out, native.gln(y, gamma, beta, 1e-8), atol=1e-5, rtol=1e-5)


@needs_kernels
def test_gln_hands_over_statistics_only_of_a_plain_gln():
    y, gamma, beta, gate, value, source = gln_case()
    stats = torch.empty(2, 2, 40, dtype=torch.float64)
    with pytest.raises(ValueError, match="out_moments is for a plain gLN"):
        native.trusted_gln(y, gamma, beta, 1e-8, y.clone(), native.PRELU, 0.1, out_moments=stats)


@needs_kernels
def test_depthwise_moments_carry_nan_to_its_item_and_channel_only():
    conv = torch.nn.Conv1d(40, 40, 5, 1, 2, groups=40)
    x = randn(2, 300, 40).float()
    x[1, 200, 3] = float("nan")
    with torch.no_grad():
        _, moments = native.depthwise(x, conv.weight, conv.bias, 1, 2, moments=True)
    nan = torch.isnan(moments)
    assert nan[:, 1, 3].all() and nan.sum() == 2


def gln_case(batch=2, frames=50, channels=40, sources=7, offset=0.0, seed=0):
    y = (randn(batch, frames, channels, seed=seed) * 3 + offset).float()
    gamma, beta = randn(channels, seed=seed + 1).float(), randn(channels, seed=seed + 2).float()
    gate = randn(batch, sources, channels, seed=seed + 3).float()
    value = randn(batch, sources, channels, seed=seed + 4).float()
    source = (torch.arange(frames) * sources) // frames
    return y, gamma, beta, gate, value, source


@needs_kernels
@pytest.mark.parametrize("channels", [1, 8, 40, 64, 130])
@pytest.mark.parametrize("batch", [1, 3])
def test_gln_equals_group_norm(channels, batch):
    y, gamma, beta, *_ = gln_case(batch=batch, channels=channels)
    got = native.gln(y, gamma, beta, 1e-8)
    assert peak_error(got, gln_reference(y, gamma, beta, 1e-8)) < 1e-6


@needs_kernels
def test_gln_with_gate_sigmoid_and_prelu():
    y, gamma, beta, gate, value, source = gln_case()
    normed = gln_reference(y, gamma, beta, 1e-5)
    gated = normed * gate[:, source].double() + value[:, source].double()
    got = native.gln(y, gamma, beta, 1e-5, gate, value, source)
    assert peak_error(got, gated) < 1e-6
    got = native.gln(y, gamma, beta, 1e-5, gate, value, source, sigmoid=True)
    assert peak_error(got, torch.sigmoid(gated)) < 1e-6
    got = native.gln(y, gamma, beta, 1e-5, slope=0.25)
    assert peak_error(got, F.leaky_relu(normed, 0.25)) < 1e-6


@needs_kernels
def test_gln_of_a_kernel_one_convolution():
    y, gamma, beta, gate, value, source = gln_case(offset=50.0)
    w, p = randn(40, seed=8).float(), (randn(40, seed=9) * 20).float()
    want = gln_reference(y, gamma, beta, 1e-8, w, p)
    got = native.gln(y, gamma, beta, 1e-8, pre_scale=w, pre_bias=p)
    assert peak_error(got, want) < 2e-6


@needs_kernels
@pytest.mark.parametrize(("offset", "spread"), [(3e3, 3.0), (1e6, 1.0)])
def test_gln_keeps_its_digits_when_the_mean_dwarfs_the_spread(offset, spread):
    # Features whose mean is 1e3 to 1e6 times their spread: one-pass float32 statistics
    # (E[y^2] - E[y]^2) lose the variance entirely here; the kernels are exact to float32's
    # rounding of the result, for a plain gLN and through a kernel-1 convolution.
    y, gamma, beta, *_ = gln_case(frames=3000, channels=70)
    y = (y.double() / 3 * spread + offset).float()
    got = native.gln(y, gamma, beta, 1e-8)
    assert peak_error(got, gln_reference(y, gamma, beta, 1e-8)) < 1e-6
    w, p = torch.full((70,), 0.5), torch.full((70,), -0.5 * offset)
    got = native.gln(y, gamma, beta, 1e-8, pre_scale=w, pre_bias=p)
    assert peak_error(got, gln_reference(y, gamma, beta, 1e-8, w, p)) < 1e-6


@needs_kernels
def test_gln_in_place_and_into_a_given_output():
    y, gamma, beta, gate, value, source = gln_case()
    want = native.gln(y, gamma, beta, 1e-8, gate, value, source)
    out = torch.empty_like(y)
    assert native.gln(y, gamma, beta, 1e-8, gate, value, source, out=out) is out
    torch.testing.assert_close(out, want, atol=0, rtol=0)
    assert native.gln(y, gamma, beta, 1e-8, gate, value, source, out=y) is y
    torch.testing.assert_close(y, want, atol=0, rtol=0)


@needs_kernels
def test_sigmoid_is_as_accurate_as_torchs():
    # gLN times a zero gate plus a value is the value: the kernel's sigmoid of it, alone.
    # Against float64, torch's float32 sigmoid is within 1.3e-7 (relative) on this range.
    value = torch.cat(
        [torch.linspace(-90, 90, 48001), torch.tensor([0.0, -0.0, float("inf"), -float("inf")])]
    )
    value = torch.cat([value, torch.full((3,), float("nan"))]).view(1, -1, 1)
    frames = value.shape[1]
    y = randn(1, frames, 1).float()
    got = native.gln(
        y,
        torch.ones(1),
        torch.zeros(1),
        1e-8,
        torch.zeros_like(value),
        value,
        torch.arange(frames),
        sigmoid=True,
    )
    want = torch.sigmoid(value.double())
    assert torch.isnan(got).equal(torch.isnan(want))
    normal = want > 1e-30  # below, float32 has only denormals (flushed to zero by our CLIs)
    relative = ((got.double() - want) / want)[normal].abs().max()
    assert relative < 2e-7
    assert got[want == 0].abs().max() < 1e-37


@needs_kernels
def test_nan_in_an_item_spreads_over_that_item_only():
    y, gamma, beta, *_ = gln_case()
    y[1, 3, 5] = float("nan")
    got = native.gln(y, gamma, beta, 1e-8)
    want = F.group_norm(y.mT, 1, gamma, beta, 1e-8).mT
    assert torch.isnan(got).equal(torch.isnan(want))
    assert torch.isnan(got[1]).all() and not torch.isnan(got[0]).any()


@needs_kernels
@pytest.mark.parametrize(
    ("frames", "out_frames"), [(1010, 64), (64, 64), (127, 64), (9, 4), (5, 1)]
)
def test_pool_add_equals_adaptive_average_pooling(frames, out_frames):
    x = randn(2, frames, 29).float()  # 29: three vectors and a scalar remainder
    base = randn(2, out_frames, 29, seed=1).float()
    want = base + F.adaptive_avg_pool1d(x.mT, out_frames).mT
    got = native.pool_add(x, base.clone())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_kernels
def test_two_threads_compute_exactly_what_one_does():
    y, gamma, beta, gate, value, source = gln_case(frames=3000, channels=96)
    conv = torch.nn.Conv1d(96, 96, 5, stride=2, padding=2, groups=96)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                results.append(
                    (
                        native.gln(y, gamma, beta, 1e-8, gate, value, source, sigmoid=True),
                        native.depthwise(y, conv.weight, conv.bias, 2, 2),
                        *native.depthwise(y, conv.weight, conv.bias, 1, 2, moments=True),
                        native.pool_add(y, torch.zeros(2, 100, 96)),
                    )
                )
    finally:
        torch.set_num_threads(previous)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


@needs_kernels
def test_bad_arguments_are_refused_by_name():
    y, gamma, beta, gate, value, source = gln_case()
    with pytest.raises(ValueError, match="gln: expected \\(batch, frames, channels\\)"):
        native.gln(y[0], gamma, beta, 1e-8)
    with pytest.raises(ValueError, match="float32 CPU tensors, not torch.float64"):
        native.gln(y.double(), gamma, beta, 1e-8)
    with pytest.raises(ValueError, match="gln: gain of shape \\(39,\\) for 40 channels"):
        native.gln(y, gamma[:-1], beta, 1e-8)
    with pytest.raises(ValueError, match="moments must be a contiguous float64 tensor"):
        native.gln(y, gamma, beta, 1e-8, moments=torch.zeros(2, 2, 39, dtype=torch.float64))
    with pytest.raises(ValueError, match="not torch.float32 \\(2, 2, 40\\)"):
        native.gln(y, gamma, beta, 1e-8, moments=torch.zeros(2, 2, 40))
    with pytest.raises(ValueError, match="source frames outside \\[0, 7\\)"):
        native.gln(y, gamma, beta, 1e-8, gate, value, source + 1)
    with pytest.raises(ValueError, match="int64 frame index of shape \\(50,\\)"):
        native.gln(y, gamma, beta, 1e-8, gate, value, source[:-1])
    with pytest.raises(
        ValueError, match="out must be a contiguous torch.float32 tensor \\(2, 50, 40\\)"
    ):
        native.gln(y, gamma, beta, 1e-8, out=torch.empty(2, 40, 50).mT)
    conv = torch.nn.Conv1d(40, 40, 5, groups=40)
    with pytest.raises(ValueError, match="does not fit an input of 40 channels and 3 frames"):
        native.depthwise(y[:, :3], conv.weight, None, 1, 0)
    with pytest.raises(ValueError, match="pool_add: out \\(2, 60, 40\\) does not fit"):
        native.pool_add(y, torch.zeros(2, 60, 40))


def test_usable_only_without_gradients_for_float32_on_the_cpu():
    x = torch.zeros(1, 4, 3)
    with torch.no_grad():
        assert native.usable(x) == (native.library() is not None)
        assert not native.usable(x.double())
        with native.native_kernels(False):
            assert not native.usable(x)
    assert not native.usable(x)  # autograd records: the kernels have no backward


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (its own kernel cache state); its last line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


DESCRIBE = """
import json, logging
logging.basicConfig(level=logging.INFO)
from asteroid_tdanet import native
print(json.dumps(native.describe()))
"""


@needs_kernels
def test_built_once_per_cache_then_loaded(tmp_path):
    first = run_python(DESCRIBE, TDANET_KERNEL_CACHE=str(tmp_path))
    assert first["available"] and "build_s" in first and "compiling" in first["stderr"]
    assert list(tmp_path.glob("cpu_kernels-*.so")) == [tmp_path / first["path"].split("/")[-1]]
    second = run_python(DESCRIBE, TDANET_KERNEL_CACHE=str(tmp_path))
    assert second["available"] and "build_s" not in second and "compiling" not in second["stderr"]


SEPARATE = """
import json, logging, torch
logging.basicConfig(level=logging.INFO)
from asteroid_tdanet import TDANet, fast, native
model = TDANet(n_src=2, sample_rate=8000, bn_chan=16, hid_chan=32, n_blocks=2, n_heads=4).eval()
wav = torch.randn(1, 4000)
with torch.inference_mode():
    out = model(wav)
    with fast.fast_path(False):
        ref = model(wav)
print(json.dumps({**native.describe(), "error": float((out - ref).abs().max() / ref.abs().max())}))
"""


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"CC": "/nonexistent/cc"}, "no C compiler"),
        ({"CC": "false"}, "failed on cpu_kernels.c"),
    ],
)
def test_without_a_working_compiler_torch_operations_serve(tmp_path, env, reason):
    result = run_python(SEPARATE, TDANET_KERNEL_CACHE=str(tmp_path), **env)
    assert not result["available"] and reason in result["reason"]
    assert "fused CPU kernels off" in result["stderr"]
    assert result["error"] < 1e-5


@needs_kernels
def test_a_build_that_disagrees_with_torch_is_not_used(tmp_path, monkeypatch):
    # A kernel with a wrong sign compiles fine; the check at load time must catch it.
    source = native.SOURCE.read_text()
    wrong = source.replace("acc[j] += load(wk + j * LANES)", "acc[j] -= load(wk + j * LANES)")
    assert wrong != source
    broken = tmp_path / "cpu_kernels.c"
    broken.write_text(wrong)
    monkeypatch.setattr(native, "SOURCE", broken)
    monkeypatch.setenv("TDANET_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_STATE", {})
    native.library.cache_clear()
    try:
        assert native.library() is None
        assert native.describe()["reason"] == "they disagree with torch on this machine"
    finally:
        native.library.cache_clear()
    monkeypatch.undo()
    assert native.library() is not None


@needs_kernels
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 target names")
def test_the_target_can_be_chosen_and_gets_its_own_build(tmp_path):
    # How an AVX-512 machine measures what an AVX2-only CPU would run (bench.cpu_speed).
    native_build = run_python(DESCRIBE, TDANET_KERNEL_CACHE=str(tmp_path))
    avx2 = run_python(DESCRIBE, TDANET_KERNEL_CACHE=str(tmp_path), TDANET_KERNEL_ARCH="x86-64-v3")
    assert avx2["available"] and avx2["flags"].endswith("-march=x86-64-v3")
    assert native_build["flags"].endswith("-march=native")
    assert avx2["path"] != native_build["path"]
