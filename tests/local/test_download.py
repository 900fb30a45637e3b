"""Stage 0 (local/download_*.sh) against a local HTTP server: resume, checksums, disk check,
licence prompt, and each data set's download + generation on tiny fake archives."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_trees import make_lrs2_tree, serve_directory, write_wav
from scipy.signal import resample_poly

from asteroid_tdanet.data import prepare

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "local"
SCRIPTS = ["download_lrs2_2mix.sh", "download_librimix.sh", "download_wham.sh"]


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    # The generation steps must run this interpreter (the one with asteroid_tdanet).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHON"] = sys.executable
    env.update(
        TDANET_FETCH_RETRY_DELAY="0",
        TDANET_FETCH_RETRIES="3",
        TDANET_DISK_NEED_GB="0.001",  # the real estimates may exceed a test machine's disk
    )
    for name in ("TDANET_ACCEPT_LICENSE", "TDANET_SKIP_DISK_CHECK", "TDANET_NO_CHECKSUM"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LOCAL / name), *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def fetch(url: str, dest: Path, sha: str = "", **env: str) -> subprocess.CompletedProcess:
    code = f'. "{LOCAL / "download_lib.sh"}"; tdanet_fetch "$1" "$2" "$3"'
    return subprocess.run(
        ["bash", "-c", code, "fetch", url, str(dest), sha],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    served = tmp_path / "served"
    served.mkdir()
    data = np.random.default_rng(0).bytes(300_000)
    (served / "blob.bin").write_bytes(data)
    return served, data


# ---------------------------------------------------------------------------------------------
# download_lib.sh


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_fetch_resumes_a_cut_transfer(tmp_path, payload, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    served, data = payload
    with serve_directory(served, cut_first=("blob.bin",)) as (url, log):
        result = fetch(f"{url}/blob.bin", tmp_path / "out" / "blob.bin", TDANET_DOWNLOADER=tool)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "blob.bin").read_bytes() == data
    assert not (tmp_path / "out" / "blob.bin.part").exists()
    # First request cut halfway, the second asks for the rest only.
    assert len(log) == 2 and log[0][1] is None
    assert log[1][1] is not None and log[1][1].startswith("bytes=")
    assert int(log[1][1].split("=")[1].rstrip("-")) > 0
    assert "interrupted" in result.stderr


def test_fetch_restarts_when_server_cannot_resume(tmp_path, payload):
    served, data = payload
    with serve_directory(served, cut_first=("blob.bin",), no_range=True) as (url, log):
        result = fetch(f"{url}/blob.bin", tmp_path / "blob.bin")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "blob.bin").read_bytes() == data
    assert len(log) >= 3  # cut, refused resume, full download


def test_fetch_skips_a_finished_file(tmp_path, payload):
    served, data = payload
    (tmp_path / "blob.bin").write_bytes(data)
    with serve_directory(served) as (url, log):
        result = fetch(f"{url}/blob.bin", tmp_path / "blob.bin")
    assert result.returncode == 0 and log == []
    assert "Already downloaded" in result.stderr


def test_fetch_finishes_a_complete_part_file(tmp_path, payload):
    # Killed after the last byte but before the rename: the server answers 416 to the resume.
    served, data = payload
    (tmp_path / "blob.bin.part").write_bytes(data)
    with serve_directory(served) as (url, log):
        result = fetch(f"{url}/blob.bin", tmp_path / "blob.bin")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "blob.bin").read_bytes() == data and len(log) == 1


def test_fetch_checks_known_checksums(tmp_path, payload):
    served, data = payload
    good = hashlib.sha256(data).hexdigest()
    with serve_directory(served) as (url, _):
        ok = fetch(f"{url}/blob.bin", tmp_path / "a.bin", good)
        bad = fetch(f"{url}/blob.bin", tmp_path / "b.bin", "0" * 64)
        skipped = fetch(f"{url}/blob.bin", tmp_path / "c.bin", "0" * 64, TDANET_NO_CHECKSUM="1")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a.bin.sha256ok").read_text().strip() == good
    assert bad.returncode != 0
    assert "checksum mismatch" in bad.stderr and good in bad.stderr
    assert (tmp_path / "b.bin.corrupt").exists() and not (tmp_path / "b.bin").exists()
    assert skipped.returncode == 0 and (tmp_path / "c.bin").exists()


def test_a_corrupt_download_is_named_sized_and_cleaned_up(tmp_path, payload):
    served, data = payload
    good = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "b.bin"
    (served / "other.bin").write_bytes(data[:-1000])
    with serve_directory(served) as (url, _):
        bad = fetch(f"{url}/other.bin", dest, good)
        # The message says where the damaged file is, how big, and how to delete it.
        assert bad.returncode != 0
        corrupt = tmp_path / "b.bin.corrupt"
        assert corrupt.stat().st_size == len(data) - 1000
        assert f"rm '{corrupt}'" in bad.stderr and "K)" in bad.stderr  # du -h size: 292K
        # The next good download replaces it and deletes the damaged copy.
        again = fetch(f"{url}/blob.bin", dest, good)
    assert again.returncode == 0, again.stderr
    assert dest.read_bytes() == data and not corrupt.exists()
    assert f"Deleted {corrupt}" in again.stderr


def test_401_and_403_explain_hf_token_and_are_not_retried(tmp_path, payload):
    served, _ = payload
    with serve_directory(served, deny=("lrs2.tar.gz",)) as (url, log):
        result = run_script(
            "download_lrs2_2mix.sh",
            "--root",
            str(tmp_path / "root"),
            "--accept_license",
            TDANET_LRS2_URL=f"{url}/lrs2.tar.gz",
            TDANET_FETCH_RETRIES="5",
        )
    assert result.returncode != 0
    assert "HTTP 401/403" in result.stderr and "HF_TOKEN=<token>" in result.stderr
    assert "huggingface.co/settings/tokens" in result.stderr
    assert len(log) == 1  # refused: not retried


def test_fallback_address_is_tried_when_the_first_fails(tmp_path, payload):
    served, data = payload
    dest = tmp_path / "blob.bin"
    code = f'. "{LOCAL / "download_lib.sh"}"; tdanet_fetch "$1" "$2" "" "$3"'
    with serve_directory(served, cut_first=("blob.bin",)) as (url, log):
        result = subprocess.run(
            ["bash", "-c", code, "fetch", f"{url}/gone/blob.bin", str(dest), f"{url}/blob.bin"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == data
    assert [path for path, _ in log] == ["/gone/blob.bin", "/blob.bin", "/blob.bin"]
    assert f"Trying the fallback address {url}/blob.bin" in result.stderr


def test_fetch_fails_fast_on_missing_url(tmp_path, payload):
    served, _ = payload
    with serve_directory(served) as (url, log):
        result = fetch(f"{url}/nope.tar.gz", tmp_path / "nope.tar.gz", TDANET_FETCH_RETRIES="5")
    assert result.returncode != 0
    assert "cannot download" in result.stderr and "nope.tar.gz" in result.stderr
    assert len(log) == 1  # a 404 is not retried


# ---------------------------------------------------------------------------------------------
# Options, disk check, licences (no download happens).


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = run_script(script, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout and "--root" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_options_are_named(script, tmp_path):
    result = run_script(script, "--root", str(tmp_path), "--bogus", "1")
    assert result.returncode != 0 and "unknown option --bogus" in result.stderr
    result = run_script(script)
    assert result.returncode != 0 and "--root is required" in result.stderr


def test_disk_check_fails_clearly(tmp_path):
    with serve_directory(tmp_path) as (url, log):
        result = run_script(
            "download_lrs2_2mix.sh",
            "--root",
            str(tmp_path / "root"),
            "--accept_license",
            TDANET_LRS2_URL=f"{url}/lrs2.tar.gz",
            TDANET_DISK_NEED_GB="999999",
        )
    assert result.returncode != 0
    assert "not enough free disk space" in result.stderr
    assert "999999 GB" in result.stderr and "TDANET_SKIP_DISK_CHECK" in result.stderr
    assert log == []  # nothing fetched


def test_license_must_be_accepted(tmp_path):
    result = run_script("download_lrs2_2mix.sh", "--root", str(tmp_path))
    assert result.returncode != 0
    assert "NON-COMMERCIAL" in result.stderr and "--accept_license" in result.stderr
    assert not list(tmp_path.glob(".tdanet_license_*"))


def test_librimix_noisy_task_is_explained(tmp_path):
    result = run_script("download_librimix.sh", "--root", str(tmp_path), "--task", "sep_noisy")
    assert result.returncode != 0
    assert "wham_noise.zip" in result.stderr and "generate_librimix.sh" in result.stderr


def test_missing_python_packages_are_named(tmp_path):
    result = run_script("download_librimix.sh", "--root", str(tmp_path), PYTHON="false")
    assert result.returncode != 0 and "lacks numpy, scipy, soundfile or tqdm" in result.stderr


def test_wham_needs_wsj0(tmp_path):
    result = run_script("download_wham.sh", "--root", str(tmp_path), "--accept_license")
    assert result.returncode != 0
    assert "--wsj0 is required" in result.stderr and "LDC" in result.stderr


# ---------------------------------------------------------------------------------------------
# LRS2-2Mix end to end.


def _tar(dest: Path, members: dict[str, Path]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for arcname, path in members.items():
            tar.add(path, arcname=arcname)
    return dest


def test_lrs2_download_resumes_extracts_and_prepares(tmp_path):
    src = make_lrs2_tree(tmp_path / "src", n_per_split=2)
    # Nest the tree one level down: the script must find lrs2_rebuild wherever it is.
    _tar(tmp_path / "served" / "lrs2.tar.gz", {"LRS2/lrs2_rebuild": src / "lrs2_rebuild"})
    root = tmp_path / "root"
    env = {"TDANET_ACCEPT_LICENSE": "1"}
    with serve_directory(tmp_path / "served", cut_first=("lrs2.tar.gz",)) as (url, log):
        env["TDANET_LRS2_URL"] = f"{url}/lrs2.tar.gz"
        first = run_script("download_lrs2_2mix.sh", "--root", str(root), **env)
        assert first.returncode == 0, first.stderr
        n_requests = len(log)
        again = run_script("download_lrs2_2mix.sh", "--root", str(root), **env)
    assert n_requests == 2  # cut, then resumed
    assert again.returncode == 0 and "ready" in again.stderr and len(log) == n_requests
    assert (root / "lrs2_rebuild" / "audio" / "wav16k" / "min" / "tt" / "mix").is_dir()
    assert not (root / "downloads" / "lrs2.tar.gz").exists()  # deleted after extraction
    assert (root / ".tdanet_license_LRS2").exists()
    # The CLI of stage 1 is tested in test_prepare.py; in-process here (no second torch import).
    assert prepare("lrs2_2mix", root, tmp_path / "data", progress=False)["counts"]["test"] == 2


# ---------------------------------------------------------------------------------------------
# Libri2Mix end to end: fake LibriSpeech archives + LibriMix metadata.

SUBSETS = ("train-clean-100", "dev-clean", "test-clean")


def _make_librispeech(tmp_path: Path) -> tuple[Path, dict[str, list[dict]]]:
    """Served folder with <subset>.tar.gz (FLAC at 16 kHz) and LibriMix-style metadata."""
    rng = np.random.default_rng(1)
    served = tmp_path / "served"
    rows: dict[str, list[dict]] = {}
    for k, subset in enumerate(SUBSETS):
        base = tmp_path / "ls" / "LibriSpeech" / subset
        utts = []
        for spk in (f"{19 + k}", f"{2000 + k}"):
            for u in range(2):
                rel = f"{subset}/{spk}/{100 + u}/{spk}-{100 + u}-{u:04d}.flac"
                n = 16000 + 1601 * u + 37 * k  # odd lengths: resampling rounds up
                t = np.arange(n) / 16000
                audio = 0.3 * np.sin(2 * np.pi * (300 + 100 * u + 50 * k) * t)
                audio += 0.02 * rng.standard_normal(n)
                write_wav(tmp_path / "ls" / "LibriSpeech" / rel, audio, 16000)
                utts.append(rel)
        _tar(served / f"{subset}.tar.gz", {f"LibriSpeech/{subset}": base})
        rows[subset] = []
        for a, b in [(0, 2), (1, 3)]:
            mix_id = "_".join(Path(utts[i]).stem for i in (a, b))
            rows[subset].append(
                {
                    "mixture_ID": mix_id,
                    "source_1_path": utts[a],
                    "source_1_gain": 0.8 + 0.1 * a,
                    "source_2_path": utts[b],
                    "source_2_gain": 1.1 - 0.1 * a,
                    "noise_path": f"tt/noise_{a}.wav",  # never read for sep_clean
                    "noise_gain": 2.0,
                }
            )
        meta = served / "metadata" / "Libri2Mix" / f"libri2mix_{subset}.csv"
        meta.parent.mkdir(parents=True, exist_ok=True)
        with open(meta, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[subset][0]))
            writer.writeheader()
            writer.writerows(rows[subset])
    return served, rows


def test_librimix_download_generates_libri2mix(tmp_path):
    served, rows = _make_librispeech(tmp_path)
    root = tmp_path / "root"
    with serve_directory(served, cut_first=("train-clean-100.tar.gz",)) as (url, log):
        env = {"TDANET_OPENSLR_URL": url, "TDANET_LIBRIMIX_URL": url, "TDANET_NO_CHECKSUM": "1"}
        result = run_script("download_librimix.sh", "--root", str(root), "--nj", "1", **env)
        assert result.returncode == 0, result.stderr
        n_requests = len(log)
        again = run_script("download_librimix.sh", "--root", str(root), **env)
    assert again.returncode == 0 and "ready" in again.stderr and len(log) == n_requests
    assert not any("noise" in path for path, _ in log)  # WHAM! noise is never fetched
    assert "CC BY 4.0" in result.stderr

    mode_dir = root / "Libri2Mix" / "wav8k" / "min"
    for subset, split in zip(SUBSETS, ("train-100", "dev", "test"), strict=True):
        with open(mode_dir / "metadata" / f"mixture_{split}_mix_clean.csv") as f:
            listed = list(csv.DictReader(f))
        assert [r["mixture_ID"] for r in listed] == [r["mixture_ID"] for r in rows[subset]]
        for row, meta in zip(rows[subset], listed, strict=True):
            name = f"{row['mixture_ID']}.wav"
            refs = []
            for i in (1, 2):
                audio, _ = sf.read(tmp_path / "ls" / "LibriSpeech" / row[f"source_{i}_path"])
                # The LibriMix procedure, written out independently: gain, 16 -> 8 kHz.
                refs.append(resample_poly(audio * row[f"source_{i}_gain"], 1, 2))
            n = min(len(r) for r in refs)  # 'min' mode
            s1, rate = sf.read(mode_dir / split / "s1" / name)
            s2, _ = sf.read(mode_dir / split / "s2" / name)
            mix, _ = sf.read(mode_dir / split / "mix_clean" / name)
            assert rate == 8000 and len(mix) == len(s1) == len(s2) == n == int(meta["length"])
            q = 1.5 / 2**15  # 16-bit quantisation
            np.testing.assert_allclose(s1, refs[0][:n], atol=q)
            np.testing.assert_allclose(s2, refs[1][:n], atol=q)
            np.testing.assert_allclose(mix, refs[0][:n] + refs[1][:n], atol=q)

    assert prepare("librimix", root, tmp_path / "data", progress=False)["counts"]["train"] == 2


# SHA-256 of LibriMix's metadata/Libri2Mix/libri2mix_<subset>.csv at the pinned commit.
LIBRIMIX_METADATA_SHA256 = {
    "train-clean-100": "4de1fdee085ed3f0149c42159d7774be427c8a48eeb2e4d6a92fc632022647d5",
    "dev-clean": "43ad88e65ee8678be73a79920fba1dcf44fa87271ba95a57205707edc0b85f77",
    "test-clean": "e3d4dc64a03fbbb00ba807a821df2994dbc0c3a9c6fe6a176cfa14949bd8624e",
}


def test_librimix_metadata_is_pinned_and_checked_first(tmp_path):
    served, _ = _make_librispeech(tmp_path)
    with serve_directory(served) as (url, log):
        env = {"TDANET_OPENSLR_URL": url, "TDANET_LIBRIMIX_URL": url}
        result = run_script("download_librimix.sh", "--root", str(tmp_path / "root"), **env)
    # The served metadata are not LibriMix's: refused before any LibriSpeech archive is asked.
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    assert "libri2mix_train-clean-100.csv" in result.stderr
    assert LIBRIMIX_METADATA_SHA256["train-clean-100"] in result.stderr
    assert [path for path, _ in log] == ["/metadata/Libri2Mix/libri2mix_train-clean-100.csv"]
    # The default address is LibriMix's repository at the commit the hashes were taken from.
    help_text = run_script("download_librimix.sh", "--help").stdout
    assert (
        "raw.githubusercontent.com/JorisCos/LibriMix/b898ca375c03e4039cdb3dbe3dd485aad58ec7d1"
        in (help_text)
    )
    script = (LOCAL / "download_librimix.sh").read_text()
    for subset, digest in LIBRIMIX_METADATA_SHA256.items():
        assert f"{subset}) echo {digest}" in script


def test_librimix_checks_librispeech_checksums(tmp_path):
    served, _ = _make_librispeech(tmp_path)
    root = tmp_path / "root"
    # Metadata already downloaded and verified (as a previous run leaves them).
    for subset, digest in LIBRIMIX_METADATA_SHA256.items():
        meta = root / "LibriMix_metadata" / "Libri2Mix" / f"libri2mix_{subset}.csv"
        meta.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(served / "metadata" / "Libri2Mix" / meta.name, meta)
        Path(f"{meta}.sha256ok").write_text(digest + "\n")
    with serve_directory(served) as (url, log):
        env = {"TDANET_OPENSLR_URL": url, "TDANET_LIBRIMIX_URL": url}
        result = run_script("download_librimix.sh", "--root", str(root), **env)
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    # The published SHA-256 of train-clean-100.tar.gz (torchaudio checks the same).
    assert "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2" in result.stderr
    assert len(log) == 1  # stopped at the first archive


def test_recipe_stage_0_builds_the_sample_rate_stage_1_reads(tmp_path):
    # ./run.sh --sample_rate 16000 on Libri2Mix: stage 0 must build wav16k, which stage 1 reads.
    served, rows = _make_librispeech(tmp_path)
    storage, data = tmp_path / "storage", tmp_path / "data16k"
    with serve_directory(served) as (url, _):
        result = subprocess.run(
            [str(REPO / "egs" / "librimix" / "TDANet" / "run.sh"), "--stage", "0", "--stop_stage",
             "1", "--sample_rate", "16000", "--storage_dir", str(storage), "--data_dir", str(data),
             "--python", sys.executable, "--download_opts", "--nj 1"],
            env=_env(TDANET_OPENSLR_URL=url, TDANET_LIBRIMIX_URL=url, TDANET_NO_CHECKSUM="1"),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (storage / "Libri2Mix").glob("wav*")) == ["wav16k"]
    mix = next((storage / "Libri2Mix" / "wav16k" / "min" / "test" / "mix_clean").glob("*.wav"))
    assert sf.info(mix).samplerate == 16000
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["sample_rate"] == 16000 and meta["counts"]["test"] == len(rows["test-clean"])


def test_lrs2_refuses_another_sample_rate_before_downloading(tmp_path):
    result = run_script("download_lrs2_2mix.sh", "--root", str(tmp_path), "--sample_rate", "8000")
    assert result.returncode != 0
    assert "LRS2-2Mix exists at 16000 Hz only" in result.stderr
    assert not (tmp_path / "downloads").exists()


# ---------------------------------------------------------------------------------------------
# WHAM! end to end: fake WSJ0, fake noise archive, fake WHAM! scripts with the real CLI.

FAKE_WHAM_SCRIPT = textwrap.dedent(
    """\
    # Stand-in for WHAM!'s create_wham_from_scratch.py: same options, same loops, same output.
    import argparse, csv, os
    import numpy as np
    import soundfile as sf

    parser = argparse.ArgumentParser()
    parser.add_argument('--output-dir')
    parser.add_argument('--wsj0-root')
    parser.add_argument('--wham-noise-root')
    args = parser.parse_args()
    for splt in ['tr', 'cv', 'tt']:
        np.load(os.path.join(args.wham_noise_root, 'metadata', 'scaling_%s.npz' % splt))
        with open(os.path.join('data', 'mix_2_spk_filenames_%s.csv' % splt)) as f:
            rows = list(csv.DictReader(f))
        for sr_dir in ['16k', '8k']:
            step = 2 if sr_dir == '8k' else 1
            for datalen_dir in ['max', 'min']:
                out = os.path.join(args.output_dir, 'wav' + sr_dir, datalen_dir, splt)
                for row in rows:
                    name = row['output_filename']
                    s1 = sf.read(os.path.join(args.wsj0_root, row['s1_path']))[0][::step]
                    s2 = sf.read(os.path.join(args.wsj0_root, row['s2_path']))[0][::step]
                    noise = sf.read(os.path.join(args.wham_noise_root, splt, name))[0][::step]
                    n = min(len(s1), len(s2))
                    s1, s2, noise = s1[:n], s2[:n], noise[:n]
                    wavs = {'s1': s1, 's2': s2, 'noise': noise, 'mix_clean': s1 + s2,
                            'mix_both': s1 + s2 + noise, 'mix_single': s1 + noise}
                    for sub, x in wavs.items():
                        os.makedirs(os.path.join(out, sub), exist_ok=True)
                        sf.write(os.path.join(out, sub, name), x, 16000 // step,
                                 subtype='FLOAT')
    """
)


def _make_wham_sources(tmp_path: Path, sphere: bool) -> tuple[Path, Path]:
    """(served folder, --wsj0 folder). With `sphere`, WSJ0 is LDC-like: .WV1 files on a disc."""
    rng = np.random.default_rng(2)
    served = tmp_path / "served"
    scripts = tmp_path / "scripts_src" / "wham_scripts"
    noise = tmp_path / "noise_src" / "wham_noise"
    wsj0_dir = tmp_path / "wsj0_user"
    for k, split in enumerate(("tr", "cv", "tt")):
        rows = []
        for i in range(2):
            utts = [f"si_tr_s/40{k}/40{k}c02{i}{j}" for j in range(2)]
            for u in utts:
                audio = 0.1 * rng.standard_normal(16000 + 800 * i)
                if sphere:  # LDC disc layout, upper case; the fake sph2pipe just copies
                    folder, utt = u.rsplit("/", 1)
                    path = wsj0_dir / "11-1.1" / "wsj0" / folder / f"{utt.upper()}.WV1"
                    write_wav(path, audio, 16000, fmt="WAV")
                else:
                    write_wav(wsj0_dir / "wsj0" / f"{u}.wav", audio, 16000)
            name = f"{Path(utts[0]).name}_0.5_{Path(utts[1]).name}_-0.5.wav"
            rows.append([name, f"wsj0/{utts[0]}.wav", f"wsj0/{utts[1]}.wav"])
            write_wav(noise / split / name, 0.05 * rng.standard_normal(17000), 16000)
        (noise / "metadata").mkdir(parents=True, exist_ok=True)
        np.savez(noise / "metadata" / f"scaling_{split}.npz", utterance_id=[r[0] for r in rows])
        (scripts / "data").mkdir(parents=True, exist_ok=True)
        with open(scripts / "data" / f"mix_2_spk_filenames_{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([["output_filename", "s1_path", "s2_path"], *rows])
    (scripts / "create_wham_from_scratch.py").write_text(FAKE_WHAM_SCRIPT)
    _tar(served / "wham_scripts.tar.gz", {"wham_scripts": scripts})
    with zipfile.ZipFile(served / "wham_noise.zip", "w") as zf:
        for path in sorted(noise.rglob("*")):
            if path.is_file():
                zf.write(path, arcname=str(path.relative_to(noise.parent)))
    return served, wsj0_dir


def _fake_sph2pipe(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "sph2pipe"
    path.parent.mkdir()
    path.write_text('#!/bin/sh\n# usage: sph2pipe -f wav FILE\ncat "$3"\n')
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("sphere", [False, True], ids=["wav", "sphere"])
def test_wham_download_mixes_one_variant(tmp_path, sphere):
    served, wsj0_dir = _make_wham_sources(tmp_path, sphere)
    root = tmp_path / "root"
    env = {"TDANET_ACCEPT_LICENSE": "1"}
    if sphere:
        env["SPH2PIPE"] = str(_fake_sph2pipe(tmp_path))
    with serve_directory(served) as (url, log):
        env["TDANET_WHAM_NOISE_URL"] = f"{url}/wham_noise.zip"
        env["TDANET_WHAM_SCRIPTS_URL"] = f"{url}/wham_scripts.tar.gz"
        if not sphere:  # the first address of the scripts is gone: the fallback serves them
            env["TDANET_WHAM_SCRIPTS_URL"] = f"{url}/moved/wham_scripts.tar.gz"
            env["TDANET_WHAM_SCRIPTS_FALLBACK_URL"] = f"{url}/wham_scripts.tar.gz"
        result = run_script("download_wham.sh", "--root", str(root), "--wsj0", str(wsj0_dir), **env)
    assert result.returncode == 0, result.stderr
    if not sphere:
        assert [p for p, _ in log][:2] == ["/moved/wham_scripts.tar.gz", "/wham_scripts.tar.gz"]
        assert "Trying the fallback address" in result.stderr
    assert "LDC" in result.stderr and "CC BY-NC 4.0" in result.stderr
    # Only the asked variant was generated (the scripts alone would write four).
    assert sorted(p.name for p in root.glob("wav*")) == ["wav8k"]
    assert sorted(p.name for p in (root / "wav8k").iterdir()) == ["min"]
    assert (root / "wsj0_wav").is_dir() == sphere
    meta = prepare("wham", root, tmp_path / "data", task="sep_noisy", progress=False)
    assert meta["counts"] == {"train": 2, "valid": 2, "test": 2}


def test_wham_fallback_is_asteroids_address():
    # Asteroid's egs/wham/ConvTasNet/local/prepare_data.sh fetches both files from there.
    usage = run_script("download_wham.sh", "--help").stdout
    old = "https://storage.googleapis.com/whisper-public"
    assert f"(default: {old}/wham_scripts.tar.gz)" in usage
    assert f"(default: {old}/wham_noise.zip)" in usage


def test_wham_names_missing_sphere_files(tmp_path):
    served, wsj0_dir = _make_wham_sources(tmp_path, sphere=True)
    victim = sorted(wsj0_dir.rglob("*.WV1"))[-1]
    victim.unlink()
    with serve_directory(served) as (url, _):
        result = run_script(
            "download_wham.sh",
            "--root",
            str(tmp_path / "root"),
            "--wsj0",
            str(wsj0_dir),
            TDANET_ACCEPT_LICENSE="1",
            SPH2PIPE=str(_fake_sph2pipe(tmp_path)),
            TDANET_WHAM_NOISE_URL=f"{url}/wham_noise.zip",
            TDANET_WHAM_SCRIPTS_URL=f"{url}/wham_scripts.tar.gz",
        )
    assert result.returncode != 0
    key = f"{victim.parent.parent.name}/{victim.parent.name}/{victim.stem.lower()}"
    assert f"no WSJ0 file {key}.wv1" in result.stderr


def test_wham_names_missing_wsj0_files(tmp_path):
    served, wsj0_dir = _make_wham_sources(tmp_path, sphere=False)
    victim = sorted((wsj0_dir / "wsj0").rglob("*.wav"))[0]
    victim.unlink()
    with serve_directory(served) as (url, _):
        result = run_script(
            "download_wham.sh",
            "--root",
            str(tmp_path / "root"),
            "--wsj0",
            str(wsj0_dir),
            TDANET_ACCEPT_LICENSE="1",
            TDANET_WHAM_NOISE_URL=f"{url}/wham_noise.zip",
            TDANET_WHAM_SCRIPTS_URL=f"{url}/wham_scripts.tar.gz",
        )
    assert result.returncode != 0
    assert "1 of 12 WSJ0 files" in result.stderr and str(victim) in result.stderr


# ---------------------------------------------------------------------------------------------
# One disk figure per data set: the space check of the download script (default options, from
# scratch) is what run.sh, the recipe README and the script's --help state.

DISK = {
    "librimix": ("download_librimix.sh", []),
    "wham": ("download_wham.sh", ["--accept_license"]),
    "lrs2_2mix": ("download_lrs2_2mix.sh", ["--accept_license"]),
}


@pytest.mark.parametrize("dataset", sorted(DISK))
def test_one_disk_figure_per_data_set_everywhere(dataset, tmp_path):
    script, options = DISK[dataset]
    if dataset == "wham":
        (tmp_path / "wsj0").mkdir()
        options = [*options, "--wsj0", str(tmp_path / "wsj0")]
    (tmp_path / "served").mkdir()
    with serve_directory(tmp_path / "served") as (url, _):
        # Every address answers 404: the script stops at its first download, after the check.
        urls = {
            f"TDANET_{name}_URL": f"{url}/none"
            for name in ("OPENSLR", "LIBRIMIX", "LRS2", "WHAM_NOISE", "WHAM_NOISE_FALLBACK")
            + ("WHAM_SCRIPTS", "WHAM_SCRIPTS_FALLBACK")
        }
        result = run_script(
            script,
            "--root",
            str(tmp_path / "root"),
            *options,
            TDANET_SKIP_DISK_CHECK="1",
            TDANET_DISK_NEED_GB="",  # the script's own estimate
            **urls,
        )
    checked = re.search(r"needs about ([\d.]+) GB", result.stderr)
    assert checked, result.stderr
    figure = round(float(checked.group(1)))
    recipe = REPO / "egs" / dataset / "TDANet"
    stated = {
        "run.sh": re.findall(r"about (\d+) GB free", (recipe / "run.sh").read_text()),
        "README.md": re.findall(r"Disk: about (\d+) GB free", (recipe / "README.md").read_text()),
        "--help": re.findall(r"about (\d+) GB free", run_script(script, "--help").stdout),
    }
    for place, figures in stated.items():
        assert figures == [str(figure)], (place, figures, figure)
