#!/usr/bin/env python
"""Stage 4: Asteroid publishable model + Hugging Face model card -> exp/<tag>/publish/.

Usage:
    python local/publish.py --exp_dir exp/tdanet --dataset librimix --recipe egs/librimix/TDANet
"""

from __future__ import annotations

import argparse

from asteroid_tdanet.recipes.cli import fail, setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__)
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--dataset", required=True, help="lrs2_2mix, librimix, wham or mini2mix")
    parser.add_argument("--recipe", required=True, help="recipe path shown in the model card")
    args = parser.parse_args(argv)
    setup_logging()

    from asteroid_tdanet.recipes.model_card import publish

    try:
        out = publish(args.exp_dir, args.dataset, args.recipe)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    print(f"publishable model: {out / 'model.pth'}; model card: {out / 'README.md'}")


if __name__ == "__main__":
    main()
