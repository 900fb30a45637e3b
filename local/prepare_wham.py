#!/usr/bin/env python
"""Stage 1: index a downloaded WHAM! tree into DATA_DIR/{train,valid,test}/.

Usage: python local/prepare_wham.py --root ROOT --out DATA_DIR [--sample_rate SR] [--mode min]
[--task sep_clean]. The logic lives in asteroid_tdanet.data.prepare (shared by all data sets).
"""

import sys

from asteroid_tdanet.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], fmt="wham"))
