"""Small fake data trees in the exact layouts of the real benchmarks, and a local file server.

Each builder writes tiny random wavs at the right sample rate where the real data set has them
and returns the ROOT to give to ``local/prepare_<name>.py --root``. Item ``i`` of a split lasts
``seconds + 0.1 * i`` seconds (so tests can check that short items are dropped); the mixture is
the sum of its sources (plus noise for ``mix_both``), written in the real data set's sample
format, so ``mixture ~= s1 + s2`` within 16-bit quantisation.

`bad` makes one split (`bad_split`, default "test") faulty:

- "missing_file": the s2 file of its first mixture is deleted (still listed in metadata);
- "wrong_sample_rate": the s1 file of its first mixture is rewritten at twice the rate;
- "empty_split": all its wavs are removed (folders kept; LibriMix metadata keeps its header).

`serve_directory` serves a folder over HTTP on 127.0.0.1 with byte-range (resume) support and
can cut a transfer halfway, for the download tests.
"""

from __future__ import annotations

import contextlib
import csv
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

BAD_KINDS = (None, "missing_file", "wrong_sample_rate", "empty_split")


def write_wav(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
    fmt: str | None = None,
) -> Path:
    """Write a wav (folders created); `fmt="WAV"` for names not ending in .wav."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype=subtype, format=fmt)
    return path


def _speechlike(rng: np.random.Generator, n: int) -> np.ndarray:
    # Noise with a slow envelope: enough structure for tests, small enough not to clip.
    env = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, n) + rng.uniform(0, np.pi))
    return (0.1 * env * rng.standard_normal(n)).astype(np.float32)


def _write_example(
    split_dir: Path,
    name: str,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    mixture_dirs: dict[str, bool],
    n_src: int,
    subtype: str,
) -> None:
    """Write s1..sN (+ noise) and the mixtures named in `mixture_dirs` (name -> has noise)."""
    sources = [_speechlike(rng, n) for _ in range(n_src)]
    noise = _speechlike(rng, n) * 0.5
    for i, s in enumerate(sources):
        write_wav(split_dir / f"s{i + 1}" / name, s, sample_rate, subtype)
    if any(mixture_dirs.values()):
        write_wav(split_dir / "noise" / name, noise, sample_rate, subtype)
    for folder, with_noise in mixture_dirs.items():
        mix = np.sum(sources, axis=0) + (noise if with_noise else 0.0)
        write_wav(split_dir / folder / name, mix, sample_rate, subtype)


def _break(split_dir: Path, bad: str | None, first_name: str, sample_rate: int) -> None:
    if bad is None:
        return
    if bad not in BAD_KINDS:
        raise ValueError(f"bad must be one of {BAD_KINDS}, not {bad!r}")
    if bad == "missing_file":
        (split_dir / "s2" / first_name).unlink()
    elif bad == "wrong_sample_rate":
        path = split_dir / "s1" / first_name
        audio, _ = sf.read(path, dtype="float32")
        sf.write(path, audio, sample_rate * 2, subtype="PCM_16")
    elif bad == "empty_split":
        for wav in split_dir.rglob("*.wav"):
            wav.unlink()


def _lengths(n_per_split: int, seconds: float, sample_rate: int) -> list[int]:
    return [int(round((seconds + 0.1 * i) * sample_rate)) for i in range(n_per_split)]


def make_librimix_tree(
    root: str | Path,
    n_per_split: int = 3,
    seconds: float = 1.0,
    *,
    sample_rate: int = 8000,
    mode: str = "min",
    n_src: int = 2,
    metadata: bool = True,
    foreign_paths: bool = True,
    noisy: bool = False,
    bad: str | None = None,
    bad_split: str = "test",
    seed: int = 0,
) -> Path:
    """Libri2Mix: ``ROOT/Libri{n}Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1,s2}``.

    Args:
        root: Folder to build in (created).
        n_per_split: Mixtures per split.
        seconds: Length of the first mixture; item i lasts ``seconds + 0.1 i``.
        sample_rate: 8000 or 16000 (the ``wav8k``/``wav16k`` folder).
        mode: "min" or "max" folder.
        n_src: Number of sources.
        metadata: Write LibriMix's ``metadata/mixture_<split>_mix_clean.csv`` (and ``_mix_both``
            when `noisy`); without it the tree is like the demo set (folders only).
        foreign_paths: Paths in the metadata are absolute paths of another machine (as in
            real downloads), which do not exist here; else the real local paths.
        noisy: Also write ``mix_both`` and ``noise``.
        bad: None or one of "missing_file", "wrong_sample_rate", "empty_split".
        bad_split: Which split ("train-100", "dev", "test") `bad` applies to.
        seed: Random seed.

    Returns:
        `root` (what ``--root`` expects).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    mode_dir = root / f"Libri{n_src}Mix" / f"wav{sample_rate // 1000}k" / mode
    mixture_dirs = {"mix_clean": False} | ({"mix_both": True} if noisy else {})
    foreign_base = f"/nonexistent/librimix_machine/Libri{n_src}Mix/wav{sample_rate // 1000}k/{mode}"
    for k, split in enumerate(["train-100", "dev", "test"]):
        split_dir = mode_dir / split
        for folder in list(mixture_dirs) + [f"s{i + 1}" for i in range(n_src)]:
            (split_dir / folder).mkdir(parents=True, exist_ok=True)
        rows = []
        for i, n in enumerate(_lengths(n_per_split, seconds, sample_rate)):
            mix_id = "_".join(f"{100 * (j + 1) + k}-{j}{k}-{i:04d}" for j in range(n_src))
            name = f"{mix_id}.wav"
            _write_example(
                split_dir,
                name,
                n,
                sample_rate,
                rng,
                mixture_dirs=mixture_dirs,
                n_src=n_src,
                subtype="PCM_16",
            )
            rows.append((mix_id, name, n))
        if metadata:
            base = f"{foreign_base}/{split}" if foreign_paths else str(split_dir.resolve())
            (mode_dir / "metadata").mkdir(parents=True, exist_ok=True)
            for folder, with_noise in mixture_dirs.items():
                header = ["mixture_ID", "mixture_path"]
                header += [f"source_{i + 1}_path" for i in range(n_src)]
                header += (["noise_path"] if with_noise else []) + ["length"]
                with open(
                    mode_dir / "metadata" / f"mixture_{split}_{folder}.csv", "w", newline=""
                ) as f:
                    writer = csv.writer(f)
                    writer.writerow(header)
                    if bad == "empty_split" and split == bad_split:
                        continue
                    for mix_id, name, n in rows:
                        row = [mix_id, f"{base}/{folder}/{name}"]
                        row += [f"{base}/s{i + 1}/{name}" for i in range(n_src)]
                        row += [f"{base}/noise/{name}"] if with_noise else []
                        writer.writerow(row + [n])
        if split == bad_split:
            _break(split_dir, bad, rows[0][1], sample_rate)
    return root


def make_wham_tree(
    root: str | Path,
    n_per_split: int = 3,
    seconds: float = 1.0,
    *,
    sample_rate: int = 8000,
    mode: str = "min",
    bad: str | None = None,
    bad_split: str = "tt",
    seed: int = 0,
) -> Path:
    """WHAM!: ``ROOT/wav8k/min/{tr,cv,tt}/{mix_both,mix_clean,mix_single,s1,s2,noise}``.

    Files are 32-bit float wavs named like WHAM!'s (``<utt1>_<snr>_<utt2>_<-snr>.wav``), as
    the WHAM! scripts write them. Arguments as in `make_librimix_tree`; `bad_split` is one
    of "tr", "cv", "tt". Returns `root`.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    mode_dir = root / f"wav{sample_rate // 1000}k" / mode
    for k, split in enumerate(["tr", "cv", "tt"]):
        split_dir = mode_dir / split
        names = []
        for i, n in enumerate(_lengths(n_per_split, seconds, sample_rate)):
            name = f"40{k}c02{i:02d}_0.{i + 1}23_20{k}a01{i:02d}_-0.{i + 1}23.wav"
            _write_example(
                split_dir,
                name,
                n,
                sample_rate,
                rng,
                mixture_dirs={"mix_clean": False, "mix_both": True},
                n_src=2,
                subtype="FLOAT",
            )
            # mix_single: s1 + noise (enhancement task), kept for a faithful layout.
            s1, _ = sf.read(split_dir / "s1" / name, dtype="float32")
            noise, _ = sf.read(split_dir / "noise" / name, dtype="float32")
            write_wav(split_dir / "mix_single" / name, s1 + noise, sample_rate, "FLOAT")
            names.append(name)
        if split == bad_split:
            _break(split_dir, bad, names[0], sample_rate)
    return root


def make_lrs2_tree(
    root: str | Path,
    n_per_split: int = 3,
    seconds: float = 1.0,
    *,
    sample_rate: int = 16000,
    mode: str = "min",
    bad: str | None = None,
    bad_split: str = "tt",
    seed: int = 0,
) -> Path:
    """LRS2-2Mix: ``ROOT/lrs2_rebuild/audio/wav16k/min/{tr,cv,tt}/{mix,s1,s2}`` (16-bit PCM).

    Files are named like LRS2-2Mix's (``<video>_<clip>_<snr>_<video>_<clip>_<-snr>.wav``).
    Arguments as in `make_librimix_tree`; `bad_split` is one of "tr", "cv", "tt".
    Returns `root`.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    mode_dir = root / "lrs2_rebuild" / "audio" / f"wav{sample_rate // 1000}k" / mode
    for k, split in enumerate(["tr", "cv", "tt"]):
        split_dir = mode_dir / split
        names = []
        for i, n in enumerate(_lengths(n_per_split, seconds, sample_rate)):
            name = (
                f"63303110664736985{k}{i}_0001{i}_0.5308_63393562674686153{k}{i}_00010_-0.5308.wav"
            )
            _write_example(
                split_dir,
                name,
                n,
                sample_rate,
                rng,
                mixture_dirs={"mix": False},
                n_src=2,
                subtype="PCM_16",
            )
            names.append(name)
        if split == bad_split:
            _break(split_dir, bad, names[0], sample_rate)
    return root


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support; can cut a file's first transfer."""

    # Set per server by `serve_directory`.
    cut_first: set[str] = set()
    deny: set[str] = set()
    no_range: bool = False
    log: list[tuple[str, str | None]] = []
    served_once: set[str] = set()

    def log_message(self, format, *args):  # noqa: A002 - keep the test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if path.name in self.deny:
            self.send_error(403, "forbidden")
            return
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not self.no_range:
            start = int(range_header.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if self.no_range else "bytes")
        self.end_headers()
        name = path.name
        if name in self.cut_first and name not in self.served_once:
            # Promise the whole body, send half, then drop the connection.
            self.served_once.add(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve_directory(
    directory: str | Path,
    *,
    cut_first: tuple[str, ...] = (),
    no_range: bool = False,
    deny: tuple[str, ...] = (),
):
    """Serve `directory` on ``http://127.0.0.1:<free port>`` in a background thread.

    Args:
        directory: Folder whose files are served.
        cut_first: File names whose first transfer stops halfway (connection closed).
        no_range: Ignore Range headers (a server that cannot resume).
        deny: File names answered with 403 Forbidden (a gated download without a token).

    Yields:
        ``(base_url, log)``: the URL without trailing slash, and the list of
        ``(path, Range header)`` of every GET received.
    """
    log: list[tuple[str, str | None]] = []
    handler = type(
        "Handler",
        (_RangeHandler,),
        {
            "cut_first": set(cut_first),
            "deny": set(deny),
            "no_range": no_range,
            "log": log,
            "served_once": set(),
        },
    )
    handler_factory = lambda *a, **kw: handler(*a, directory=os.fspath(directory), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
