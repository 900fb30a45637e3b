"""Stage 4 of every recipe: a Hugging Face model repo, the way Asteroid loads and publishes them.

``exp/<tag>/publish/`` receives Asteroid's ``save_publishable`` folder (``model.pth``: the model
file plus dataset, task, licences in Asteroid's fields, training conf and metrics; what
``asteroid-upload`` reads), the same file as ``pytorch_model.bin`` (a hard link: the name
Asteroid's ``from_pretrained("<user>/<repo>")`` fetches from the hub) and ``README.md``, a model
card with Hugging Face metadata (library, tags, datasets, license, model-index results) whose
usage section is ``<Model>.from_pretrained("<hub id>")`` and ``asteroid-infer <hub id>``. The
suggested repo name is Asteroid's ``<Model>_<Dataset>_<task>``. Licences follow Asteroid's
publisher: the card's licence notice is Asteroid's own sentence (``make_license_notice``) and the
model is licensed CC BY-SA 3.0 as Asteroid's published models are. Upload the folder to the hub
with ``hf upload <user>/<repo> exp/<tag>/publish --exclude "*.pth"``, or to Zenodo with
``asteroid-upload exp/<tag>/publish --uploader "Your Name"``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from asteroid_tdanet.data.registry import get_entry

# Licence entries in the fields Asteroid's publisher reads (make_license_notice).
LICENSE_FIELDS = (
    "title",
    "title_link",
    "author",
    "author_link",
    "license",
    "license_link",
    "non_commercial",
)
# The architecture, from the authors' repository (its LICENSE file: Apache License 2.0).
TDANET_LICENSE = {
    "title": "TDANet: An efficient encoder-decoder architecture with top-down attention for "
    "speech separation (ICLR 2023)",
    "title_link": "https://github.com/JusperLee/TDANet",
    "author": "Kai Li, Runxuan Yang, Xiaolin Hu",
    "author_link": "https://arxiv.org/abs/2209.15200",
    "license": "Apache License 2.0",
    "license_link": "https://www.apache.org/licenses/LICENSE-2.0",
    "non_commercial": False,
}
# This toolkit (setup.py: MIT).
TOOLKIT_LICENSE = {
    "title": "asteroid-tdanet",
    "title_link": "https://pypi.org/project/asteroid-tdanet/",
    "author": "asteroid-tdanet contributors",
    "author_link": "https://pypi.org/project/asteroid-tdanet/",
    "license": "MIT License",
    "license_link": "https://opensource.org/licenses/MIT",
    "non_commercial": False,
}
TDANET_MODELS = ("TDANet", "TDANetLarge")
# Our models that asteroid.models does not register (import them from asteroid_tdanet).
UNREGISTERED_MODELS = ("Sepformer",)
PUBLISHED_FILE = "pytorch_model.bin"
# What Asteroid's save_publishable writes and asteroid-upload reads.
ASTEROID_FILE = "model.pth"
# The licence Asteroid's publisher gives every model it publishes (asteroid.models.publisher:
# the licence notice's last sentence and the Zenodo metadata), as a Hugging Face licence id.
MODEL_LICENSE = "cc-by-sa-3.0"
HUB_USER_PLACEHOLDER = "<hf-user>"


HEADLINE = {"si_sdr_imp": "SI-SNRi", "sdr_imp": "SDRi", "stoi": "STOI", "pesq": "PESQ"}


def publish_licenses(dataset: str, model_name: str, task: str) -> list[dict[str, Any]]:
    """Licences of a published model: the data set's, TDANet's (for our models), the toolkit's.

    Args:
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        model_name: Registered model class name.
        task: "sep_clean" or "sep_noisy" (adds the noise's licence).

    Returns:
        Licence dicts with exactly Asteroid's fields (:data:`LICENSE_FIELDS`).
    """
    licenses = get_entry(dataset).license_dicts(task)
    if model_name in TDANET_MODELS:
        licenses.append(dict(TDANET_LICENSE))
    return licenses + [dict(TOOLKIT_LICENSE)]


def repo_name(model_name: str, dataset_name: str, task: str) -> str:
    """Asteroid's repo name ``<Model>_<Dataset>_<task>`` (as its publisher builds it), with only
    the characters hub repo names allow (``WHAM!`` -> ``WHAM``)."""
    name = "_".join([model_name, dataset_name, task.replace("_", "")])
    return re.sub(r"[^A-Za-z0-9._-]", "", name)


def dataset_infos(dataset: str, task: str) -> dict[str, Any]:
    """``dataset``/``task``/``licenses`` entries for Asteroid's publishable model.

    Args:
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        task: "sep_clean" or "sep_noisy" (adds the noise's licence).

    Returns:
        ``{"dataset": title, "task": task, "licenses": [Asteroid licence dicts]}``.
    """
    return get_entry(dataset).infos(task)


def model_card(
    *,
    repo_name: str,
    model_name: str,
    dataset: str,
    conf: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    n_params: int,
    recipe: str,
    hub_id: str | None = None,
    licenses: list[dict[str, Any]] | None = None,
    uploader: str | None = None,
) -> str:
    """Markdown model card with Hugging Face YAML metadata.

    Args:
        repo_name: Name of the model on the hub (see :func:`repo_name`).
        model_name: Registered model class name.
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        conf: Training conf.
        metrics: ``final_metrics.json`` contents.
        n_params: Number of parameters.
        recipe: Recipe path, e.g. ``egs/librimix/TDANet``.
        hub_id: ``<user>/<repo>`` shown in the usage section (default: a placeholder user).
        licenses: Licence entries (Asteroid's fields; default :func:`publish_licenses`).
        uploader: Who licenses the model, named in the licence notice (default: the hub user).
    """
    from asteroid.models.publisher import make_license_notice

    entry = get_entry(dataset)
    hub_id = hub_id or f"{HUB_USER_PLACEHOLDER}/{repo_name}"
    task = conf["data"]["task"]
    licenses = licenses if licenses is not None else publish_licenses(dataset, model_name, task)
    results = [
        {"type": key.replace("_", "-"), "name": label, "value": round(metrics[key]["mean"], 3)}
        for key, label in HEADLINE.items()
        if key in metrics and metrics[key]["mean"] is not None
    ]
    meta = {
        "library_name": "asteroid",
        "tags": ["asteroid", "audio", "audio-to-audio", "speech-separation", model_name],
        "datasets": [entry.hf_id],
        "license": MODEL_LICENSE,
        "pipeline_tag": "audio-to-audio",
        "model-index": [
            {
                "name": repo_name,
                "results": [
                    {
                        "task": {"type": "audio-to-audio", "name": "Speech separation"},
                        "dataset": {
                            "name": entry.title,
                            "type": entry.hf_id,
                            "config": conf["data"]["task"],
                        },
                        "metrics": results,
                    }
                ],
            }
        ],
    }
    data = conf["data"]
    if model_name in UNREGISTERED_MODELS:
        provider, module = "asteroid-tdanet's baseline", "asteroid_tdanet"
    elif model_name in TDANET_MODELS:
        provider, module = "asteroid-tdanet registers it with Asteroid when installed", None
    else:
        provider, module = "an Asteroid model", None
    module = module or "asteroid.models"
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {repo_name}: {model_name} trained on {entry.title}",
        "",
        f"{model_name} ({n_params / 1e6:.2f} M parameters) separating {data['n_src']} speakers "
        f"at {data['sample_rate']} Hz, trained with the `{recipe}` recipe of asteroid-tdanet "
        f"(task `{data['task']}`). Dataset: {entry.title} ({entry.url}).",
        "",
        "## Use",
        "",
        f"With Asteroid and asteroid-tdanet installed (`pip install asteroid-tdanet`; {provider}):",
        "",
        "```python",
        f"from {module} import {model_name}",
        "",
        f'model = {model_name}.from_pretrained("{hub_id}")',
        f'model.separate("mixture.wav")  # writes mixture_est1.wav ... at {data["sample_rate"]} Hz',
        f"estimates = model(mixture)  # (batch, time) -> (batch, {data['n_src']}, time)",
        "```",
        "",
        "```bash",
        f"asteroid-infer {hub_id} --files mixture.wav --output-dir separated/  "
        "# create separated/ first",
        "```",
        "",
        "## Results on the test set (whole utterances)",
        "",
        "| metric | mean | std | utterances |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, value in metrics.items():
        if value["mean"] is None:
            continue
        lines.append(f"| {key} | {value['mean']:.3f} | {value['std']:.3f} | {value['count']} |")
    lines += [
        "",
        "SI-SNRi is `si_sdr_imp`, SDRi is `sdr_imp` (improvements over the mixture, dB).",
        "",
        "## Training configuration",
        "",
        "```yaml",
        yaml.safe_dump(conf, sort_keys=False).rstrip(),
        "```",
        "",
        "## License notice",
        "",
        make_license_notice(repo_name, licenses, uploader=uploader or hub_id.split("/")[0]),
        "",
        "Derived from:",
        "",
    ]
    for lic in licenses:
        research = " (research only)" if lic["non_commercial"] else ""
        lines.append(
            f"- [{lic['title']}]({lic['title_link']}) by [{lic['author']}]({lic['author_link']}): "
            f"[{lic['license']}]({lic['license_link']}){research}"
        )
    lines += [
        "",
        "## References",
        "",
        "- Kai Li, Runxuan Yang, Xiaolin Hu. An efficient encoder-decoder architecture with "
        "top-down attention for speech separation. ICLR 2023.",
        "- Manuel Pariente et al. Asteroid: the PyTorch-based audio source separation toolkit for "
        "researchers. Interspeech 2020.",
        "",
    ]
    return "\n".join(lines)


def publish(
    exp_dir: str | Path,
    dataset: str,
    recipe: str,
    hub_user: str | None = None,
    uploader: str | None = None,
) -> Path:
    """Write ``exp_dir/publish/{model.pth,pytorch_model.bin,README.md}``, ready to upload.

    Args:
        exp_dir: ``exp/<tag>`` with ``best_model.pth``, ``conf.yml``,
            ``results/final_metrics.json``.
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        recipe: Recipe path for the card.
        hub_user: Hugging Face user or organisation the card's usage names (default: a
            placeholder to replace).
        uploader: Who licenses the model in the card's licence notice (default: `hub_user`).

    Returns:
        The publish directory.
    """
    from asteroid.models.publisher import save_publishable

    from asteroid_tdanet.io import load_model, load_model_file

    exp_dir = Path(exp_dir)
    metrics_path = exp_dir / "results" / "final_metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: evaluate first (stage 3)")
    conf = yaml.safe_load((exp_dir / "conf.yml").read_text())
    metrics = json.loads(metrics_path.read_text())
    package = load_model_file(exp_dir / "best_model.pth")
    package.update(dataset_infos(dataset, conf["data"]["task"]))
    package["licenses"] = publish_licenses(dataset, package["model_name"], package["task"])
    name = repo_name(package["model_name"], package["dataset"], package["task"])
    hub_id = f"{hub_user or HUB_USER_PLACEHOLDER}/{name}"
    package["infos"]["upload_name"] = hub_id
    n_params = sum(p.numel() for p in load_model(exp_dir / "best_model.pth").parameters())
    publish_dir = exp_dir / "publish"
    # Asteroid's format keeps the mean of each metric (plain floats).
    means = {k: v["mean"] for k, v in metrics.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # local/publish.py prints both uploads
        save_publishable(str(publish_dir), package, metrics=means, train_conf=conf, recipe=recipe)
    # The name the hub serves and Asteroid's from_pretrained("<user>/<repo>") fetches; model.pth
    # stays for asteroid-upload. A hard link: one copy on disk.
    published = publish_dir / PUBLISHED_FILE
    published.unlink(missing_ok=True)
    try:
        os.link(publish_dir / ASTEROID_FILE, published)
    except OSError:  # file systems without hard links
        shutil.copy2(publish_dir / ASTEROID_FILE, published)
    card = model_card(
        repo_name=name,
        model_name=package["model_name"],
        dataset=dataset,
        conf=conf,
        metrics=metrics,
        n_params=n_params,
        recipe=recipe,
        hub_id=hub_id,
        licenses=package["licenses"],
        uploader=uploader,
    )
    (publish_dir / "README.md").write_text(card)
    return publish_dir
