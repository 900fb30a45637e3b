"""Dynamic mixing: valid mixtures, level rules, reproducibility, resume, workers and DDP ranks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from dist_helpers import dynamic_mixing_rank_indices
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree
from scipy.signal import resample_poly
from torch.utils.data import DataLoader

from asteroid_tdanet.data import (
    DynamicMixingDataset,
    DynamicMixingSampler,
    make_dynamic_mixing_dataset,
    prepare,
    speed,
)
from asteroid_tdanet.data import source_pool as source_pool_module
from asteroid_tdanet.data.levels import MAX_AMP, LibriMixLevels
from asteroid_tdanet.data.mini2mix import build_mini2mix, default_sources_dir
from asteroid_tdanet.data.source_pool import PoolUtterance, SourcePool

SEGMENT = 0.5


def prepared(root: Path, name: str, *, noisy: bool = False, n: int = 6) -> Path:
    builders = {"librimix": make_librimix_tree, "wham": make_wham_tree, "lrs2_2mix": make_lrs2_tree}
    kwargs = {"noisy": True} if noisy and name == "librimix" else {}
    tree = builders[name](root / "raw", n_per_split=n, seconds=1.0, **kwargs)
    task = "sep_noisy" if noisy else "sep_clean"
    prepare(name, tree, root / "data", task=task, progress=False)
    return root / "data"


@pytest.fixture(scope="module")
def wham_noisy(tmp_path_factory) -> Path:
    return prepared(tmp_path_factory.mktemp("wham"), "wham", noisy=True)


@pytest.fixture(scope="module")
def librimix_clean(tmp_path_factory) -> Path:
    return prepared(tmp_path_factory.mktemp("librimix"), "librimix")


def dm(data: Path, name: str, **kwargs):
    rate = 16000 if name == "lrs2_2mix" else 8000
    options = {"segment": SEGMENT, "seed": 0, "progress": False, "return_id": True, **kwargs}
    return make_dynamic_mixing_dataset(name, data, sample_rate=rate, **options)


def crop_gain(scaled: np.ndarray, raw: np.ndarray) -> float:
    """The gain g with scaled == g * raw, asserting that it is one gain for the whole crop."""
    gain = float(np.dot(scaled, raw) / np.dot(raw, raw))
    np.testing.assert_allclose(scaled, gain * raw, rtol=0, atol=1e-6 * np.abs(raw).max())
    return gain


def test_wham_mixtures_are_crops_of_the_files_at_the_wham_levels(wham_noisy: Path):
    train = dm(wham_noisy, "wham", task="sep_noisy")
    assert len(train) == 6  # as many as the fixed training set
    speakers = set()
    for index in range(20):
        draw = train.draw(index)
        mixture, sources, noise = train.render(draw)
        assert mixture.shape == (4000,) and sources.shape == (2, 4000)
        np.testing.assert_allclose(mixture, sources.sum(0) + noise, atol=1e-12)
        utts = [train.pool.speech[u] for u in draw.utterances]
        assert utts[0].speaker != utts[1].speaker  # two different speakers
        speakers.update(u.speaker for u in utts)
        # Each source is one gain times its file's crop at the drawn offset (read here).
        for k, (u, offset) in enumerate(zip(utts, draw.offsets, strict=True)):
            raw, _ = sf.read(u.path, start=offset, stop=offset + 4000, dtype="float64")
            crop_gain(sources[k], raw)
        raw_noise, _ = sf.read(
            train.pool.noise[draw.noise].path,
            start=draw.noise_offset,
            stop=draw.noise_offset + 4000,
            dtype="float64",
        )
        crop_gain(noise, raw_noise)
        # wsj0-2mix: speaker 1 over speaker 2 by U(0, 5) dB; WHAM!: louder over noise U(-6, 3).
        power = np.mean(sources**2, axis=1)
        snr = 10 * np.log10(power[0] / power[1])
        assert 0 <= snr <= 5 and snr == pytest.approx(draw.levels["speaker_snr"][0], abs=1e-9)
        noise_snr = 10 * np.log10(power.max() / np.mean(noise**2))
        assert -6 <= noise_snr <= 3
        assert max(np.abs(mixture).max(), np.abs(sources).max()) <= MAX_AMP + 1e-12
    assert len(speakers) > 1


def test_librimix_sources_get_librimix_loudness(librimix_clean: Path):
    train = dm(librimix_clean, "librimix")
    meter = pyloudnorm.Meter(8000)
    for index in range(8):
        draw = train.draw(index)
        _, sources, noise = train.render(draw)
        assert noise is None
        for k, u in enumerate(draw.utterances):
            item = train.pool.speech[u]
            whole, _ = sf.read(item.path, dtype="float64")
            raw = whole[draw.offsets[k] : draw.offsets[k] + 4000]
            gain = crop_gain(sources[k], raw)
            # The whole utterance at that gain measures the drawn LUFS (no clipping here).
            loudness = meter.integrated_loudness(gain * whole)
            assert loudness == pytest.approx(draw.levels["loudness"][k], abs=1e-6)
            assert -33 <= loudness <= -25


def test_speed_perturbed_sources_are_resampled_crops(librimix_clean: Path):
    factors = [0.9, 1.1]
    train = dm(librimix_clean, "librimix", speed_perturb=factors)
    seen = set()
    for index in range(16):
        draw = train.draw(index)
        _, sources, _ = train.render(draw)
        assert sources.shape == (2, 4000)
        for k, (u, offset, f) in enumerate(
            zip(draw.utterances, draw.offsets, draw.speeds, strict=True)
        ):
            seen.add(f)
            # Independently: resample the input window to rate / f, drop the filter margin.
            need = int(np.ceil(4000 * f)) + 64
            raw, _ = sf.read(train.pool.speech[u].path, start=offset, stop=offset + need)
            up, down = (10, 9) if f == 0.9 else (10, 11)
            expected = resample_poly(raw, up, down)[round(32 / f) :][:4000]
            crop_gain(sources[k], expected)
    assert seen == set(factors)


def test_same_seed_same_mixtures_other_seed_others(librimix_clean: Path):
    a, b = dm(librimix_clean, "librimix"), dm(librimix_clean, "librimix")
    other = dm(librimix_clean, "librimix", seed=1)
    for index in range(6):
        mix_a, src_a, id_a = a[index]
        mix_b, src_b, id_b = b[index]
        assert id_a == id_b and torch.equal(mix_a, mix_b) and torch.equal(src_a, src_b)
    assert [a.draw(i) for i in range(6)] != [other.draw(i) for i in range(6)]


def ids_of(loader) -> list[str]:
    return [i for batch in loader for i in batch[2]]


def test_epochs_differ_and_a_resumed_run_draws_the_same_sequence(librimix_clean: Path):
    train = dm(librimix_clean, "librimix", mixtures_per_epoch=8)
    sampler = DynamicMixingSampler(len(train))
    loader = DataLoader(train, batch_size=2, sampler=sampler, drop_last=True)
    run = []
    for epoch in range(3):
        sampler.set_epoch(epoch)  # what Lightning does at every epoch
        run.append(ids_of(loader))
    # No epoch repeats another's mixtures (the ids also hold the epoch: compare the draws).
    draws = [train.draw(i) for i in range(24)]
    recipes = {(d.utterances, d.offsets) for d in draws}
    assert len(recipes) == 24
    # A run killed after epoch 0 and resumed: new objects, Lightning restores epoch 1.
    resumed = dm(librimix_clean, "librimix", mixtures_per_epoch=8)
    sampler = DynamicMixingSampler(len(resumed))
    loader = DataLoader(resumed, batch_size=2, sampler=sampler, drop_last=True)
    sampler.set_epoch(1)
    assert ids_of(loader) == run[1]
    sampler.set_epoch(2)
    assert ids_of(loader) == run[2]


def test_workers_draw_different_mixtures_and_the_same_as_one_process(librimix_clean: Path):
    train = dm(librimix_clean, "librimix", mixtures_per_epoch=12)
    sampler = DynamicMixingSampler(len(train))
    sampler.set_epoch(3)
    alone = ids_of(DataLoader(train, batch_size=2, sampler=sampler))
    workers = ids_of(DataLoader(train, batch_size=2, sampler=sampler, num_workers=2))
    assert workers == alone and len(set(alone)) == 12


def test_ranks_draw_disjoint_mixtures(librimix_clean: Path):
    train = dm(librimix_clean, "librimix", mixtures_per_epoch=10)
    per_rank = []
    for rank in range(2):
        sampler = DynamicMixingSampler(len(train), num_replicas=2, rank=rank)
        sampler.set_epoch(1)
        assert len(sampler) == 5
        per_rank.append([train.item_id(train.draw(i)) for i in sampler])
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == sorted(
        train.item_id(train.draw(10 + k)) for k in range(10)
    )


def test_ranks_of_a_real_process_group_split_the_indices(tmp_path: Path):
    torch.multiprocessing.spawn(
        dynamic_mixing_rank_indices,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert got[0] == [3, [14, 16, 18]] and got[1] == [3, [15, 17, 19]]


def test_lightning_keeps_the_sampler_under_ddp(librimix_clean: Path):
    import pytorch_lightning as pl

    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    connector = trainer._data_connector
    train = dm(librimix_clean, "librimix")
    ours = DataLoader(train, batch_size=2, sampler=DynamicMixingSampler(len(train)))
    plain = DataLoader(train, batch_size=2, shuffle=True)
    assert not connector._requires_distributed_sampler(ours)  # left as it is
    assert connector._requires_distributed_sampler(plain)  # would be replaced


def test_lrs2_2mix_uses_videos_as_speakers_and_the_authors_snr_range(tmp_path: Path):
    data = prepared(tmp_path, "lrs2_2mix")
    train = dm(data, "lrs2_2mix")
    assert len(train.pool.speakers) == 12  # 6 mixtures of 2 videos each
    snrs = []
    for index in range(30):
        draw = train.draw(index)
        _, sources, noise = train.render(draw)
        assert noise is None and sources.shape == (2, 8000)
        power = np.mean(sources**2, axis=1)
        snrs.append(10 * np.log10(power[0] / power[1]))
    assert -5 <= min(snrs) < 0 < max(snrs) <= 5


def test_mini2mix_pool_is_the_committed_sources_resampled_once(tmp_path: Path):
    root = tmp_path / "raw"
    build_mini2mix(default_sources_dir(), root, n_train=4, n_dev=2, n_test=2, progress=False)
    prepare("mini2mix", root, tmp_path / "data", progress=False)
    train = dm(tmp_path / "data", "mini2mix", segment=1.0)
    assert len(train.pool.speakers) == 18 and len(train.pool.speech) == 144
    item = train.pool.speech[0]
    assert Path(item.path).parent == tmp_path / "data" / "dm_cache" / "wav8k"
    original, rate = sf.read(default_sources_dir() / item.speaker / f"{item.id}.flac")
    assert rate == 16000
    cached, rate = sf.read(item.path, dtype="float64")
    assert rate == 8000
    np.testing.assert_allclose(cached, resample_poly(original, 1, 2), atol=1e-6)
    # The second time, nothing is measured again: the cache is read.
    calls = []
    original_measure = source_pool_module._measure

    def counting(*args, **kwargs):
        calls.append(args[0].id)
        return original_measure(*args, **kwargs)

    source_pool_module._measure = counting
    try:
        again = dm(tmp_path / "data", "mini2mix", segment=1.0)
    finally:
        source_pool_module._measure = original_measure
    assert calls == [] and again.draw(5) == train.draw(5)


def test_pool_cache_is_found_from_any_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "raw"
    build_mini2mix(default_sources_dir(), root, n_train=4, n_dev=2, n_test=2, progress=False)
    prepare("mini2mix", root, tmp_path / "recipe" / "data", progress=False)
    monkeypatch.chdir(tmp_path)
    first = dm(Path("recipe/data"), "mini2mix", segment=1.0)  # built from a relative data dir
    monkeypatch.chdir(tmp_path / "recipe")
    again = dm(Path("data"), "mini2mix", segment=1.0)  # read back from elsewhere
    assert Path(again.pool.speech[0].path).is_file()
    np.testing.assert_array_equal(again.render(again.draw(3))[1], first.render(first.draw(3))[1])
    (tmp_path / "recipe").rename(tmp_path / "moved")  # the whole recipe folder moved
    moved = dm(tmp_path / "moved" / "data", "mini2mix", segment=1.0)
    assert Path(moved.pool.speech[0].path).is_file()


def test_pool_cache_follows_the_training_split(librimix_clean: Path, tmp_path: Path):
    data = tmp_path / "copy"
    os.system(f"cp -r {librimix_clean} {data}")
    before = dm(data, "librimix")
    csv_path = next((data / "train").glob("*.csv"))
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-2]) + "\n")  # two mixtures fewer: 4 utterances
    after = dm(data, "librimix")
    assert len(after.pool.speech) == len(before.pool.speech) - 4


def test_errors_are_named(librimix_clean: Path, wham_noisy: Path):
    with pytest.raises(ValueError, match="only 0 have any.*use a shorter data.segment"):
        dm(librimix_clean, "librimix", segment=5.0)
    with pytest.raises(ValueError, match="task 'sep_noisy' is not available for LRS2-2Mix"):
        dm(librimix_clean, "lrs2_2mix", task="sep_noisy")
    with pytest.raises(ValueError, match="prepared at 8000 Hz but sample_rate=16000"):
        make_dynamic_mixing_dataset("wham", wham_noisy, sample_rate=16000, segment=0.5, seed=0)
    one_speaker = SourcePool(
        [PoolUtterance(f"u{i}", "spk", f"u{i}.wav", 8000, 0.5, -30.0) for i in range(3)], [], 8000
    )
    with pytest.raises(ValueError, match="needs 2 speakers with utterances of at least 0.50 s"):
        DynamicMixingDataset(
            one_speaker, LibriMixLevels(), n_src=2, segment=0.5, mixtures_per_epoch=4, seed=0
        )


def test_only_utterances_long_enough_for_the_fastest_factor_are_drawn(tmp_path: Path):
    # Speed f plays n input samples as n / f: a full crop of L samples at the fastest factor
    # reads f_max * L input samples (plus the filter margin each side, `speed.MARGIN`); the
    # slowest factor needs fewer. The factor is drawn after the utterance, so an utterance is
    # kept only if every factor can cut a full crop from it.
    crop, factors = 4000, (0.9, 1.0, 1.1)
    need = int(np.ceil(crop * max(factors))) + 2 * speed.MARGIN
    rng = np.random.default_rng(0)
    lengths = {"a": [need, need + 40], "b": [need, need], "c": [need - 1, crop], "d": [crop]}
    utterances = []
    for spk, spk_lengths in lengths.items():
        for i, n in enumerate(spk_lengths):
            path = tmp_path / f"{spk}{i}.wav"
            sf.write(path, 0.1 * rng.standard_normal(n), 8000, subtype="FLOAT")
            utterances.append(PoolUtterance(f"{spk}{i}", spk, str(path), n, 0.5, -30.0))
    train = DynamicMixingDataset(
        SourcePool(utterances, [], 8000),
        LibriMixLevels(),
        n_src=2,
        segment=crop / 8000,
        mixtures_per_epoch=300,
        seed=0,
        speed_perturb=factors,
    )
    kept = {train.pool.speech[i].id for i in train.usable}
    assert kept == {"a0", "a1", "b0", "b1"}
    at_the_limit = 0
    for index in range(300):
        draw = train.draw(index)
        _, sources, _ = train.render(draw)
        assert sources.shape == (2, crop)
        for k, (u, offset, f) in enumerate(
            zip(draw.utterances, draw.offsets, draw.speeds, strict=True)
        ):
            item = train.pool.speech[u]
            assert item.length >= need
            window = int(np.ceil(crop * f)) + (2 * speed.MARGIN if f != 1.0 else 0)
            assert 0 <= offset <= item.length - window
            if f == max(factors) and item.length == need:
                at_the_limit += 1  # the whole utterance is the window: the crop still full
                raw, _ = sf.read(item.path, dtype="float64")
                up, down = 10, 11
                expected = resample_poly(raw, up, down)[round(speed.MARGIN / f) :][:crop]
                assert len(expected) == crop
                crop_gain(sources[k], expected)
    assert at_the_limit > 0
