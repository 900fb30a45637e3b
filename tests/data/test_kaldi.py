"""ESPnet's Kaldi-style folders written by the prepare step (``--espnet_dir``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf
from fake_trees import make_librimix_tree, make_wham_tree

from asteroid_tdanet.data import Utterance
from asteroid_tdanet.data.kaldi import ESPNET_NAMING, write_kaldi_split
from asteroid_tdanet.data.kaldi import main as kaldi_main
from asteroid_tdanet.data.prepare import main as prepare_main


def read_table(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ")) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("fmt", "builder", "task"),
    [
        ("librimix", make_librimix_tree, "sep_clean"),
        ("librimix", make_librimix_tree, "sep_noisy"),
        ("wham", make_wham_tree, "sep_clean"),
    ],
)
def test_prepare_writes_espnet_folders_that_match_the_index(tmp_path, fmt, builder, task):
    kwargs = {"noisy": True} if task == "sep_noisy" else {}
    root = builder(tmp_path / "raw", n_per_split=3, seconds=0.5, **kwargs)
    data, espnet = tmp_path / "data", tmp_path / "enh1" / "data"
    argv = ["--root", str(root), "--out", str(data), "--task", task, "--no_progress"]
    assert prepare_main([*argv, "--espnet_dir", str(espnet)], name=fmt) == 0
    # ESPnet's own recipes' names: egs2/librimix/enh1/run.sh, egs2/wham/enh1/run.sh.
    if fmt == "wham":
        mix = {"sep_clean": "clean", "sep_noisy": "both"}[task]
        folders = [f"{x}_mix_{mix}_min_8k" for x in ("tr", "cv", "tt")]
    else:
        folders = ["train", "dev", "test"]
    assert sorted(p.name for p in espnet.iterdir()) == sorted(folders)
    noise = ["noise1.scp"] if task == "sep_noisy" else []
    for split, folder in zip(("train", "valid", "test"), folders, strict=True):
        files = sorted(p.name for p in (espnet / folder).iterdir())
        assert files == sorted(["wav.scp", "spk1.scp", "spk2.scp", "utt2spk", "spk2utt", *noise])
        wav = read_table(espnet / folder / "wav.scp")
        ids = [uid for uid, _ in wav]
        assert len(ids) == 3 and ids == sorted(ids, key=str.encode)  # Kaldi's C-locale order
        if fmt == "wham":  # <3 chars of each WSJ0 utterance>_<file>, speaker = first 2 fields
            for uid, mixture in wav:
                utt1, _, utt2, _ = Path(mixture).stem.split("_")
                assert uid == f"{utt1[:3]}_{utt2[:3]}_{Path(mixture).stem}"
            speakers = ["_".join(i.split("_")[:2]) for i in ids]
        else:  # one speaker per mixture, as ESPnet's LibriMix data.sh
            speakers = ids
        assert read_table(espnet / folder / "utt2spk") == list(zip(ids, speakers, strict=True))
        spk2utt = {}
        for uid, spk in zip(ids, speakers, strict=True):
            spk2utt.setdefault(spk, []).append(uid)
        expected = [(spk, *spk2utt[spk]) for spk in sorted(spk2utt)]
        assert read_table(espnet / folder / "spk2utt") == expected
        # Each source file belongs to its mixture: same sample count, and the mixture is
        # (close to) the sum of the sources (plus noise) in the fake trees.
        sources = [dict(read_table(espnet / folder / f"spk{k}.scp")) for k in (1, 2)]
        noises = dict(read_table(espnet / folder / "noise1.scp")) if noise else {}
        for uid, mixture in wav:
            mix, _ = sf.read(mixture)
            total = sum(sf.read(s[uid])[0] for s in sources)
            if noises:
                total = total + sf.read(noises[uid])[0]
            assert abs(mix - total).max() < 1e-3, uid
        if fmt == "librimix":  # the ids are LibriMix's mixture_ID
            (index,) = (data / split).glob("*.csv")
            with open(index, newline="") as f:
                assert sorted(r["mixture_ID"] for r in csv.DictReader(f)) == sorted(ids)


def test_unusable_ids_and_paths_are_refused(tmp_path):
    good = Utterance("a", "/x/a.wav", ("/x/s1.wav", "/x/s2.wav"), 10)
    with pytest.raises(ValueError, match="whitespace"):
        write_kaldi_split([good, Utterance("b", "/my data/b.wav", good.sources, 10)], tmp_path)
    with pytest.raises(ValueError, match="duplicate utterance ids"):
        write_kaldi_split([good, good], tmp_path)
    with pytest.raises(ValueError, match="no mixtures"):
        write_kaldi_split([], tmp_path)


def test_rows_stay_aligned_whatever_the_input_order(tmp_path):
    utterances = [
        Utterance(f"u{i}", f"/x/mix{i}.wav", (f"/x/s1_{i}.wav", f"/x/s2_{i}.wav"), 10)
        for i in (3, 10, 2)
    ]
    write_kaldi_split(utterances, tmp_path)
    order = ["u10", "u2", "u3"]  # byte order, as Kaldi's sort
    assert read_table(tmp_path / "wav.scp") == [(u, f"/x/mix{u[1:]}.wav") for u in order]
    for k in (1, 2):
        rows = read_table(tmp_path / f"spk{k}.scp")
        assert rows == [(u, f"/x/s{k}_{u[1:]}.wav") for u in order]


def test_wham_ids_need_wham_file_names(tmp_path):
    odd = Utterance("mixture1", "/x/mixture1.wav", ("/x/s1.wav", "/x/s2.wav"), 10)
    with pytest.raises(ValueError, match=r"mixture1.wav is not named <utt1>_<snr1>_<utt2>_<snr2>"):
        write_kaldi_split([odd], tmp_path, ESPNET_NAMING["wham"])


def test_espnet_stage_1_command_prints_the_enh_sh_sets(tmp_path, capsys):
    root = make_wham_tree(tmp_path / "raw", n_per_split=2, seconds=0.5)
    data = tmp_path / "enh1" / "data"
    argv = ["--dataset", "wham", "--root", str(root), "--data", str(data)]
    assert kaldi_main([*argv, "--sample_rate", "8k", "--task", "sep_noisy"]) == 0
    sets = "--train_set tr_mix_both_min_8k --valid_set cv_mix_both_min_8k"
    assert capsys.readouterr().out.strip() == f"{sets} --test_sets tt_mix_both_min_8k"
    assert (data / "local" / "tdanet_wham" / "dataset.json").is_file()  # our index, kept aside
    assert (data / "tr_mix_both_min_8k" / "noise1.scp").is_file()
    assert kaldi_main(["--dataset", "wham", "--root", str(tmp_path / "nowhere")]) == 1
    assert "WHAM! not found under" in capsys.readouterr().err
