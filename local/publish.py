#!/usr/bin/env python
"""Stage 4: a Hugging Face model repo in Asteroid's format -> exp/<tag>/publish/.

Usage:
    python local/publish.py --exp_dir exp/tdanet --dataset librimix --recipe egs/librimix/TDANet \
        [--hub_user NAME]
        [--uploader "Your Name"]
Writes model.pth (Asteroid's publishable model, what asteroid-upload reads), the same file as
pytorch_model.bin (what Asteroid's from_pretrained("<user>/<repo>") fetches) and README.md.
"""

from __future__ import annotations

import argparse

from asteroid_tdanet.recipes.cli import fail, setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__)
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--dataset", required=True, help="lrs2_2mix, librimix, wham or mini2mix")
    parser.add_argument("--recipe", required=True, help="recipe path shown in the model card")
    parser.add_argument(
        "--hub_user", default="", help="Hugging Face user or organisation named in the card"
    )
    parser.add_argument(
        "--uploader", default="", help="who licenses the model in the card (default: hub user)"
    )
    args = parser.parse_args(argv)
    setup_logging()

    import torch

    from asteroid_tdanet.recipes.model_card import PUBLISHED_FILE, publish

    try:
        out = publish(
            args.exp_dir,
            args.dataset,
            args.recipe,
            hub_user=args.hub_user or None,
            uploader=args.uploader or None,
        )
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    package = torch.load(out / PUBLISHED_FILE, map_location="cpu", weights_only=True)
    hub_id = package["infos"]["upload_name"]
    print(
        f"hub repo ready in {out}: {PUBLISHED_FILE} + README.md (model card).\n"
        f'Upload it with the Hugging Face CLI: hf upload {hub_id} {out} --exclude "*.pth"\n'
        f'Then: {package["model_name"]}.from_pretrained("{hub_id}"), or asteroid-infer {hub_id}\n'
        f'Or share it on Asteroid\'s Zenodo community: asteroid-upload {out} --uploader "Your Name"'
    )


if __name__ == "__main__":
    main()
