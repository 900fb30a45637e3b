"""asteroid_tdanet.data.prepare on fake trees in the real layouts, good and bad."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree

from asteroid_tdanet.data import DataPreparationError, prepare

BUILDERS = {"librimix": make_librimix_tree, "wham": make_wham_tree, "lrs2_2mix": make_lrs2_tree}
# Where each builder puts the first file of its "test" split, per folder.
TEST_SPLIT = {"librimix": "test", "wham": "tt", "lrs2_2mix": "tt"}


def _json(path: Path) -> list:
    return json.loads(path.read_text())


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_prepares_every_split(tmp_path, fmt):
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=3)
    meta = prepare(fmt, root, tmp_path / "data", progress=False)
    assert meta["counts"] == {"train": 3, "valid": 3, "test": 3}
    assert meta["format"] == fmt and meta["task"] == "sep_clean"
    assert meta["sample_rate"] == (16000 if fmt == "lrs2_2mix" else 8000)
    assert json.loads((tmp_path / "data" / "dataset.json").read_text()) == meta
    for split in ("train", "valid", "test"):
        files = sorted(p.name for p in (tmp_path / "data" / split).iterdir())
        if fmt == "librimix":
            assert len(files) == 1 and files[0].endswith("_mix_clean.csv")
        else:  # LRS2-2Mix: mix.json, the authors' name (their mixtures sit in mix/)
            mix = "mix.json" if fmt == "lrs2_2mix" else "mix_clean.json"
            assert files == sorted([mix, "s1.json", "s2.json"])


def test_wham_json_is_asteroid_format(tmp_path):
    root = make_wham_tree(tmp_path / "root", n_per_split=2, seconds=1.0)
    prepare("wham", root, tmp_path / "data", progress=False)
    mix = _json(tmp_path / "data" / "train" / "mix_clean.json")
    s2 = _json(tmp_path / "data" / "train" / "s2.json")
    split_dir = root / "wav8k" / "min" / "tr"
    names = sorted(p.name for p in (split_dir / "mix_clean").glob("*.wav"))
    assert mix == [[str(split_dir / "mix_clean" / n), 8000 + 800 * i] for i, n in enumerate(names)]
    assert [Path(p).parent.name for p, _ in s2] == ["s2", "s2"]


def test_librimix_metadata_paths_are_rebased_under_root(tmp_path):
    # Real LibriMix metadata holds absolute paths of the machine that generated it.
    root = make_librimix_tree(tmp_path / "root", n_per_split=2, foreign_paths=True)
    prepare("librimix", root, tmp_path / "data", progress=False)
    with open(tmp_path / "data" / "valid" / "mixture_dev_mix_clean.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["length"] for r in rows] == ["8000", "8800"]
    base = root / "Libri2Mix" / "wav8k" / "min" / "dev"
    for row in rows:
        assert row["mixture_path"] == str(base / "mix_clean" / f"{row['mixture_ID']}.wav")
        assert row["source_2_path"] == str(base / "s2" / f"{row['mixture_ID']}.wav")


def test_librimix_without_metadata_lists_folders(tmp_path):
    # The demo set and hand-made trees may have only mix_clean/s1/s2.
    root = make_librimix_tree(tmp_path / "root", n_per_split=2, metadata=False)
    meta = prepare("librimix", root, tmp_path / "data", progress=False)
    assert meta["counts"] == {"train": 2, "valid": 2, "test": 2}


def test_root_may_be_the_dataset_folder(tmp_path):
    root = make_lrs2_tree(tmp_path / "root", n_per_split=1)
    meta = prepare("lrs2_2mix", root / "lrs2_rebuild", tmp_path / "data", progress=False)
    assert meta["counts"]["train"] == 1


@pytest.mark.parametrize("fmt", ["librimix", "wham"])
def test_noisy_task_indexes_mix_both_and_noise(tmp_path, fmt):
    kwargs = {"noisy": True} if fmt == "librimix" else {}
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=2, **kwargs)
    prepare(fmt, root, tmp_path / "data", task="sep_noisy", progress=False)
    test_dir = tmp_path / "data" / "test"
    if fmt == "librimix":
        with open(test_dir / "mixture_test_mix_both.csv") as f:
            row = next(csv.DictReader(f))
        assert "/mix_both/" in row["mixture_path"] and "/noise/" in row["noise_path"]
    else:
        assert sorted(p.name for p in test_dir.iterdir()) == [
            "mix_both.json",
            "noise.json",
            "s1.json",
            "s2.json",
        ]


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_missing_file_is_named(tmp_path, fmt):
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=3, bad="missing_file")
    with pytest.raises(DataPreparationError) as err:
        prepare(fmt, root, tmp_path / "data", progress=False)
    message = str(err.value)
    assert "1 bad file(s) in split 'test'" in message and "missing" in message
    assert f"/{TEST_SPLIT[fmt]}/s2/" in message
    assert not (tmp_path / "data").exists()  # nothing written for a bad tree


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_wrong_sample_rate_is_named(tmp_path, fmt):
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=2, bad="wrong_sample_rate")
    rate = 16000 if fmt == "lrs2_2mix" else 8000
    with pytest.raises(DataPreparationError) as err:
        prepare(fmt, root, tmp_path / "data", progress=False)
    assert f"/{TEST_SPLIT[fmt]}/s1/" in str(err.value)
    assert f"sample rate {2 * rate} Hz, expected {rate} Hz" in str(err.value)


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_empty_split_names_split_and_folder(tmp_path, fmt):
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=2, bad="empty_split")
    with pytest.raises(DataPreparationError) as err:
        prepare(fmt, root, tmp_path / "data", progress=False)
    assert "split 'test'" in str(err.value) and "is empty" in str(err.value)
    assert TEST_SPLIT[fmt] in str(err.value)


def test_wrong_rate_asked_reports_every_file(tmp_path):
    root = make_wham_tree(tmp_path / "root", n_per_split=2, sample_rate=16000)
    # The tree has wav16k only: asking for 8 kHz finds no tree at all...
    with pytest.raises(DataPreparationError, match="expected the folder .*wav8k"):
        prepare("wham", root, tmp_path / "data", progress=False)
    # ...and a 16 kHz tree filed under wav8k is caught file by file (mix_clean, s1, s2 x 2).
    (root / "wav16k").rename(root / "wav8k")
    with pytest.raises(DataPreparationError, match=r"6 bad file\(s\) in split 'train'"):
        prepare("wham", root, tmp_path / "data", progress=False)


def test_mismatched_lengths_are_bad(tmp_path):
    root = make_librimix_tree(tmp_path / "root", n_per_split=2, metadata=False)
    s1 = sorted((root / "Libri2Mix/wav8k/min/dev/s1").glob("*.wav"))[0]
    other = sorted((root / "Libri2Mix/wav8k/min/dev/s1").glob("*.wav"))[1]
    s1.write_bytes(other.read_bytes())  # 0.1 s longer than its mixture
    with pytest.raises(DataPreparationError, match="8800 samples but its mixture"):
        prepare("librimix", root, tmp_path / "data", progress=False)


def test_missing_tree_and_bad_arguments(tmp_path):
    with pytest.raises(DataPreparationError, match="Libri2Mix not found under .*download_librimix"):
        prepare("librimix", tmp_path, tmp_path / "data")
    root = make_lrs2_tree(tmp_path / "root", n_per_split=1)
    with pytest.raises(ValueError, match="task 'sep_noisy' is not available for LRS2-2Mix"):
        prepare("lrs2_2mix", root, tmp_path / "data", task="sep_noisy")
    with pytest.raises(ValueError, match="LRS2-2Mix exists at \\[16000\\] Hz"):
        prepare("lrs2_2mix", root, tmp_path / "data", sample_rate=8000)
    with pytest.raises(ValueError, match="unknown data set 'timit'"):
        prepare("timit", root, tmp_path / "data")
