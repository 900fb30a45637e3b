"""Sepformer: SpeechBrain's network behind Asteroid's interface, and its optional import."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SEPFORMER_FILE = Path(__file__).resolve().parents[1] / "asteroid_tdanet" / "sepformer.py"
TINY = dict(n_filters=16, n_layers=1, n_heads=2, d_ffn=32, chunk_size=50, n_repeats=1)


def test_module_imports_without_speechbrain_and_says_how_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "speechbrain" or m.startswith("speechbrain.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "speechbrain", None)  # makes `import speechbrain` fail
    # A private copy of the module, so the registered class stays the one other code holds.
    spec = importlib.util.spec_from_file_location("_sepformer_without_sb", SEPFORMER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__all__ == ["Sepformer"]
    with pytest.raises(ImportError, match=r"pip install 'asteroid-tdanet\[sepformer\]'"):
        module.Sepformer()


@pytest.fixture(scope="module")
def sepformer_cls():
    pytest.importorskip("speechbrain", reason="Sepformer needs speechbrain (the [sepformer] extra)")
    from asteroid_tdanet.sepformer import Sepformer

    return Sepformer


def test_default_size_is_the_speechbrain_wsj0_2mix_recipe(sepformer_cls):
    model = sepformer_cls()
    assert sum(p.numel() for p in model.parameters()) == 25_679_361
    assert model.sample_rate == 8000


def test_matches_speechbrains_own_assembly(sepformer_cls):
    from speechbrain.lobes.models.dual_path import SepformerWrapper

    torch.manual_seed(0)
    reference = SepformerWrapper(
        encoder_out_nchannels=16,
        masknet_chunksize=50,
        masknet_numlayers=1,
        intra_numlayers=1,
        inter_numlayers=1,
        intra_nhead=2,
        inter_nhead=2,
        intra_dffn=32,
        inter_dffn=32,
    ).eval()
    model = sepformer_cls(**TINY).eval()
    state = {k.replace("masknet.", "masker.", 1): v for k, v in reference.state_dict().items()}
    model.load_state_dict(state, strict=True)
    mix = torch.randn(2, 1203)
    with torch.inference_mode():
        # SpeechBrain returns (batch, time, n_src).
        assert torch.allclose(model(mix), reference(mix).transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 803), (2, 2, 803)),
        ((1, 800), (1, 2, 800)),
        ((803,), (2, 803)),
        ((1, 1, 640), (1, 2, 640)),
    ],
)
def test_output_shapes_padded_or_trimmed(sepformer_cls, shape, expected):
    model = sepformer_cls(**TINY).eval()
    with torch.inference_mode():
        assert model(torch.randn(*shape)).shape == expected


def test_bad_input_and_arguments(sepformer_cls):
    model = sepformer_cls(**TINY).eval()
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 2, 100))
    with pytest.raises(ValueError, match="stride"):
        sepformer_cls(kernel_size=16, stride=4)


def test_serialize_file_round_trip(sepformer_cls, tmp_path):
    model = sepformer_cls(sample_rate=16000, **TINY).eval()
    args = model.get_model_args()
    json.dumps(args)  # plain values only
    assert args["sample_rate"] == 16000.0 and args["n_filters"] == 16
    path = tmp_path / "sepformer.pth"
    torch.save(model.serialize(), path)
    # Loads with torch's safe default (weights_only=True).
    package = torch.load(path, weights_only=True)
    loaded = sepformer_cls.from_pretrained(str(path)).eval()
    assert isinstance(loaded, sepformer_cls) and loaded.get_model_args() == args
    assert package["model_name"] == "Sepformer"
    mix = torch.randn(1, 900)
    with torch.inference_mode():
        assert torch.equal(model(mix), loaded(mix))
