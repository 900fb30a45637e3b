"""TDANet as an Asteroid model: shapes, lengths, independence, gradients, errors, registry."""

from __future__ import annotations

import importlib

import pytest
import soundfile as sf
import torch
from asteroid.models import get
from conftest import TINY

import asteroid_tdanet
from asteroid_tdanet import TDANet, TDANetLarge


@pytest.fixture
def tiny():
    return TDANet(n_src=2, sample_rate=8000, **TINY).eval()


@pytest.mark.parametrize("length", [1, 7, 8000, 8001])
def test_any_length_returns_the_input_length(tiny, length):
    with torch.inference_mode():
        assert tiny(torch.randn(3, length)).shape == (3, 2, length)


def test_input_shapes(tiny):
    mix = torch.randn(2, 999)
    with torch.inference_mode():
        batch = tiny(mix)
        torch.testing.assert_close(tiny(mix[:, None]), batch)
        assert tiny(mix[0]).shape == (2, 999)  # Asteroid's convention for 1-D input
        torch.testing.assert_close(tiny(mix[0]), batch[0])


def test_200_seconds_at_8k_past_the_released_position_limit():
    # D = 5: 200 s gives 12,500 coarsest frames, beyond the released 10,000-row table.
    model = TDANet(
        n_src=2, sample_rate=8000, bn_chan=8, hid_chan=16, n_blocks=1, upsampling_depth=5, n_heads=2
    ).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 200 * 8000))
    assert out.shape == (1, 2, 1_600_000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("legacy", [False, True])
def test_batch_items_never_influence_each_other(legacy):
    model = TDANet(n_src=2, sample_rate=8000, legacy_look2hear=legacy, **TINY).eval()
    a, b, c = torch.randn(3, 4000)
    with torch.inference_mode():
        first = model(torch.stack([a, b]))
        second = model(torch.stack([a, c * 10]))
        alone = model(a[None])
    torch.testing.assert_close(first[0], second[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first[0], alone[0], rtol=1e-5, atol=1e-6)


def _params_without_grad(model):
    model.train()
    out = model(torch.randn(2, 3000))
    out.square().mean().backward()
    return {n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()}


def test_every_parameter_gets_a_gradient_in_the_default_mode():
    assert _params_without_grad(TDANet(n_src=2, sample_rate=8000, **TINY)) == set()


def test_legacy_mode_leaves_the_coarsest_injection_unused():
    model = TDANet(n_src=2, sample_rate=8000, legacy_look2hear=True, **TINY)
    unused = _params_without_grad(model)
    coarsest = TINY["upsampling_depth"] - 1
    assert unused == {
        n for n, _ in model.named_parameters() if n.startswith(f"masker.ublock.inject.{coarsest}.")
    }
    # Query and key projections are unused too (rows of in_proj_weight/bias).
    grad = model.masker.ublock.global_attn.mhsa.attn.in_proj_weight.grad
    hid = TINY["hid_chan"]
    assert not grad[: 2 * hid].any() and grad[2 * hid :].any()


def test_checkpointed_blocks_give_the_same_gradients():
    torch.manual_seed(1)
    plain = TDANet(n_src=2, sample_rate=8000, dropout=0.0, drop_path=0.0, **TINY)
    checkpointed = TDANet(
        n_src=2, sample_rate=8000, dropout=0.0, drop_path=0.0, checkpoint_blocks=True, **TINY
    )
    checkpointed.load_state_dict(plain.state_dict())
    mix = torch.randn(2, 2000)
    for model in (plain, checkpointed):
        model.train()
        model(mix).square().mean().backward()
    for (name, p1), (_, p2) in zip(
        plain.named_parameters(), checkpointed.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


def test_large_is_the_2ms_kernel():
    large = TDANetLarge(n_src=2, sample_rate=16000)
    assert large.kernel_size == 32 and large.stride == 8
    assert large.encoder.weight.shape == (17, 1, 32)
    assert TDANet(sample_rate=16000).encoder.weight.shape == (33, 1, 64)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(1, 0), ValueError, "empty"),
        (torch.tensor([[0.0, float("nan"), 1.0]]), ValueError, "NaN or Inf"),
        (torch.tensor([[0.0, float("inf"), 1.0]]), ValueError, "NaN or Inf"),
        (torch.zeros(1, 2, 100), ValueError, r"2 channels.*downmix"),
        (torch.zeros(1, 1, 1, 100), ValueError, "4-D"),
        (torch.zeros(1, 100, dtype=torch.int16), TypeError, "int16.*32768"),
        ([0.0, 1.0], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_gets_a_clear_error(tiny, bad, error, match):
    with pytest.raises(error, match=match):
        tiny(bad)


def test_kernel_must_be_whole_samples():
    with pytest.raises(ValueError, match="44.1 samples"):
        TDANet(sample_rate=11025)


def test_registered_with_asteroid_and_reload_is_harmless():
    assert get("TDANet") is TDANet and get("tdanetlarge") is TDANetLarge
    importlib.reload(asteroid_tdanet)
    asteroid_tdanet.register_models()
    assert get("TDANet") is asteroid_tdanet.TDANet


def test_registration_never_replaces_another_packages_class():
    from asteroid import models
    from asteroid.models.base_models import BaseModel

    class TDANetBest(BaseModel):  # someone else's model under a name we also use
        pass

    ours = vars(models).pop("TDANetBest")
    models.register_model(TDANetBest)
    try:
        with pytest.warns(RuntimeWarning) as caught:
            asteroid_tdanet.register_models()
        message = str(caught[0].message)
        assert "test_models" in message and "asteroid_tdanet.models.TDANetBest" in message
        assert get("TDANetBest") is TDANetBest and get("TDANet") is TDANet
        assert asteroid_tdanet.get_model("TDANetBest") is ours  # still ours by our name
    finally:
        vars(models)["TDANetBest"] = ours


def test_asteroid_infer_and_separate_run_a_training_mode_model_as_inference(tmp_path, tiny):
    """Asteroid's from_pretrained returns train mode; separate() must not apply dropout."""
    mix = torch.randn(1, 4000)
    with torch.inference_mode():
        expected = tiny(mix)
        tiny.train()
        torch.testing.assert_close(tiny.forward_wav(mix), expected)
    assert tiny.training  # the caller's mode is restored


def test_file_round_trip_with_weights_only(tmp_path, tiny):
    path = tmp_path / "best_model.pth"
    torch.save(tiny.serialize(), path)
    package = torch.load(path, weights_only=True)  # plain values only
    assert package["model_name"] == "TDANet"
    for loaded in (
        TDANet.from_pretrained(str(path)),
        TDANet.from_pretrained(path),
        asteroid_tdanet.io.load_model(path),
    ):
        loaded.eval()
        mix = torch.randn(1, 3000)
        with torch.inference_mode():
            torch.testing.assert_close(loaded(mix), tiny(mix))
        assert loaded.get_model_args() == tiny.get_model_args()


def test_separate_a_real_wav_file(tmp_path, tiny):
    mixture = tmp_path / "mixture.wav"
    sf.write(mixture, 0.1 * torch.randn(8000).numpy(), 8000)
    tiny.separate(str(mixture))
    for k in (1, 2):
        audio, rate = sf.read(tmp_path / f"mixture_est{k}.wav")
        assert rate == 8000 and audio.shape == (8000,)
    resampled = tmp_path / "mixture16k.wav"
    sf.write(resampled, 0.1 * torch.randn(16000).numpy(), 16000)
    tiny.separate(str(resampled), resample=True)
    audio, rate = sf.read(tmp_path / "mixture16k_est2.wav")
    assert rate == 16000 and abs(audio.shape[0] - 16000) <= 1
