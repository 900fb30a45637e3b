"""One self-describing entry per data set: the only place that knows about a benchmark.

An entry's `name` is used everywhere: the conf's ``data.format``, the recipe folder
``egs/<name>/TDANet``, the download step ``local/download_<name>.sh``, the prepared data dir
``data/<name>_<rate>``, ``dataset.json``'s ``format`` and the model card. It holds

- where the audio lives (`Layout`: folders, split names, sample rates, index style),
- the licences of the audio (Asteroid's licence dicts, also shown in model cards),
- how utterances and speakers are named (`Naming`), which is how dynamic mixing finds each
  speaker's utterances in the training split, and where it finds them (`find_sources`),
- the benchmark's own level rules for new mixtures (`asteroid_tdanet.data.levels`),
- the names model cards use (title, Hugging Face id, home page).

A new benchmark is one `DatasetEntry` added to `ENTRIES` plus its ``local/download_<name>.sh``
(stage 0); stage 1 (``local/prepare.py --dataset <name>``), training, evaluation and
publishing then work from the entry alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layouts import LIBRIMIX_LAYOUT, LRS2_2MIX_LAYOUT, WHAM_LAYOUT, Layout
from .levels import LevelRule, LibriMixLevels, RelativeLevels


@dataclass(frozen=True)
class License:
    """Terms of one corpus the audio comes from, with Asteroid's licence-dict fields."""

    title: str
    title_link: str
    author: str
    author_link: str
    license: str
    license_link: str
    non_commercial: bool

    def as_dict(self) -> dict[str, Any]:
        """Asteroid's licence dict: ``title``, ``title_link``, ..., ``non_commercial``."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class SourceFile:
    """One single-speaker recording (or noise recording) available for dynamic mixing.

    Args:
        id: Utterance id, unique in the pool.
        speaker: Speaker id ("" for noise).
        path: Audio file.
        sample_rate: Its sample rate in Hz (resampled to the recipe's once, then cached).
        length: Samples at `sample_rate` when known from an index (-1: read the header).
    """

    id: str
    speaker: str
    path: str
    sample_rate: int
    length: int = -1


@dataclass(frozen=True)
class Naming:
    """How a data set names its mixtures after their utterances, and utterances' speakers.

    Args:
        split_mixture: ``(mixture id, n_src) -> utterance ids`` in source order.
        speaker: ``utterance id -> speaker id``.
        rule: One sentence for the documentation.
    """

    split_mixture: Callable[[str, int], list[str]]
    speaker: Callable[[str], str]
    rule: str


def _underscore_joined(mixture_id: str, n_src: int) -> list[str]:
    return mixture_id.split("_")[:n_src]


def _with_snrs(mixture_id: str, n_src: int) -> list[str]:
    # wsj0-2mix / WHAM!: <utt1>_<snr1>_<utt2>_<snr2>
    return mixture_id.split("_")[0 : 2 * n_src : 2]


def _video_clip_snr(mixture_id: str, n_src: int) -> list[str]:
    # LRS2-2Mix: <video1>_<clip1>_<snr1>_<video2>_<clip2>_<snr2>
    parts = mixture_id.split("_")
    return ["_".join(parts[3 * i : 3 * i + 2]) for i in range(n_src)]


LIBRISPEECH_NAMING = Naming(
    split_mixture=_underscore_joined,
    speaker=lambda utt: utt.split("-")[0],
    rule="mixture <utt1>_<utt2>, LibriSpeech utterance <speaker>-<chapter>-<index>",
)
MINI2MIX_NAMING = Naming(
    split_mixture=_underscore_joined,
    speaker=lambda utt: utt.rsplit("-", 1)[0],
    rule="mixture <utt1>_<utt2>, utterance <speaker>-<sentence>",
)
WSJ0_NAMING = Naming(
    split_mixture=_with_snrs,
    speaker=lambda utt: utt[:3],
    rule="mixture <utt1>_<snr1>_<utt2>_<snr2>, WSJ0 utterance <3-character speaker><rest>",
)
LRS2_NAMING = Naming(
    split_mixture=_video_clip_snr,
    speaker=lambda utt: utt.split("_")[0],
    # LRS2 has no speaker labels; the authors mixed "speakers from different scenes".
    rule="mixture <video>_<clip>_<snr>_<video>_<clip>_<snr>; the video (scene) stands for the "
    "speaker, as LRS2 has no speaker labels",
)


@dataclass(frozen=True)
class DatasetEntry:
    """Everything the recipes need to know about one data set.

    Args:
        name: The one name used everywhere (conf ``data.format``, ``egs/<name>``,
            ``local/download_<name>.sh``, ``dataset.json``).
        title: Human name, stored as Asteroid's ``dataset`` info and in model cards.
        hf_id: Data set id in Hugging Face model-card metadata.
        url: Home page of the data set.
        layout: Where its audio lives on disk.
        licenses: Terms of its speech audio.
        noise_licenses: Terms of its noise audio, added for ``sep_noisy``.
        naming: How mixture names give utterance and speaker ids.
        levels: Its level rules for dynamic mixing.
        find_sources: ``(data_dir, meta, n_src, task) -> (speech, noise)`` source files of the
            training split for dynamic mixing; None: the prepared training split's own source
            and noise files, speakers from `naming` (`sources_from_prepared_split`).
        notes: What a user should know (shown by ``local/prepare.py --help``).
    """

    name: str
    title: str
    hf_id: str
    url: str
    layout: Layout
    licenses: tuple[License, ...]
    naming: Naming
    levels: LevelRule
    noise_licenses: tuple[License, ...] = ()
    find_sources: Callable[..., tuple[list[SourceFile], list[SourceFile]]] | None = None
    notes: str = ""

    @property
    def recipe(self) -> str:
        return f"egs/{self.name}/TDANet"

    @property
    def download_script(self) -> str:
        return f"local/download_{self.name}.sh"

    def license_dicts(self, task: str) -> list[dict[str, Any]]:
        """The licences of the audio a model of `task` is trained on (Asteroid's dicts)."""
        found = list(self.licenses) + (list(self.noise_licenses) if task == "sep_noisy" else [])
        return [lic.as_dict() for lic in found]

    def infos(self, task: str) -> dict[str, Any]:
        """``dataset``/``task``/``licenses``: what Asteroid's datasets and publisher use."""
        return {"dataset": self.title, "task": task, "licenses": self.license_dicts(task)}


LIBRISPEECH = License(
    title="LibriSpeech ASR corpus",
    title_link="http://www.openslr.org/12",
    author="Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur",
    author_link="http://www.openslr.org/12",
    license="CC BY 4.0",
    license_link="https://creativecommons.org/licenses/by/4.0/",
    non_commercial=False,
)
WSJ0 = License(
    title="CSR-I (WSJ0) Complete",
    title_link="https://catalog.ldc.upenn.edu/LDC93S6A",
    author="LDC",
    author_link="https://www.ldc.upenn.edu/",
    license="LDC User Agreement for Non-Members",
    license_link="https://catalog.ldc.upenn.edu/license/ldc-non-members-agreement.pdf",
    non_commercial=True,
)
WHAM_NOISE = License(
    title="The WSJ0 Hipster Ambient Mixtures dataset (WHAM! noise)",
    title_link="http://wham.whisper.ai/",
    author="Whisper.ai",
    author_link="https://whisper.ai/",
    license="CC BY-NC 4.0",
    license_link="https://creativecommons.org/licenses/by-nc/4.0/",
    non_commercial=True,
)
LRS2 = License(
    title="The Oxford-BBC Lip Reading Sentences 2 (LRS2) Dataset",
    title_link="https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs2.html",
    author="BBC, University of Oxford (VGG)",
    author_link="https://www.robots.ox.ac.uk/~vgg/",
    license="BBC non-commercial research use only",
    license_link="https://www.bbc.co.uk/rd/projects/lip-reading-datasets",
    non_commercial=True,
)
MINI2MIX = License(
    title="mini2mix (synthetic speech made offline with Flite and eSpeak NG by this project)",
    title_link="https://github.com/asteroid-team/asteroid",
    author="asteroid-tdanet",
    author_link="https://github.com/asteroid-team/asteroid",
    license="MIT",
    license_link="https://opensource.org/licenses/MIT",
    non_commercial=False,
)


def sources_from_prepared_split(
    entry: DatasetEntry, data_dir: Path, meta: dict, n_src: int, task: str
) -> tuple[list[SourceFile], list[SourceFile]]:
    """Speech and noise files of the prepared training split, one per utterance.

    Each mixture's source files are single-speaker recordings named by `entry.naming`; an
    utterance that occurs in several mixtures is kept once (its longest file).
    """
    from .index import read_index

    rate = int(meta["sample_rate"])
    speech: dict[str, SourceFile] = {}
    noise: dict[str, SourceFile] = {}
    for u in read_index(entry.layout, Path(data_dir) / "train", task, n_src):
        utt_ids = entry.naming.split_mixture(u.id, n_src)
        if len(utt_ids) != n_src or any(not x for x in utt_ids):
            raise ValueError(
                f"{entry.title}: cannot read {n_src} utterance ids from mixture {u.id!r} "
                f"(expected {entry.naming.rule})"
            )
        for utt, path in zip(utt_ids, u.sources, strict=True):
            if utt not in speech or speech[utt].length < u.length:
                speech[utt] = SourceFile(utt, entry.naming.speaker(utt), path, rate, u.length)
        if task == "sep_noisy" and u.noise:
            noise[u.noise] = SourceFile(Path(u.noise).stem, "", u.noise, rate, u.length)
    return sorted(speech.values(), key=lambda s: s.id), sorted(noise.values(), key=lambda s: s.id)


def mini2mix_sources(
    entry: DatasetEntry, data_dir: Path, meta: dict, n_src: int, task: str
) -> tuple[list[SourceFile], list[SourceFile]]:
    """The training speakers' whole 16 kHz recordings that the demo set was built from."""
    from .mini2mix import SOURCE_RATE, STAMP_NAME, default_sources_dir, sources_digest

    stamp_path = Path(meta["root"]) / "Libri2Mix" / "metadata" / STAMP_NAME
    if not stamp_path.is_file():
        raise FileNotFoundError(
            f"{stamp_path} not found: dynamic mixing of mini2mix reads the sources that built "
            "it; rebuild the data with stage 0 (local/download_mini2mix.sh)"
        )
    stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    sources_dir = Path(stamp.get("sources_dir") or default_sources_dir())
    if not (sources_dir / "utterances.tsv").is_file():
        raise FileNotFoundError(f"{sources_dir}/utterances.tsv (mini2mix sources) not found")
    if sources_digest(sources_dir) != stamp.get("sources_sha256"):
        raise ValueError(
            f"the mini2mix sources in {sources_dir} changed since {stamp_path} was built: "
            "rebuild the data (stage 0 with --download_opts --force, then stage 1)"
        )
    with open(sources_dir / "utterances.tsv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "train"]
    speech = [
        SourceFile(
            r["utterance_id"],
            r["speaker_id"],
            str(sources_dir / r["path"]),
            SOURCE_RATE,
            int(r["num_samples"]),
        )
        for r in rows
    ]
    return speech, []


ENTRIES: dict[str, DatasetEntry] = {
    "librimix": DatasetEntry(
        name="librimix",
        title="Libri2Mix",
        hf_id="Libri2Mix",
        url="https://github.com/JorisCos/LibriMix",
        layout=LIBRIMIX_LAYOUT,
        licenses=(LIBRISPEECH,),
        noise_licenses=(WHAM_NOISE,),
        naming=LIBRISPEECH_NAMING,
        levels=LibriMixLevels(),
        notes="train-100, 'min' mode; sep_noisy needs LibriMix's mix_both (WHAM! noise)",
    ),
    "wham": DatasetEntry(
        name="wham",
        title="WHAM!",
        hf_id="wham",
        url="http://wham.whisper.ai/",
        layout=WHAM_LAYOUT,
        licenses=(WSJ0,),
        noise_licenses=(WHAM_NOISE,),
        naming=WSJ0_NAMING,
        # wsj0-2mix: speakers 0-5 dB apart; WHAM!: louder speaker to noise -6 to +3 dB.
        levels=RelativeLevels(speaker_snr=(0.0, 5.0), noise_snr=(-6.0, 3.0)),
        notes="'min' mode; the paper's task is sep_noisy (mix_both -> s1, s2)",
    ),
    "lrs2_2mix": DatasetEntry(
        name="lrs2_2mix",
        title="LRS2-2Mix",
        hf_id="LRS2-2Mix",
        url="https://github.com/JusperLee/TDANet",
        layout=LRS2_2MIX_LAYOUT,
        licenses=(LRS2,),
        naming=LRS2_NAMING,
        # The authors' README: two speakers mixed at SNRs drawn between -5 and 5 dB.
        levels=RelativeLevels(speaker_snr=(-5.0, 5.0), noise_snr=None),
        notes="16 kHz, 2 s mixtures, clean only",
    ),
    "mini2mix": DatasetEntry(
        name="mini2mix",
        title="mini2mix",
        hf_id="mini2mix",
        url="https://github.com/asteroid-team/asteroid",
        layout=LIBRIMIX_LAYOUT,
        licenses=(MINI2MIX,),
        naming=MINI2MIX_NAMING,
        levels=LibriMixLevels(),
        find_sources=mini2mix_sources,
        notes="the offline demo: synthetic voices mixed the LibriMix way, Libri2Mix layout",
    ),
}

NAMES = tuple(ENTRIES)


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of data set `name` (one of `NAMES`)."""
    try:
        return ENTRIES[name]
    except KeyError:
        hint = " (renamed 'lrs2_2mix')" if name == "lrs2" else ""
        raise ValueError(f"unknown data set {name!r}{hint}; choose one of {list(NAMES)}") from None


def training_sources(
    name: str, data_dir: str | Path, meta: dict, n_src: int, task: str
) -> tuple[list[SourceFile], list[SourceFile]]:
    """Speech (and, for ``sep_noisy``, noise) files of the training split for dynamic mixing."""
    entry = get_entry(name)
    finder = entry.find_sources or sources_from_prepared_split
    return finder(entry, Path(data_dir), meta, n_src, task)
