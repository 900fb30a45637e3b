#!/usr/bin/env python
"""Stage 3: score exp/<tag>/best_model.pth on the whole test utterances -> exp/<tag>/results/.

Usage:
    python local/evaluate.py --exp_dir exp/tdanet --data_dir data/wav8k [--device auto|cpu|cuda]
        [--jobs N] [--max_utterances N] [--precision 32-true|bf16-mixed|16-mixed]
        [--report_examples N]

Then writes the evaluation report, exp/<tag>/report/index.html (asteroid_tdanet.recipes.report).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asteroid_tdanet.recipes.cli import fail, setup_logging, yes_no


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__)
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    parser.add_argument("--jobs", type=int, default=1, help="processes computing metrics")
    parser.add_argument("--max_utterances", type=int, default=None, help="score only the first N")
    parser.add_argument(
        "--precision",
        default="32-true",
        choices=("32-true", "bf16-mixed", "16-mixed"),
        help="run the model under autocast in bf16 / fp16 (default: float32)",
    )
    parser.add_argument("--progress_bar", default="yes")
    parser.add_argument(
        "--report_examples", type=int, default=2, help="worst and best mixtures in the report"
    )
    args = parser.parse_args(argv)
    setup_logging()

    from asteroid_tdanet.recipes.config import ConfigError
    from asteroid_tdanet.recipes.evaluation import evaluate, format_metrics
    from asteroid_tdanet.recipes.report import build_report

    try:
        final = evaluate(
            args.exp_dir,
            args.data_dir,
            device=args.device,
            jobs=args.jobs,
            max_utterances=args.max_utterances,
            progress_bar=yes_no(args.progress_bar),
            precision=args.precision,
        )
        report = build_report(
            args.exp_dir, args.data_dir, n_each=args.report_examples, device=args.device
        )
    except (ConfigError, FileNotFoundError, ValueError) as err:
        fail(err)
    print(format_metrics(final))
    print(f"results: {Path(args.exp_dir) / 'results'}")
    print(f"report: {report}")


if __name__ == "__main__":
    main()
