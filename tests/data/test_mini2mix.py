"""Mini2Mix builder and the committed sources it mixes.

The expectations come from LibriMix (column names, folder names, U(-33, -25) LUFS, 0.9 peak
rule, "min" mode) and are re-derived here with pyloudnorm and scipy, not read back from the
builder's own bookkeeping.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from asteroid_tdanet.data.mini2mix import (
    SourceUtterance,
    build_mini2mix,
    librimix_gains,
    main,
)

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "egs" / "mini2mix" / "sources"
SPLIT_DIRS = {"train": "train-100", "dev": "dev", "test": "test"}
SIZES = {"train": 12, "dev": 4, "test": 6}
LIBRIMIX_COLUMNS = ["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"]
LSB = 1 / 32768  # soundfile reads int16 as x / 32768


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _build(root: Path, **kwargs) -> Path:
    sizes = {f"n_{k}": v for k, v in SIZES.items()}
    return build_mini2mix(SOURCES, root, **{**sizes, "progress": False, **kwargs})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini2mix")
    _build(root)
    return root


@pytest.fixture(scope="module")
def utterances() -> dict[str, dict[str, str]]:
    return {row["utterance_id"]: row for row in _read_tsv(SOURCES / "utterances.tsv")}


def _mixtures(root: Path, split: str) -> list[dict[str, str]]:
    meta = root / "Libri2Mix" / "wav8k" / "min" / "metadata"
    return _read_csv(meta / f"mixture_{SPLIT_DIRS[split]}_mix_clean.csv")


# --- the committed sources ----------------------------------------------------------------


def test_sources_are_16k_mono_flac_and_small(utterances):
    flacs = sorted(SOURCES.rglob("*.flac"))
    assert {p.relative_to(SOURCES).as_posix() for p in flacs} == {
        row["path"] for row in utterances.values()
    }
    for path in flacs:
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC",
            "PCM_16",
            16000,
            1,
        ), path
        assert info.frames == int(utterances[path.stem]["num_samples"])
    total = sum(p.stat().st_size for p in SOURCES.rglob("*") if p.is_file())
    assert total < 10 * 1000 * 1000, f"sources take {total / 1e6:.1f} MB"
    assert (SOURCES / "LICENSES.md").is_file()


def test_sources_splits_are_disjoint(utterances):
    speakers = {row["speaker_id"]: row for row in _read_tsv(SOURCES / "speakers.tsv")}
    by_split = {split: [u for u in utterances.values() if u["split"] == split] for split in SIZES}
    for split, utts in by_split.items():
        assert len({u["speaker_id"] for u in utts}) >= 4, split
        assert all(speakers[u["speaker_id"]]["split"] == split for u in utts)
    for held_out in ("dev", "test"):
        for key in ("speaker_id", "sentence_id"):
            train = {u[key] for u in by_split["train"]}
            assert train.isdisjoint(u[key] for u in by_split[held_out]), (held_out, key)
    # Distinct voices: no two speakers share a full voice setting.
    settings = [
        (s["engine"], s["voice"], s["engine_args"], s["sox_effects"]) for s in speakers.values()
    ]
    assert len(set(settings)) == len(settings)


# --- the built tree -----------------------------------------------------------------------


def test_exact_libri2mix_layout(built):
    top = built / "Libri2Mix"
    assert sorted(os.listdir(built)) == ["Libri2Mix"]  # no staging leftovers
    expected = set()
    for split, split_dir in SPLIT_DIRS.items():
        for row in _mixtures(built, split):
            for sub in ("mix_clean", "s1", "s2"):
                expected.add(f"wav8k/min/{split_dir}/{sub}/{row['mixture_ID']}.wav")
        expected |= {
            f"wav8k/min/metadata/mixture_{split_dir}_mix_clean.csv",
            f"wav8k/min/metadata/metrics_{split_dir}_mix_clean.csv",
        }
    for subset in ("train-clean-100", "dev-clean", "test-clean"):
        expected |= {f"metadata/libri2mix_{subset}.csv", f"metadata/libri2mix_{subset}_info.csv"}
    expected.add("metadata/mini2mix_build.json")
    found = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    assert found == expected


def test_csv_columns_and_paths(built):
    for split, split_dir in SPLIT_DIRS.items():
        rows = _mixtures(built, split)
        assert len(rows) == SIZES[split]
        assert list(rows[0]) == LIBRIMIX_COLUMNS
        for row in rows:
            mid = row["mixture_ID"]
            assert mid.count("_") == 1  # asteroid's LibriMix(return_id=True) splits on it
            for col, sub in zip(LIBRIMIX_COLUMNS[1:4], ("mix_clean", "s1", "s2"), strict=True):
                path = Path(row[col])
                assert path.is_absolute()
                assert path == built / "Libri2Mix/wav8k/min" / split_dir / sub / f"{mid}.wav"


def test_audio_rate_length_and_sum(built, utterances):
    for split in SIZES:
        for row in _mixtures(built, split):
            mix, rate = sf.read(row["mixture_path"])
            s1, rate1 = sf.read(row["source_1_path"])
            s2, rate2 = sf.read(row["source_2_path"])
            assert rate == rate1 == rate2 == 8000
            assert sf.info(row["mixture_path"]).subtype == "PCM_16"
            assert mix.ndim == s1.ndim == s2.ndim == 1
            # "min" mode: the shorter source at 8 kHz sets the length.
            ids = row["mixture_ID"].split("_")
            n16 = [int(utterances[i]["num_samples"]) for i in ids]
            expected = min(math.ceil(n / 2) for n in n16)
            assert len(mix) == len(s1) == len(s2) == int(row["length"]) == expected
            assert np.max(np.abs(mix - (s1 + s2))) <= LSB + 1e-12
            assert np.max(np.abs(mix)) < 1.0


def test_loudness_gains_follow_librimix(built):
    meter = pyloudnorm.Meter(16000)
    checked = 0
    for split in SIZES:
        subset = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}[split]
        gains = _read_csv(built / "Libri2Mix" / "metadata" / f"libri2mix_{subset}.csv")
        info_csv = built / "Libri2Mix" / "metadata" / f"libri2mix_{subset}_info.csv"
        info = {r["mixture_ID"]: r for r in _read_csv(info_csv)}
        files = {r["mixture_ID"]: r for r in _mixtures(built, split)}
        for row in gains:
            mid = row["mixture_ID"]
            for k in (1, 2):
                original, _ = sf.read(SOURCES / row[f"source_{k}_path"])
                gain = float(row[f"source_{k}_gain"])
                # The written 8 kHz source is the scaled original, resampled and cut.
                written, _ = sf.read(files[mid][f"source_{k}_path"])
                ref = resample_poly(gain * original, 1, 2)[: len(written)]
                assert np.max(np.abs(written - ref)) <= LSB / 2 + 1e-9  # rounding only
                if info[mid]["renormalized"] == "False":
                    loudness = meter.integrated_loudness(gain * original)
                    assert -33 - 1e-6 <= loudness <= -25 + 1e-6, (mid, loudness)
                    checked += 1
    assert checked >= sum(SIZES.values())  # sources checked: most mixtures keep their draw


def test_no_mixture_pairs_a_speaker_with_itself_and_splits_hold(built, utterances):
    for split in SIZES:
        for row in _mixtures(built, split):
            a, b = (utterances[i] for i in row["mixture_ID"].split("_"))
            assert a["speaker_id"] != b["speaker_id"]
            assert a["sentence_id"] != b["sentence_id"]
            assert a["split"] == b["split"] == split


def test_same_seed_same_bytes_other_seed_differs(built, tmp_path):
    again = tmp_path / "again"
    _build(again)
    other = tmp_path / "other"
    _build(other, seed=1)
    for split in SIZES:
        rows, rows_again = _mixtures(built, split), _mixtures(again, split)
        assert [r["mixture_ID"] for r in rows] == [r["mixture_ID"] for r in rows_again]
        for r, r2 in zip(rows, rows_again, strict=True):
            for col in LIBRIMIX_COLUMNS[1:4]:
                assert Path(r[col]).read_bytes() == Path(r2[col]).read_bytes()
        assert [r["mixture_ID"] for r in rows] != [r["mixture_ID"] for r in _mixtures(other, split)]
    for name in ("libri2mix_train-clean-100.csv", "libri2mix_test-clean_info.csv"):
        meta = Path("Libri2Mix") / "metadata" / name
        assert (built / meta).read_bytes() == (again / meta).read_bytes()


def test_idempotent_and_force(tmp_path):
    root = tmp_path / "data"
    out = _build(root)
    assert out == root / "Libri2Mix" / "wav8k" / "min"
    probe = out / "metadata" / "mixture_test_mix_clean.csv"
    before = probe.stat().st_mtime_ns
    assert _build(root) == out
    assert probe.stat().st_mtime_ns == before  # untouched
    with pytest.raises(FileExistsError, match="other parameters"):
        _build(root, seed=3)
    # A deleted file makes the build incomplete: it is rebuilt.
    victim = Path(_mixtures(root, "dev")[0]["source_2_path"])
    victim.unlink()
    _build(root)
    assert victim.is_file()
    _build(root, seed=3, force=True)
    assert not (tmp_path / "data" / ".Libri2Mix.partial").exists()


def test_refuses_a_foreign_libri2mix(tmp_path):
    (tmp_path / "Libri2Mix" / "wav8k").mkdir(parents=True)
    for force in (False, True):
        with pytest.raises(FileExistsError, match="not made by mini2mix"):
            _build(tmp_path, force=force)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_mini2mix(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="speakers.tsv"):
        build_mini2mix(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="distinct pairs"):
        _build(tmp_path / "out", n_dev=10_000)
    with pytest.raises(ValueError, match="sample_rate"):
        _build(tmp_path / "out", sample_rate=11025)


# --- LibriMix's clipping rules, on closed-form inputs --------------------------------------


def _fake(audio: np.ndarray, loudness: float, speaker: str) -> SourceUtterance:
    return SourceUtterance(speaker + "-0001", speaker, "F", "train", 1, "x.flac", audio, loudness)


def test_gains_without_clipping_hit_the_target_range():
    rng = np.random.default_rng(0)
    quiet = [_fake(np.full(1600, 0.01), -40.0, "a"), _fake(np.full(800, -0.01), -40.0, "b")]
    for _ in range(50):
        gains, renormalized = librimix_gains(quiet, rng)
        assert not renormalized
        for g in gains:
            assert -33 <= -40 + 20 * math.log10(g) <= -25


def test_gains_clipping_rules():
    rng = np.random.default_rng(0)
    # Measured at -40 LUFS, any target needs >= 7 dB: a 0.5 peak would reach >= 1.12, so each
    # source is set to a 0.9 peak; their in-phase sum (1.8) is then scaled to 0.9 as a whole.
    loud = [_fake(np.full(1600, 0.5), -40.0, "a"), _fake(np.full(800, 0.5), -40.0, "b")]
    gains, renormalized = librimix_gains(loud, rng)
    assert renormalized
    np.testing.assert_allclose(gains, [0.9, 0.9])


class FixedDraw:
    """Stands in for the random generator: every loudness draw is `lufs` (inside LibriMix's
    range), so a source measured at `lufs` gets a gain of exactly 1 before the clipping rules."""

    def __init__(self, lufs: float = -29.0):
        self.lufs = lufs

    def uniform(self, low: float, high: float) -> float:
        assert (low, high) == (-33, -25)
        return self.lufs


def _spikes(length: int, **peaks: float) -> np.ndarray:
    """Silence with the given values at the given samples (``s<index>=value``)."""
    audio = np.zeros(length)
    for key, value in peaks.items():
        audio[int(key[1:])] = value
    return audio


@pytest.mark.parametrize(
    "peak, expected_gains, why",
    [
        (0.95, [0.9 / 0.95, 0.9 / 0.95], "below 1: the source keeps its gain, the mixture rule"),
        (0.999, [0.9 / 0.999, 0.9 / 0.999], "below 1: ... scales both sources"),
        (1.0, [0.9, 1.0], "at 1 (>= 1): this source alone goes to a 0.9 peak"),
        (1.2, [0.75, 1.0], "above 1: this source alone goes to a 0.9 peak"),
    ],
)
def test_source_clipping_rule_at_a_peak_of_one(peak, expected_gains, why):
    # LibriMix's set_loudness: a source whose normalised peak is >= 1 is rescaled to a peak of
    # MAX_AMP = 0.9; the mixture check (> 0.9) then finds nothing more to do. A source below 1
    # is left alone, and the mixture check scales everything instead. Non-overlapping spikes:
    # the mixture's peak is the loud source's.
    sources = [
        _fake(_spikes(1600, s100=peak), -29.0, "a"),
        _fake(_spikes(1600, s900=-0.1), -29.0, "b"),
    ]
    gains, renormalized = librimix_gains(sources, FixedDraw())
    np.testing.assert_allclose(gains, expected_gains, rtol=1e-12, err_msg=why)
    assert renormalized


@pytest.mark.parametrize(
    "a, b, scaled",
    [
        (0.45, 0.45, False),  # sum exactly 0.9: not above MAX_AMP, kept
        (0.4, 0.45, False),
        (0.455, 0.455, True),  # 0.91 > 0.9
        (0.475, 0.475, True),  # 0.95: above 0.9 though below 1
        (-0.48, -0.48, True),  # a negative peak counts by its magnitude
        (0.6, -0.6, False),  # cancelling peaks: the sum never exceeds 0.9
    ],
)
def test_mixture_clipping_rule_at_0_9(a, b, scaled):
    # LibriMix's check_for_cliping: if the sum of the normalised sources peaks above 0.9,
    # every source is scaled by 0.9 / peak. Both spikes on the same sample.
    sources = [_fake(_spikes(800, s400=a), -29.0, "a"), _fake(_spikes(800, s400=b), -29.0, "b")]
    gains, renormalized = librimix_gains(sources, FixedDraw())
    factor = 0.9 / abs(a + b) if scaled else 1.0
    np.testing.assert_allclose(gains, [factor, factor], rtol=1e-12)
    assert renormalized == scaled


def test_mixture_clipping_is_checked_at_full_length():
    # LibriMix pads the sources to the longest ("max" mode) before the check, so a peak after
    # the end of the shorter source counts even though "min" mode files will not hold it.
    sources = [_fake(_spikes(1600, s1200=0.95), -29.0, "a"), _fake(_spikes(800), -29.0, "b")]
    sources[1].audio[10] = 0.01
    gains, renormalized = librimix_gains(sources, FixedDraw())
    np.testing.assert_allclose(gains, [0.9 / 0.95] * 2, rtol=1e-12)
    assert renormalized


def test_built_mixtures_obey_both_clipping_rules(built):
    # On the real build, from the gains it wrote: at 16 kHz, before resampling, no scaled source
    # reaches 1 and the max-mode sum of the scaled sources never exceeds 0.9.
    for subset in ("train-clean-100", "dev-clean", "test-clean"):
        for row in _read_csv(built / "Libri2Mix" / "metadata" / f"libri2mix_{subset}.csv"):
            scaled = [
                float(row[f"source_{k}_gain"]) * sf.read(SOURCES / row[f"source_{k}_path"])[0]
                for k in (1, 2)
            ]
            mixture = np.zeros(max(len(s) for s in scaled))
            for source in scaled:
                mixture[: len(source)] += source
            assert max(np.max(np.abs(s)) for s in scaled) < 1.0, row["mixture_ID"]
            assert np.max(np.abs(mixture)) <= 0.9 + 1e-12, row["mixture_ID"]


# --- command lines -------------------------------------------------------------------------


def test_cli_module(tmp_path, capsys):
    main(
        ["--out", str(tmp_path), "--n-train", "3", "--n-dev", "2", "--n-test", "2", "--no-progress"]
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "Libri2Mix" / "wav8k" / "min")
    assert len(_mixtures(tmp_path, "train")) == 3
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--sources", str(tmp_path / "missing")])


def test_stage0_script(tmp_path):
    script = REPO / "local" / "download_mini2mix.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    help_ = subprocess.run([script, "--help"], capture_output=True, text=True, env=env)
    assert help_.returncode == 0 and "--root" in help_.stdout
    missing = subprocess.run([script], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "--root is required" in missing.stderr
    args = ["--root", str(tmp_path), "--n-train", "2", "--n-dev", "2", "--n-test", "2"]
    done = subprocess.run([script, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert len(_mixtures(tmp_path, "test")) == 2


# --- regeneration of the committed sources (only where the TTS tools are installed) -----------


def _load_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_mini2mix_sources", REPO / "local" / "make_mini2mix_sources.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sources_regenerate_bit_identically(tmp_path):
    gen = _load_generator()
    if any(shutil.which(tool) is None for tool in ("flite", "espeak-ng", "sox")):
        pytest.skip("flite, espeak-ng and sox are not installed (generation-time tools)")
    if gen.tool_versions() != (SOURCES / "tools.txt").read_text(encoding="utf-8"):
        pytest.skip("installed TTS tool versions differ from sources/tools.txt")
    # The first speaker of each split gets the first sentences of its split's pool, whatever
    # follows in the roster: a roster of those three rows reproduces their files exactly.
    lines = (SOURCES / "speakers.tsv").read_text(encoding="utf-8").splitlines()
    firsts = {}
    for line in lines[1:]:
        firsts.setdefault(line.split("\t")[2], line)
    roster = tmp_path / "speakers.tsv"
    roster.write_text("\n".join([lines[0], *firsts.values()]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    gen.generate(roster, SOURCES / "sentences.txt", out)
    made = sorted(out.rglob("*.flac"))
    assert len(made) == sum(int(line.split("\t")[7]) for line in firsts.values())
    for path in made:
        rel = path.relative_to(out)
        assert path.read_bytes() == (SOURCES / rel).read_bytes(), rel
