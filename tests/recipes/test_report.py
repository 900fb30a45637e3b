"""The evaluation report: what it picks and writes, and that a real browser shows and plays it."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_trees import make_librimix_tree
from recipe_helpers import REPO, LookupSeparator, register_test_models, tiny_conf

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.recipes.config import dump_conf, validate
from asteroid_tdanet.recipes.evaluation import evaluate
from asteroid_tdanet.recipes.report import (
    Example,
    build_report,
    paper_figures,
    pick_examples,
    write_report,
)

RATE = 8000


def test_worst_and_best_are_picked_by_si_snri_and_nan_is_skipped():
    rows = [{"utt_id": f"u{i}", "si_sdr_imp": v} for i, v in enumerate([3, -1, 9, "nan", 5, 7])]
    assert pick_examples(rows, 2) == [
        ("worst 1", "u1", -1.0),
        ("worst 2", "u0", 3.0),
        ("best 1", "u2", 9.0),
        ("best 2", "u5", 7.0),
    ]
    # Fewer mixtures than examples: each shown once.
    assert [p[1] for p in pick_examples(rows[:3], 2)] == ["u1", "u0", "u2"]


def tone_example(name: str, seconds: float, value: float) -> Example:
    t = np.arange(int(seconds * RATE)) / RATE
    refs = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)])
    ests = refs + 0.01 * np.random.default_rng(0).standard_normal(refs.shape)
    return Example(name, f"mix-{name}", value, RATE, refs.sum(0), refs, ests)


def fake_report(out: Path) -> Path:
    """A report from a made-up evaluation: 20 mixtures, 2 examples of 1.5 s and 2.5 s."""
    rng = np.random.default_rng(1)
    rows = [{"utt_id": f"m{i}", "si_sdr_imp": float(v)} for i, v in enumerate(rng.normal(8, 3, 20))]
    values = [r["si_sdr_imp"] for r in rows]
    final = {
        "si_sdr_imp": {"mean": float(np.mean(values)), "std": float(np.std(values)), "count": 20},
        "sdr_imp": {"mean": 9.0, "std": 2.0, "count": 20},
    }
    history = [{"epoch": e, "train_loss": -e, "val_loss": -0.9 * e, "lr": 1e-3} for e in range(4)]
    return write_report(
        out,
        title="fake: evaluation report",
        final=final,
        rows=rows,
        history=history,
        examples=[tone_example("worst 1", 1.5, 1.0), tone_example("best 1", 2.5, 12.0)],
        paper={"si_sdr_imp": 16.9},
        paper_source="a test figure",
        facts=[("model", "TDANet")],
    )


def local_sources(index: Path) -> list[str]:
    """Every src= of the page."""
    return re.findall(r"src='([^']+)'", index.read_text())


def test_the_page_holds_the_table_pictures_and_players_and_only_local_files(tmp_path):
    index = fake_report(tmp_path / "report")
    text = index.read_text()
    assert "SI-SNRi (dB)" in text and "16.9" in text and "a test figure" in text
    assert text.count("<audio") == 2 * 5  # mixture, 2 references, 2 estimates per example
    sources = local_sources(index)
    assert len(sources) == 2 + 2 + 2 * 5  # curve, histogram, 2 spectrograms, 10 sounds
    for src in sources:
        assert not re.match(r"[a-z]+://", src), src  # nothing from the network
        assert (index.parent / src).is_file(), src
    audio, rate = sf.read(index.parent / "examples/best-1/s2_estimate.wav")
    assert rate == RATE and len(audio) == int(2.5 * RATE)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny evaluated experiment whose model returns chosen estimates: the references plus
    noise, louder for each test item, and swapped for one of them (PIT must undo it)."""
    raw = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=3, seconds=1.0)
    data_dir = tmp_path_factory.mktemp("data")
    prepare("librimix", raw, data_dir, sample_rate=RATE, progress=False)
    split = raw / "Libri2Mix" / "wav8k" / "min" / "test"
    register_test_models()
    items = []
    for path in sorted((split / "mix_clean").glob("*.wav")):
        refs = np.stack([sf.read(split / s / path.name)[0] for s in ("s1", "s2")])
        items.append((path.stem, refs))
    model = LookupSeparator([refs.shape[1] for _, refs in items])
    rng = np.random.default_rng(3)
    for k, (_, refs) in enumerate(items):
        noisy = refs + (0.03 * 4**k) * rng.standard_normal(refs.shape)
        model.set_estimates(refs.shape[1], noisy[::-1] if k == 0 else noisy)
    exp = tmp_path_factory.mktemp("exp") / "lookup"
    conf = tiny_conf("LookupSeparator", {"lengths": model.lengths})
    conf["evaluation"] = {"metrics": ["si_sdr"], "n_examples": 0, "sdr_backend": "mir_eval"}
    dump_conf(validate(conf), exp / "conf.yml")
    save_model_file(model, exp / "best_model.pth")
    evaluate(exp, data_dir, device="cpu", progress_bar=False)
    return exp, data_dir


def test_build_report_shows_the_worst_and_best_mixtures_of_the_evaluation(evaluated):
    exp, data_dir = evaluated
    with open(exp / "results" / "all_metrics.csv") as handle:
        rows = {r["utt_id"]: r for r in csv.DictReader(handle)}
    score = {utt: float(r["si_sdr_imp"]) for utt, r in rows.items()}
    ranked = sorted(score, key=score.get)
    index = build_report(exp, data_dir, n_each=1)
    text = index.read_text()
    assert f"worst 1: {ranked[0]}" in text and f"best 1: {ranked[-1]}" in text
    assert f"SI-SNRi {score[ranked[-1]]:.2f} dB" in text
    # The sounds are those mixtures, whole, with each estimate beside its own reference.
    for name, utt in (("worst-1", ranked[0]), ("best-1", ranked[-1])):
        folder = index.parent / "examples" / name
        played, rate = sf.read(folder / "mixture.wav")
        assert rate == RATE and len(played) == round(float(rows[utt]["seconds"]) * RATE)
        for i in (1, 2):
            est, ref = sf.read(folder / f"s{i}_estimate.wav")[0], sf.read(folder / f"s{i}.wav")[0]
            other = sf.read(folder / f"s{3 - i}.wav")[0]
            assert abs(np.corrcoef(est, ref)[0, 1]) > abs(np.corrcoef(est, other)[0, 1])
    # No training history in this experiment: the page says so instead of a broken image.
    assert "No training history" in text
    for src in local_sources(index):
        assert (index.parent / src).is_file(), src


def test_build_report_names_what_is_missing(tmp_path, evaluated):
    _, data_dir = evaluated
    with pytest.raises(FileNotFoundError, match="final_metrics.json"):
        exp = tmp_path / "e"
        exp.mkdir()
        (exp / "conf.yml").write_text("{}")
        build_report(exp, data_dir)


BROWSER_CHECK = r"""
async () => {
  const within = (promise, what) => Promise.race([promise, new Promise((_, bad) =>
    setTimeout(() => bad(new Error('timed out: ' + what)), 10000))]);
  const images = [...document.images].map(
    i => ({src: i.src, ok: i.complete && i.naturalWidth > 0}));
  const audios = [...document.querySelectorAll('audio')];
  const loaded = a => a.error ? Promise.reject(new Error('audio error ' + a.src))
    : a.readyState >= 1 ? Promise.resolve() : new Promise((ok, bad) => {
      a.addEventListener('loadedmetadata', ok, {once: true});
      a.addEventListener('error', () => bad(new Error('audio error ' + a.src)), {once: true});
    });
  await within(Promise.all(audios.map(loaded)), 'audio metadata');
  const durations = audios.map(a => ({src: a.src, duration: a.duration, error: a.error}));
  const player = audios[audios.length - 1];
  await within(player.play(), 'play()');
  await new Promise(r => setTimeout(r, 400));
  return {images, durations, playing: !player.paused, time: player.currentTime};
}
"""


@pytest.mark.slow
def test_a_real_browser_loads_the_page_shows_every_picture_and_plays_audio(tmp_path):
    """Debian's chromium (``make browser``) driven by Playwright: no console error, every
    image and sound resolves, and a sound plays with the right duration."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: run `make browser`"
    index = fake_report(tmp_path / "report")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
        page.goto(index.as_uri(), wait_until="load")
        result = page.evaluate(BROWSER_CHECK)
        browser.close()
    assert not errors, errors
    assert len(result["images"]) == 4 and all(i["ok"] for i in result["images"]), result
    assert len(result["durations"]) == 10
    for audio in result["durations"]:
        expected = 2.5 if "best-1" in audio["src"] else 1.5
        assert audio["error"] is None and audio["duration"] == pytest.approx(expected, abs=0.01)
    assert result["playing"] and result["time"] > 0, result


def test_make_test_installs_the_browser_first():
    """``make test`` depends on ``make browser``, which installs Debian's chromium."""
    out = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True).stdout
    assert "apt-get install" in out and "chromium" in out


@pytest.mark.parametrize(
    "model, args, data, expected",
    [
        ("TDANet", {}, ("librimix", "sep_clean"), {"si_sdr_imp": 16.9, "sdr_imp": 17.4}),
        ("TDANetLarge", {}, ("lrs2_2mix", "sep_clean"), {"si_sdr_imp": 14.2, "sdr_imp": 14.5}),
        (
            "TDANet",
            {"enc_kernel_ms": 2.0},
            ("wham", "sep_noisy"),
            {"si_sdr_imp": 15.2, "sdr_imp": 15.4},
        ),
        ("ConvTasNet", {}, ("wham", "sep_noisy"), {"si_sdr_imp": 12.7}),  # Table 2 prints "-"
        ("TDANet", {"bn_chan": 64, "n_blocks": 4}, ("librimix", "sep_clean"), {}),  # the demo's
        ("TDANet", {}, ("mini2mix", "sep_clean"), {}),
        ("TDANet", {}, ("wham", "sep_clean"), {}),  # the paper's WHAM! task is the noisy one
    ],
)
def test_the_paper_column_holds_table_2_only_where_it_applies(model, args, data, expected):
    figures, source = paper_figures(model, args, {"format": data[0], "task": data[1]})
    assert figures == expected
    assert ("Table 2" in source) == bool(expected), source
