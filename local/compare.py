#!/usr/bin/env python
"""Stage 5: compare every evaluated experiment in exp/ -> exp/compare.{md,csv,png}.

Usage:
    python local/compare.py --exp_root exp [--rtf_repeats 5] [--title TEXT] [--benchmark NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asteroid_tdanet.recipes.cli import fail, setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__)
    parser.add_argument("--exp_root", default="exp")
    parser.add_argument("--rtf_repeats", type=int, default=5, help="0: skip the CPU RTF")
    parser.add_argument("--title", default="")
    parser.add_argument(
        "--benchmark",
        default="",
        help="librimix, wham or lrs2_2mix: show the paper's and the toolkits' published results",
    )
    args = parser.parse_args(argv)
    setup_logging()

    from asteroid_tdanet.recipes.compare import compare

    try:
        table = compare(
            args.exp_root,
            rtf_repeats=args.rtf_repeats,
            title=args.title,
            benchmark=args.benchmark or None,
        )
    except FileNotFoundError as err:
        fail(err)
    print(table)
    root = Path(args.exp_root)
    print(f"\nwritten: {root / 'compare.md'}, {root / 'compare.csv'}, {root / 'compare.png'}")


if __name__ == "__main__":
    main()
