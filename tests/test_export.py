"""ONNX export: onnxruntime equals torch for any batch and length (both modes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asteroid_tdanet import TDANet
from asteroid_tdanet.export import export_main, export_onnx, onnx_session

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("legacy", [False, True])
def test_onnxruntime_equals_torch_with_dynamic_batch_and_length(tmp_path, legacy):
    model = TDANet(
        n_src=2,
        sample_rate=8000,
        bn_chan=16,
        hid_chan=32,
        n_blocks=2,
        upsampling_depth=3,
        n_heads=4,
        legacy_look2hear=legacy,
    ).eval()
    path = export_onnx(model, tmp_path / "tdanet.onnx")
    session = onnx_session(path, threads=1)
    for batch, length in ((1, 8000), (3, 12_345), (2, 32), (1, 41)):
        mix = torch.randn(batch, length)
        got = session.run(None, {"mixture": mix.numpy()})[0]
        with torch.inference_mode():
            expected = model(mix).numpy()
        assert got.shape == (batch, 2, length)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_export_command_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_text("keep")
    assert export_main(["whatever.pth", str(out)]) == 2
    assert out.read_text() == "keep"
