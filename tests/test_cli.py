"""tdanet-convert and tdanet-separate on real files."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from asteroid.separate import torch_separate
from conftest import TINY, fixture_path, load_fixture, max_rel_error
from toolkit_helpers import add_hub_repo

from asteroid_tdanet import TDANet
from asteroid_tdanet.cli import convert_main, separate_file, separate_main
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.look2hear import to_look2hear

REPO_TESTS = Path(__file__).resolve().parent


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


# 16-bit PCM outputs: one quantisation step, plus float rounding.
PCM16_ATOL = 1.5 / 32768


class ScaledCopies(torch.nn.Module):
    """A pointwise 'model' at 8 kHz with a closed-form answer: (x, 3 x)."""

    sample_rate = 8000
    n_src = 2

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device
        self.fail_after = fail_after
        self.calls = 0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated failure in the middle of a file")
        return torch.cat([wav, 3 * wav], dim=1)


def test_streamed_file_equals_the_whole_file_computation(tmp_path):
    # 150 s of stereo at 16 kHz: downmixed, resampled to 8 kHz and back in blocks, chunked.
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((150 * 16000 + 7, 2))).astype("float32")
    sf.write(tmp_path / "mix.wav", audio, 16000, subtype="FLOAT")
    model = ScaledCopies()
    outputs = separate_file(model, tmp_path / "mix.wav", tmp_path / "out", chunk_seconds=None)
    assert model.calls > 10  # chunked
    # Independently: whole-signal resampling, and Asteroid's rule that the estimates' summed
    # magnitude equals the mixture's, which makes (x, 3x) into (x/4, 3x/4).
    mono = torch.from_numpy(audio.mean(axis=1, dtype=np.float32))
    at_8k = AF.resample(mono, 16000, 8000)
    for out, gain in zip(outputs, (0.25, 0.75), strict=True):
        expected = AF.resample(gain * at_8k, 8000, 16000)[: len(audio)].numpy()
        written, rate = sf.read(out, dtype="float32")
        assert rate == 16000 and sf.info(str(out)).subtype == "PCM_16"
        assert written.shape == expected.shape == (len(audio),)
        np.testing.assert_allclose(written, expected, atol=PCM16_ATOL)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mix_est1.wav", "mix_est2.wav"]


def test_cli_output_equals_the_in_memory_api(tmp_path):
    # A file over 60 s: tdanet-separate streams it; model.separate's path holds it in memory.
    model = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    model_file = save_model_file(model, tmp_path / "model.pth")
    _write(tmp_path / "long.wav", 65.0, 8000)
    assert separate_main([str(model_file), str(tmp_path / "long.wav")]) == 0
    mix = torch.from_numpy(sf.read(tmp_path / "long.wav", dtype="float32")[0])
    expected = torch_separate(model, mix[None, None])[0]
    for k in (1, 2):
        written = sf.read(tmp_path / f"long_est{k}.wav", dtype="float32")[0]
        np.testing.assert_allclose(written, expected[k - 1].numpy(), atol=PCM16_ATOL)


def test_a_failure_midway_leaves_no_outputs_and_no_temporary_files(tmp_path, capsys):
    _write(tmp_path / "mix.wav", 100.0, 8000)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated"):
        separate_file(ScaledCopies(fail_after=3), tmp_path / "mix.wav", out_dir, chunk_seconds=10)
    assert list(out_dir.iterdir()) == []


def test_clipped_samples_are_reported(tmp_path, caplog):
    sf.write(tmp_path / "loud.wav", np.full(8000, 1.6, dtype="float32"), 8000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="asteroid_tdanet"):
        separate_file(ScaledCopies(), tmp_path / "loud.wav", tmp_path, chunk_seconds=0)
    # (1.6, 4.8) scaled to (0.4, 1.2): the second estimate clips everywhere.
    assert "loud_est2.wav: 8000 samples beyond full scale" in caplog.text
    assert "loud_est1.wav" not in caplog.text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--chunk-seconds", "-1"], "--chunk-seconds must be >= 0"),
        (["--overlap-seconds", "0"], "--overlap-seconds must be > 0"),
        (["--chunk-seconds", "4", "--overlap-seconds", "3"], "more than half of --chunk-seconds"),
    ],
)
def test_bad_chunk_options_are_refused_up_front(tmp_path, capsys, flags, message):
    _write(tmp_path / "mix.wav", 0.5, 8000)
    assert separate_main(["no-such-model.pth", str(tmp_path / "mix.wav"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_an_empty_file_is_refused_by_name(tmp_path, capsys):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype="float32"), 8000)
    with pytest.raises(ValueError, match="empty.wav holds no audio"):
        separate_file(ScaledCopies(), tmp_path / "empty.wav", None, chunk_seconds=None)


# Peak memory of separating a file in a fresh process (ScaledCopies: the network costs nothing,
# so what grows with the input is the streaming machinery itself).
# VmHWM, not ru_maxrss: the latter would count this (large) pytest process, forked from.
PEAK_RSS_SCRIPT = """
import sys
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[3])
from test_cli import ScaledCopies
from asteroid_tdanet.cli import separate_file
from asteroid_tdanet.studies.measure import peak_rss_mb
torch.set_num_threads(1)
separate_file(ScaledCopies(), Path(sys.argv[1]), Path(sys.argv[2]), chunk_seconds=None,
              force=True, progress=False)
print(peak_rss_mb())
"""


def _write_noise_in_blocks(path, seconds: int, rate: int) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(0.1 * rng.standard_normal(10 * rate))


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file_length(tmp_path):
    """4 vs 40 minutes at 16 kHz (resampled to 8 kHz and back): same peak memory.

    Holding the 40-minute input even once as float32 would add 150 MB; the old whole-file path
    held about 12 floats per sample.
    """
    peaks = {}
    for minutes in (4, 40):
        path = tmp_path / f"noise{minutes}.wav"
        _write_noise_in_blocks(path, 60 * minutes, 16000)
        run = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_SCRIPT, str(path), str(tmp_path), str(REPO_TESTS)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[minutes] = float(run.stdout.split()[-1])  # MiB
        path.unlink()
    assert peaks[40] - peaks[4] < 20, peaks


def test_the_command_exits_with_main_s_status_and_flushed_output(tmp_path):
    # separate_entry leaves with os._exit: run it in a child process, as the console script does.
    model_file = save_model_file(TDANet(n_src=2, sample_rate=8000, **TINY), tmp_path / "m.pth")
    sf.write(tmp_path / "mix.wav", np.random.default_rng(0).standard_normal(4000) * 0.1, 8000)
    entry = "import sys; from asteroid_tdanet.cli import separate_entry; separate_entry()"

    def command(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", entry, *args]
        return subprocess.run(argv, capture_output=True, text=True)

    done = command(str(model_file), str(tmp_path / "mix.wav"), "--out-dir", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    assert "separated 1 file(s) into 2 estimate(s)" in done.stdout
    assert sf.info(str(tmp_path / "o" / "mix_est1.wav")).frames == 4000
    assert command(str(model_file), str(tmp_path / "missing.wav")).returncode == 2
    assert command("--help").returncode == 0


def test_the_command_skips_the_teardown_that_raises_peak_memory(tmp_path):
    from asteroid_tdanet.studies.measure import run_measured

    model_file = save_model_file(TDANet(n_src=2, sample_rate=8000, **TINY), tmp_path / "m.pth")
    sf.write(tmp_path / "mix.wav", np.zeros(4000), 8000)
    args = [str(model_file), str(tmp_path / "mix.wav"), "--force"]
    cli = "import sys; from asteroid_tdanet.cli import separate_main, separate_entry; "
    entry = run_measured([sys.executable, "-c", cli + "separate_entry()", *args])
    plain = run_measured([sys.executable, "-c", cli + "sys.exit(separate_main())", *args])
    assert plain.peak_rss_mb - entry.peak_rss_mb > 50  # ~110 MB of torch's teardown
