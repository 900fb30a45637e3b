"""make_dataset / SeparationDataset on prepared fake trees."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree
from scipy.signal import resample_poly
from torch.utils.data import DataLoader

from asteroid_tdanet.data import NAMES, PreparedIndexError, make_dataset, prepare

BUILDERS = {"librimix": make_librimix_tree, "wham": make_wham_tree, "lrs2_2mix": make_lrs2_tree}
FORMATS = tuple(BUILDERS)
RATES = {"librimix": 8000, "wham": 8000, "lrs2_2mix": 16000}
Q = 1.5 / 2**15  # 16-bit quantisation of the fake wavs


def _prepared(tmp_path: Path, fmt: str, **tree_kwargs) -> Path:
    root = BUILDERS[fmt](tmp_path / "root", n_per_split=3, seconds=1.0, **tree_kwargs)
    task = "sep_noisy" if tree_kwargs.get("noisy") else "sep_clean"
    prepare(fmt, root, tmp_path / "data", task=task, progress=False)
    return tmp_path / "data"


def test_every_benchmark_has_a_fake_tree():
    # mini2mix is built from committed sources (tests/data/test_mini2mix.py).
    assert set(NAMES) == {*FORMATS, "mini2mix"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_utterances(tmp_path, fmt):
    data = _prepared(tmp_path, fmt)
    rate = RATES[fmt]
    test = make_dataset(fmt, data, "test", sample_rate=rate, return_id=True)
    assert len(test) == 3
    for i in range(3):
        mixture, sources, utt_id = test[i]
        # Item i of the fake tree lasts 1.0 + 0.1 i seconds; the mixture is s1 + s2.
        assert mixture.shape == (int((1.0 + 0.1 * i) * rate),)
        assert sources.shape == (2, mixture.shape[0])
        assert mixture.dtype == sources.dtype == torch.float32
        torch.testing.assert_close(mixture, sources.sum(0), atol=2 * Q, rtol=0)
        assert isinstance(utt_id, str) and Path(test.utterances[i].mixture).stem == utt_id


def test_noisy_mixture_holds_the_noise(tmp_path):
    data = _prepared(tmp_path, "librimix", noisy=True)
    test = make_dataset("librimix", data, "test", sample_rate=8000, task="sep_noisy")
    mixture, sources = test[0]
    noise, _ = sf.read(test.utterances[0].noise, dtype="float32")
    torch.testing.assert_close(
        mixture, sources.sum(0) + torch.from_numpy(noise), atol=3 * Q, rtol=0
    )
    assert len(test.get_infos()["licenses"]) == 2  # LibriSpeech + WHAM! noise


def test_train_segments_are_random_crops_of_the_files(tmp_path):
    data = _prepared(tmp_path, "wham")
    train = make_dataset("wham", data, "train", sample_rate=8000, segment=1.05)
    # 1.0 s is shorter than the segment: dropped, not padded.
    assert len(train) == 2 and train.n_dropped == 1
    full, _ = sf.read(train.utterances[1].mixture, dtype="float32")  # 1.2 s
    span = len(full) - 8400 + 1
    starts = set()
    for _ in range(20):
        mixture, sources = train[1]
        assert mixture.shape == (8400,) and sources.shape == (2, 8400)
        errors = [np.abs(full[s : s + 8400] - mixture.numpy()).max() for s in range(span)]
        start = int(np.argmin(errors))
        np.testing.assert_array_equal(full[start : start + 8400], mixture.numpy())
        torch.testing.assert_close(mixture, sources.sum(0), atol=1e-6, rtol=0)  # same window
        starts.add(start)
    assert len(starts) > 1


def test_valid_segments_are_fixed(tmp_path):
    data = _prepared(tmp_path, "lrs2_2mix")
    valid = make_dataset("lrs2_2mix", data, "valid", sample_rate=16000, segment=1.0)
    assert len(valid) == 3  # a 1.0 s item fits a 1.0 s segment exactly
    first = [valid[i][0] for i in range(3)]
    again = [valid[i][0] for i in range(3)]
    for a, b in zip(first, again, strict=True):
        assert a.shape == (16000,) and torch.equal(a, b)


def test_batches(tmp_path):
    data = _prepared(tmp_path, "librimix")
    train = make_dataset("librimix", data, "train", sample_rate=8000, segment=0.5)
    mixture, sources = next(iter(DataLoader(train, batch_size=3, shuffle=True)))
    assert mixture.shape == (3, 4000) and sources.shape == (3, 2, 4000)


def test_too_long_segment_is_an_error(tmp_path):
    data = _prepared(tmp_path, "wham")
    with pytest.raises(ValueError, match="all 3 mixtures are shorter than segment=2.0 s"):
        make_dataset("wham", data, "train", sample_rate=8000, segment=2.0)


def test_sample_rate_is_checked(tmp_path):
    data = _prepared(tmp_path, "librimix")
    with pytest.raises(ValueError, match="prepared at 8000 Hz but sample_rate=16000"):
        make_dataset("librimix", data, "test", sample_rate=16000)
    # Without dataset.json the files themselves are checked when read.
    (data / "dataset.json").unlink()
    test = make_dataset("librimix", data, "test", sample_rate=16000)
    with pytest.raises(ValueError, match=r"mix_clean/.*\.wav has sample rate 8000 Hz, expected"):
        test[0]


def test_file_changed_after_prepare_is_named(tmp_path):
    data = _prepared(tmp_path, "wham")
    test = make_dataset("wham", data, "test", sample_rate=8000)
    path = test.utterances[2].sources[1]
    audio, _ = sf.read(path, dtype="float32")
    sf.write(path, audio, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=f"{path} has sample rate 16000 Hz"):
        test[2]
    sf.write(path, audio[:-10], 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match=f"{path} gives {len(audio) - 10} samples"):
        test[2]


def test_bad_arguments(tmp_path):
    data = _prepared(tmp_path, "lrs2_2mix")
    with pytest.raises(ValueError, match="unknown data set 'timit'"):
        make_dataset("timit", data, "train", sample_rate=16000)
    with pytest.raises(ValueError, match="unknown data set 'lrs2' \\(renamed 'lrs2_2mix'\\)"):
        make_dataset("lrs2", data, "train", sample_rate=16000)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make_dataset("lrs2_2mix", data, "dev", sample_rate=16000)
    with pytest.raises(ValueError, match="task 'sep_noisy' is not available for LRS2-2Mix"):
        make_dataset("lrs2_2mix", data, "train", sample_rate=16000, task="sep_noisy")
    with pytest.raises(ValueError, match="prepared for data set 'lrs2_2mix', not 'wham'"):
        make_dataset("wham", data, "train", sample_rate=16000)
    with pytest.raises(PreparedIndexError, match="s3.json is missing"):
        make_dataset("lrs2_2mix", data, "train", sample_rate=16000, n_src=3)
    with pytest.raises(PreparedIndexError, match="does not exist: run the prepare step"):
        make_dataset("lrs2_2mix", tmp_path / "nowhere", "train", sample_rate=16000)


def test_json_lists_out_of_order_are_caught(tmp_path):
    data = _prepared(tmp_path, "wham")
    s2 = data / "train" / "s2.json"
    s2.write_text(json.dumps(list(reversed(json.loads(s2.read_text())))))
    with pytest.raises(PreparedIndexError, match="out of order"):
        make_dataset("wham", data, "train", sample_rate=8000)


def test_infos_for_model_cards(tmp_path):
    data = _prepared(tmp_path, "wham")
    infos = make_dataset("wham", data, "test", sample_rate=8000).get_infos()
    assert infos["dataset"] == "WHAM!" and infos["task"] == "sep_clean"
    # Asteroid's publisher reads these keys of every licence.
    keys = {"title", "title_link", "author", "author_link", "license", "license_link"}
    assert keys <= set(infos["licenses"][0]) and infos["licenses"][0]["non_commercial"]


def test_asteroid_classes_read_the_prepared_files(tmp_path):
    # The index files are Asteroid's formats: its own classes load the same audio.
    from asteroid.data import LibriMix, WhamDataset

    for fmt in ("librimix", "wham"):
        data = _prepared(tmp_path / fmt, fmt)
        ours = make_dataset(fmt, data, "test", sample_rate=RATES[fmt])
        if fmt == "librimix":
            theirs = LibriMix(str(data / "test"), "sep_clean", sample_rate=8000, segment=None)
        else:
            theirs = WhamDataset(str(data / "test"), "sep_clean", RATES[fmt], segment=None)
        assert len(theirs) == len(ours) == 3
        for i in range(3):
            mix_a, src_a = ours[i]
            mix_b, src_b = theirs[i]
            torch.testing.assert_close(mix_a, mix_b.float())
            torch.testing.assert_close(src_a, src_b.float())


@pytest.mark.parametrize("split", ["train", "valid"])
def test_crops_of_mixture_and_sources_are_the_same_window(tmp_path, split):
    # Each returned signal is its file at one common start: located from the mixture, then
    # checked sample for sample in every source file (random crops for train, fixed for valid).
    data = _prepared(tmp_path, "wham")
    dataset = make_dataset("wham", data, split, sample_rate=8000, segment=0.5)
    for index, utt in enumerate(dataset.utterances):
        full_mix, _ = sf.read(utt.mixture, dtype="float32")
        full_srcs = [sf.read(path, dtype="float32")[0] for path in utt.sources]
        for _ in range(3):
            mixture, sources = dataset[index]
            n = len(mixture)
            starts = [s for s in range(len(full_mix) - n + 1) if full_mix[s] == mixture[0]]
            start = next(s for s in starts if np.array_equal(full_mix[s : s + n], mixture))
            for full, source in zip(full_srcs, sources, strict=True):
                np.testing.assert_array_equal(full[start : start + n], source.numpy())


def test_lrs2_2mix_index_is_what_the_authors_loader_reads(tmp_path):
    # The authors' LRS2Dataset (look2hear/datas/lrs2datamodule.py) reads <split>/mix.json,
    # s1.json and s2.json, lists of [path, samples] paired by position.
    data = _prepared(tmp_path, "lrs2_2mix")
    ours = make_dataset("lrs2_2mix", data, "test", sample_rate=16000)
    lists = [json.loads((data / "test" / f"{n}.json").read_text()) for n in ("mix", "s1", "s2")]
    assert len(lists[0]) == len(ours) == 3
    for i, ((mix, n), (_, n1), (s2, n2)) in enumerate(zip(*lists, strict=True)):
        assert n == n1 == n2 == sf.info(mix).frames
        mixture, sources = ours[i]
        np.testing.assert_array_equal(mixture.numpy(), sf.read(mix, dtype="float32")[0])
        np.testing.assert_array_equal(sources[1].numpy(), sf.read(s2, dtype="float32")[0])
    assert not (data / "test" / "mix_clean.json").exists()


def perturbed_crop(whole: np.ndarray, start: int, factor: float, length: int) -> np.ndarray:
    """`length` samples of `whole` from `start` on, `factor` times faster, written out
    independently: resample by 1 / factor and drop the 32-sample filter margin."""
    if factor == 1.0:
        return whole[start : start + length]
    frac = Fraction(factor).limit_denominator(100)
    need = int(np.ceil(length * factor)) + 64
    out = resample_poly(whole[start : start + need], frac.denominator, frac.numerator)
    return out[round(32 / factor) :][:length]


def test_speed_perturbed_noisy_mixtures_are_remade_from_one_window(tmp_path):
    # Fixed mixtures with speed perturbation: each source is its own file's window, sped up by
    # its own factor; the noise is the noise file's window from the same start, not sped up;
    # the mixture is their sum again.
    data = _prepared(tmp_path, "librimix", noisy=True)
    factors = [0.9, 1.1]
    train = make_dataset(
        "librimix",
        data,
        "train",
        sample_rate=8000,
        segment=0.5,
        task="sep_noisy",
        speed_perturb=factors,
    )
    seen, starts = set(), set()
    for draw in range(12):
        u = train.utterances[draw % 3]
        mixture, sources = (x.numpy().astype(np.float64) for x in train[draw % 3])
        assert mixture.shape == (4000,) and sources.shape == (2, 4000)
        noise_file, _ = sf.read(u.noise, dtype="float64")
        noise = mixture - sources.sum(0)
        errors = [np.abs(noise_file[s : s + 4000] - noise).max() for s in range(u.length - 3999)]
        start = int(np.argmin(errors))
        assert errors[start] < 1e-6  # an exact crop of the noise file, unperturbed
        starts.add(start)
        for path, source in zip(u.sources, sources, strict=True):
            whole, _ = sf.read(path, dtype="float64")
            matches = [
                f
                for f in factors
                if np.abs(perturbed_crop(whole, start, f, 4000) - source).max() < 1e-6
            ]
            assert len(matches) == 1, draw
            seen.add(matches[0])
    assert seen == set(factors) and len(starts) > 1


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbed_whole_noisy_utterances_keep_the_noise(tmp_path, factor):
    # Whole utterances: a slower source outlasts the (unperturbed) noise, a faster one is
    # shorter than it; everything is cut to the shortest.
    data = _prepared(tmp_path, "librimix", noisy=True)
    train = make_dataset(
        "librimix", data, "train", sample_rate=8000, task="sep_noisy", speed_perturb=[factor]
    )
    for index, u in enumerate(train.utterances):
        mixture, sources = (x.numpy().astype(np.float64) for x in train[index])
        length = min(u.length, int(np.floor(u.length / factor)))
        assert abs(len(mixture) - length) <= 1 and sources.shape == (2, len(mixture))
        noise_file, _ = sf.read(u.noise, dtype="float64")
        np.testing.assert_allclose(
            mixture - sources.sum(0), noise_file[: len(mixture)], rtol=0, atol=1e-6
        )
