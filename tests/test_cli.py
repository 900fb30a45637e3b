"""tdanet-convert and tdanet-separate on real files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY, fixture_path, load_fixture, max_rel_error
from toolkit_helpers import add_hub_repo

from asteroid_tdanet import TDANet
from asteroid_tdanet.cli import convert_main, separate_main
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.look2hear import to_look2hear


@pytest.fixture
def released_small(tmp_path):
    fixture = load_fixture("tdanetbest_small.pt")
    path = tmp_path / "pytorch_model.bin"
    torch.save({k: fixture[k] for k in ("model_name", "model_args", "state_dict")}, path)
    return path, fixture


@pytest.mark.parametrize(
    ("flags", "reference"), [([], "outputs_look2hear"), (["--paper"], "outputs_paper")]
)
def test_convert_reproduces_the_reference(tmp_path, released_small, flags, reference):
    released, fixture = released_small
    out = tmp_path / "model.pth"
    assert convert_main([str(released), str(out), *flags]) == 0
    model = TDANet.from_pretrained(str(out)).eval()
    with torch.inference_mode():
        assert max_rel_error(model(fixture["inputs"]), fixture[reference]) <= 1e-4
    # The converted file drops the 10,000-row positional table.
    assert out.stat().st_size < released.stat().st_size


def test_convert_refuses_to_overwrite_and_reports_bad_files(tmp_path, released_small, capsys):
    released, _ = released_small
    out = tmp_path / "model.pth"
    out.write_text("precious")
    assert convert_main([str(released), str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "precious"
    bogus = tmp_path / "bogus.bin"
    torch.save({"model_name": "Other", "model_args": {}, "state_dict": {}}, bogus)
    assert convert_main([str(bogus), str(tmp_path / "x.pth")]) == 2
    assert "'Other'" in capsys.readouterr().err


def test_convert_full_size_released_file(tmp_path):
    out = tmp_path / "model.pth"
    assert convert_main([str(fixture_path("tdanetbest_4ms_16k_random.bin")), str(out)]) == 0
    assert TDANet.from_pretrained(str(out)).sample_rate == 16000


def _write(path, seconds, rate, channels=1):
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.standard_normal((int(seconds * rate), channels)).astype("float32")
    sf.write(path, audio, rate)


def test_separate_files_and_folders(tmp_path):
    model = TDANet(n_src=2, sample_rate=8000, **TINY)
    model_file = save_model_file(model, tmp_path / "model.pth")
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    _write(inputs / "a.wav", 1.0, 8000)
    _write(inputs / "sub" / "b.flac", 0.5, 16000, channels=2)  # resampled and downmixed
    out_dir = tmp_path / "out"
    assert separate_main([str(model_file), str(inputs), "--out-dir", str(out_dir)]) == 0
    for stem, rate, length in (("a", 8000, 8000), ("b", 16000, 8000)):
        for k in (1, 2):
            audio, file_rate = sf.read(out_dir / f"{stem}_est{k}.wav")
            assert file_rate == rate and audio.shape == (length,) and np.isfinite(audio).all()
    # Existing outputs are kept unless --force.
    assert separate_main([str(model_file), str(inputs / "a.wav"), "--out-dir", str(out_dir)]) == 2
    assert (
        separate_main(
            [
                str(model_file),
                str(inputs / "a.wav"),
                "--out-dir",
                str(out_dir),
                "--force",
                "--chunk-seconds",
                "0.3",
            ]
        )
        == 0
    )


def test_separate_with_a_released_checkpoint(tmp_path):
    model = TDANet(
        n_src=2,
        sample_rate=8000,
        n_heads=8,
        bn_chan=16,
        hid_chan=32,
        n_blocks=1,
        upsampling_depth=3,
        legacy_look2hear=True,  # what the released format holds
    )
    released = tmp_path / "pytorch_model.bin"
    torch.save(to_look2hear(model), released)
    _write(tmp_path / "mix.wav", 0.5, 8000)
    assert separate_main([str(released), str(tmp_path / "mix.wav")]) == 0
    assert (tmp_path / "mix_est2.wav").is_file()


def test_separate_reports_missing_inputs(tmp_path, capsys):
    model_file = save_model_file(TDANet(n_src=2, sample_rate=8000, **TINY), tmp_path / "m.pth")
    assert separate_main([str(model_file), str(tmp_path / "nope.wav")]) == 2
    assert "nope.wav" in capsys.readouterr().err


def test_separate_takes_files_and_hub_ids_and_decides_by_content(
    tmp_path, released_small, hub_cache, capsys
):
    """Our model published on the hub, and a released one, by hub id (offline hub cache)."""
    ours_file = save_model_file(TDANet(n_src=2, sample_rate=8000, **TINY), tmp_path / "ours.pth")
    released, _ = released_small
    add_hub_repo(hub_cache, "me/TDANet_Libri2Mix_sepclean", {"pytorch_model.bin": ours_file})
    add_hub_repo(hub_cache, "JusperLee/TDANetBest-4ms-LRS2", {"pytorch_model.bin": released})
    _write(tmp_path / "mix.wav", 0.5, 8000)
    outputs = {}
    for spec in (str(ours_file), "me/TDANet_Libri2Mix_sepclean", str(released)):
        out = tmp_path / f"out{len(outputs)}"
        assert separate_main([spec, str(tmp_path / "mix.wav"), "--out-dir", str(out)]) == 0
        outputs[spec] = sf.read(out / "mix_est1.wav")[0]
    assert separate_main(["JusperLee/TDANetBest-4ms-LRS2", str(tmp_path / "mix.wav")]) == 0
    hub_released = sf.read(tmp_path / "mix_est1.wav")[0]
    np.testing.assert_array_equal(outputs["me/TDANet_Libri2Mix_sepclean"], outputs[str(ours_file)])
    np.testing.assert_array_equal(hub_released, outputs[str(released)])
    assert not np.allclose(hub_released, outputs[str(ours_file)], atol=1e-3)

    bare = tmp_path / "weights.pt"
    torch.save(TDANet(**TINY).state_dict(), bare)
    capsys.readouterr()
    assert separate_main([str(bare), str(tmp_path / "mix.wav")]) == 2
    assert "bare state dict" in capsys.readouterr().err
    assert separate_main(["nobody/nothing", str(tmp_path / "mix.wav")]) == 2
    assert "not a local file or folder" in capsys.readouterr().err
