"""Stage 4 of every recipe: Asteroid's publishable model and a Hugging Face model card.

``exp/<tag>/publish/`` receives ``model.pth`` (Asteroid's ``save_publishable`` format: the model
file plus dataset, licenses, training conf and metrics) and ``README.md``, a model card with
Hugging Face metadata (library, tags, datasets, license, model-index results).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import yaml

from asteroid_tdanet.data.registry import get_entry

HEADLINE = {"si_sdr_imp": "SI-SNRi", "sdr_imp": "SDRi", "stoi": "STOI", "pesq": "PESQ"}


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
) -> str:
    """Markdown model card with Hugging Face YAML metadata.

    Args:
        repo_name: Name the model would have on the hub (the experiment tag).
        model_name: Registered model class name.
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        conf: Training conf.
        metrics: ``final_metrics.json`` contents.
        n_params: Number of parameters.
        recipe: Recipe path, e.g. ``egs/librimix/TDANet``.
    """
    entry = get_entry(dataset)
    licenses = entry.license_dicts(conf["data"]["task"])
    non_commercial = any(lic["non_commercial"] for lic in licenses)
    results = [
        {"type": key.replace("_", "-"), "name": label, "value": round(metrics[key]["mean"], 3)}
        for key, label in HEADLINE.items()
        if key in metrics and metrics[key]["mean"] is not None
    ]
    meta = {
        "library_name": "asteroid",
        "tags": ["asteroid", "audio", "audio-to-audio", "speech-separation", model_name],
        "datasets": [entry.hf_id],
        "license": "cc-by-nc-4.0" if non_commercial else "cc-by-4.0",
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
        "```python",
        "import asteroid_tdanet  # registers the model class with asteroid",
        "from asteroid_tdanet.io import load_model",
        "",
        'model = load_model("model.pth")',
        f"estimates = model(mixture)  # (batch, time) at {data['sample_rate']} Hz -> "
        f"(batch, {data['n_src']}, time)",
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
        "## Licenses of the training data",
        "",
    ]
    for lic in licenses:
        lines.append(
            f"- {lic['title']} ({lic['author']}): {lic['license']} ({lic['license_link']})"
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


def publish(exp_dir: str | Path, dataset: str, recipe: str) -> Path:
    """Write ``exp_dir/publish/{model.pth,README.md}`` from a trained and evaluated experiment.

    Args:
        exp_dir: ``exp/<tag>`` with ``best_model.pth``, ``conf.yml``,
            ``results/final_metrics.json``.
        dataset: Registered data set name (`asteroid_tdanet.data.registry`).
        recipe: Recipe path for the card.

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
    n_params = sum(p.numel() for p in load_model(exp_dir / "best_model.pth").parameters())
    publish_dir = exp_dir / "publish"
    # Asteroid's format keeps the mean of each metric (plain floats).
    means = {k: v["mean"] for k, v in metrics.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # its upload how-to does not apply here
        save_publishable(str(publish_dir), package, metrics=means, train_conf=conf, recipe=recipe)
    card = model_card(
        repo_name=exp_dir.name,
        model_name=package["model_name"],
        dataset=dataset,
        conf=conf,
        metrics=metrics,
        n_params=n_params,
        recipe=recipe,
    )
    (publish_dir / "README.md").write_text(card)
    return publish_dir
