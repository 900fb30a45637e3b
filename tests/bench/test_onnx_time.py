"""onnxruntime runners: session set-up with a hand-built graph, failures become notes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asteroid_tdanet.bench.onnx_time import OnnxUnavailable, load_exporter, make_onnx_runner

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _write_doubling_graph(model, path, **kwargs):
    """A stand-in exporter: an ONNX graph computing 2 * mixture, any length."""
    from onnx import TensorProto, helper

    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["mixture", "two"], ["sources"])],
        "double",
        [helper.make_tensor_value_info("mixture", TensorProto.FLOAT, [1, "time"])],
        [helper.make_tensor_value_info("sources", TensorProto.FLOAT, [1, "time"])],
        initializer=[two],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_runner_runs_the_exported_graph(tmp_path):
    wav = torch.randn(1, 50)
    runner = make_onnx_runner(_write_doubling_graph, None, wav, 1, tmp_path / "m.onnx")
    np.testing.assert_allclose(runner()[0], 2 * wav.numpy())
    # The file is reused for another length (no second export).
    again = make_onnx_runner(None, None, torch.randn(1, 70), 1, tmp_path / "m.onnx")
    assert again()[0].shape == (1, 70)


def test_export_failure_becomes_unavailable(tmp_path):
    def broken(model, path, **kwargs):
        raise AttributeError("no kernel_size")

    with pytest.raises(OnnxUnavailable, match="export failed: AttributeError: no kernel_size"):
        make_onnx_runner(broken, None, torch.randn(1, 10), 1, tmp_path / "x.onnx")


@pytest.mark.slow
def test_real_export_of_tiny_tdanet_matches_torch(tmp_path):
    from asteroid_tdanet.bench.zoo import build_model

    try:
        exporter = load_exporter()
    except OnnxUnavailable as err:
        pytest.skip(str(err))
    model = build_model("tdanet", 8000, tiny=True)
    wav = torch.randn(1, 4000)
    runner = make_onnx_runner(exporter, model, wav, 1, tmp_path / "tdanet.onnx")
    with torch.inference_mode():
        expected = model(wav).numpy()
    np.testing.assert_allclose(runner()[0], expected, atol=1e-4 * np.abs(expected).max())
