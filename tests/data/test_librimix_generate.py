"""Libri2Mix generation from LibriSpeech + LibriMix metadata (no noise)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_trees import write_wav

from asteroid_tdanet.data.librimix_generate import (
    generate_split,
    main,
    make_mixture,
    mix_sources,
    split_name,
)


def test_resampled_sine_keeps_frequency_and_gain():
    # Closed form: a 1 kHz tone at 16 kHz, scaled by 0.5, is 0.5 sin(2 pi 1000 n / 8000) at 8 kHz.
    n16 = np.arange(16000)
    tone = np.sin(2 * np.pi * 1000 * n16 / 16000)
    mixture, (s1,) = mix_sources([tone], [0.5], 8000, "min")
    n8 = np.arange(len(s1))
    expected = 0.5 * np.sin(2 * np.pi * 1000 * n8 / 8000)
    assert len(s1) == 8000
    inner = slice(100, -100)  # away from the filter's edge effects
    np.testing.assert_allclose(s1[inner], expected[inner], atol=1e-3)
    np.testing.assert_array_equal(mixture, s1)


def test_min_cuts_and_max_pads():
    a, b = np.ones(1000), np.ones(1601)
    mix_min, (s1, s2) = mix_sources([a, b], [1.0, 2.0], 8000, "min")
    assert len(mix_min) == len(s1) == len(s2) == 500
    np.testing.assert_allclose(mix_min, s1 + s2)
    mix_max, (s1, s2) = mix_sources([a, b], [1.0, 2.0], 8000, "max")
    assert len(mix_max) == 801  # ceil(1601 / 2)
    assert np.all(s1[500:] == 0)  # zero-padded
    np.testing.assert_allclose(mix_max, s1 + s2)
    with pytest.raises(ValueError, match="mode must be"):
        mix_sources([a], [1.0], 8000, "mid")


def test_split_names_follow_librimix():
    assert split_name("train-clean-100") == "train-100"
    assert split_name("dev-clean") == "dev"
    assert split_name("test-clean") == "test"


def _librispeech(tmp_path: Path, rate: int = 16000) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ls = tmp_path / "LibriSpeech"
    rows = []
    for i in range(2):
        paths = []
        for j, n in enumerate((12000 + 500 * i, 10001)):
            rel = f"dev-clean/{10 + j}/{20 + i}/{10 + j}-{20 + i}-000{i}.flac"
            write_wav(ls / rel, 0.2 * rng.standard_normal(n), rate)
            paths.append(rel)
        rows.append(
            {
                "mixture_ID": "_".join(Path(p).stem for p in paths),
                "source_1_path": paths[0],
                "source_1_gain": 0.7,
                "source_2_path": paths[1],
                "source_2_gain": 1.3,
                "noise_path": "cv/none.wav",
                "noise_gain": 1.0,
            }
        )
    meta = tmp_path / "metadata" / "libri2mix_dev-clean.csv"
    meta.parent.mkdir()
    with open(meta, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return ls, meta


def test_generate_split_layout_metadata_and_resume(tmp_path):
    ls, meta = _librispeech(tmp_path)
    out = tmp_path / "Libri2Mix"
    csv_path = generate_split(meta, ls, out, progress=False)
    assert csv_path == out / "wav8k" / "min" / "metadata" / "mixture_dev_mix_clean.csv"
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [r["length"] for r in rows] == ["5001", "5001"]  # ceil(10001 / 2), the shorter
    for row in rows:
        mix, rate = sf.read(row["mixture_path"])
        s1, _ = sf.read(row["source_1_path"])
        s2, _ = sf.read(row["source_2_path"])
        assert rate == 8000 and sf.info(row["mixture_path"]).subtype == "PCM_16"
        np.testing.assert_allclose(mix, s1 + s2, atol=1.5 / 2**15)
        assert Path(row["mixture_path"]).parent == out / "wav8k" / "min" / "dev" / "mix_clean"

    # Resume: finished mixtures are not rewritten; a missing one is written again, the same.
    first = Path(rows[0]["source_2_path"])
    kept = Path(rows[1]["mixture_path"])
    before, stamp = first.read_bytes(), kept.stat().st_mtime_ns
    first.unlink()
    generate_split(meta, ls, out, progress=False)
    assert first.read_bytes() == before and kept.stat().st_mtime_ns == stamp


def test_generation_errors_name_the_file(tmp_path):
    ls, meta = _librispeech(tmp_path)
    victim = sorted(ls.rglob("*.flac"))[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        generate_split(meta, ls, tmp_path / "out", progress=False)
    write_wav(victim, np.zeros(100), 8000)
    with pytest.raises(ValueError, match=f"{victim} has sample rate 8000 Hz"):
        generate_split(meta, ls, tmp_path / "out", progress=False)


def test_cli_reports_missing_metadata(tmp_path, capsys):
    code = main(
        ["--librispeech_dir", str(tmp_path), "--metadata_dir", str(tmp_path), "--out_dir",
         str(tmp_path / "out"), "--subsets", "dev-clean"]
    )  # fmt: skip
    assert code == 1
    assert "libri2mix_dev-clean.csv is missing" in capsys.readouterr().err


def test_a_mixture_past_full_scale_is_clipped_not_wrapped(tmp_path, caplog):
    # 16-bit PCM wraps values past full scale around to the other sign; a peak that LibriMix's
    # gains did not prevent (resampling overshoot) must become full scale of the same sign.
    ls = tmp_path / "LibriSpeech"
    t = np.arange(3200) / 16000
    tone = 0.6 * np.sin(2 * np.pi * 200 * t)
    for name in ("a", "b"):
        write_wav(ls / f"{name}.flac", tone, 16000)
    row = {
        "mixture_ID": "a_b",
        "source_1_path": "a.flac",
        "source_1_gain": 1.0,
        "source_2_path": "b.flac",
        "source_2_gain": 1.0,
    }
    split_dir = tmp_path / "out"
    for sub in ("mix_clean", "s1", "s2"):
        (split_dir / sub).mkdir(parents=True)
    with caplog.at_level("WARNING"):
        _, mix_path, _, _ = make_mixture(
            row, librispeech_dir=ls, split_dir=split_dir, sample_rate=8000, mode="min", n_src=2
        )
    assert "clipped to [-1, 1]" in caplog.text and "mix_clean" in caplog.text  # and said so
    written, _ = sf.read(mix_path)
    expected = 2 * tone[::2]  # 1.2 sin: beyond full scale around the crests
    crest = np.abs(expected) > 1.0
    assert crest.any()
    np.testing.assert_array_equal(np.sign(written[crest]), np.sign(expected[crest]))
    assert np.abs(written[crest]).min() > 0.999
    np.testing.assert_allclose(written[~crest][50:-50], expected[~crest][50:-50], atol=1e-3)
